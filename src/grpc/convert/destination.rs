//! `Destination` messages. Credentials are write-only; URIs are shown redacted.

use std::collections::BTreeMap;

use super::database::name_from_pb;
use super::*;
use crate::domain::{Destination, DestinationId, Secret, check_destination_uri, redact_uri};
use crate::service::{DestinationPatch, NewDestination};
use crate::storage::location;

const UPDATABLE: &[&str] = &["name", "uri", "credentials", "options", "labels"];

pub(crate) fn destination_to_pb(destination: &Destination) -> pb::Destination {
    pb::Destination {
        id: destination.id.to_string(),
        name: destination.name.to_string(),
        uri: redact_uri(&destination.uri),
        credentials: Default::default(),
        options: destination.options.iter().map(|(key, value)| (key.clone(), value.clone())).collect(),
        labels: labels_to_pb(&destination.labels),
        create_time: Some(timestamp_to_pb(destination.create_time)),
        update_time: Some(timestamp_to_pb(destination.update_time)),
    }
}

/// A CreateDestination request, validated.
pub(crate) fn new_destination_from_pb(
    request: pb::CreateDestinationRequest,
) -> Result<(NewDestination, Option<String>), Invalid> {
    let mut invalid = Invalid::default();
    let request_id = request_id_from_pb("request_id", &request.request_id, &mut invalid);
    let Some(destination) = request.destination else {
        invalid.add("destination", "is required");
        return Err(invalid);
    };
    let name = name_from_pb("destination.name", &destination.name, &mut invalid);
    let uri = uri_from_pb(&destination.uri, &mut invalid);
    let labels = labels_from_pb("destination.labels", &destination.labels, &mut invalid);
    let (Some(name), Some(uri)) = (name, uri) else { return Err(invalid) };
    let new = NewDestination {
        name,
        uri,
        credentials: credentials_from_pb(destination.credentials),
        options: destination.options.into_iter().collect(),
        labels,
    };
    check_store_settings(&new, &mut invalid);
    invalid.into_result(|| (new, request_id))
}

/// An UpdateDestination request, validated.
pub(crate) fn destination_patch_from_pb(
    request: pb::UpdateDestinationRequest,
) -> Result<(DestinationId, DestinationPatch), Invalid> {
    let mut invalid = Invalid::default();
    let Some(destination) = request.destination else {
        invalid.add("destination", "is required");
        return Err(invalid);
    };
    let id = parse_id("destination.id", &destination.id, DestinationId::parse, &mut invalid);
    let paths = match mask_paths(request.update_mask.as_ref()) {
        Some(paths) if paths.iter().any(|path| path == "*") => {
            UPDATABLE.iter().map(|path| path.to_string()).collect()
        }
        Some(paths) => paths,
        None => {
            let set = [
                !destination.name.is_empty(),
                !destination.uri.is_empty(),
                !destination.credentials.is_empty(),
                !destination.options.is_empty(),
                !destination.labels.is_empty(),
            ];
            UPDATABLE.iter().zip(set).filter(|(_, set)| *set).map(|(path, _)| path.to_string()).collect()
        }
    };
    for path in paths.iter().filter(|path| !UPDATABLE.contains(&path.as_str())) {
        invalid
            .add("update_mask", format!("'{path}' cannot be updated; updatable: {}", UPDATABLE.join(", ")));
    }
    let has = |path: &str| paths.iter().any(|candidate| candidate == path);
    let mut patch = DestinationPatch::default();
    if has("name") {
        patch.name = name_from_pb("destination.name", &destination.name, &mut invalid);
    }
    if has("uri") {
        patch.uri = uri_from_pb(&destination.uri, &mut invalid);
    }
    if has("labels") {
        patch.labels = Some(labels_from_pb("destination.labels", &destination.labels, &mut invalid));
    }
    if has("options") {
        patch.options = Some(destination.options.into_iter().collect());
    }
    if has("credentials") {
        patch.credentials = Some(credentials_from_pb(destination.credentials));
    }
    match id {
        Some(id) => invalid.into_result(|| (id, patch)),
        None => Err(invalid),
    }
}

fn uri_from_pb(uri: &str, invalid: &mut Invalid) -> Option<String> {
    if uri.trim().is_empty() {
        invalid.add("destination.uri", "is required");
        return None;
    }
    match check_destination_uri(uri) {
        Ok(()) => Some(uri.trim().to_owned()),
        Err(problem) => {
            invalid.add("destination.uri", problem);
            None
        }
    }
}

/// Checks an object-store destination's options and credentials (known keys, values of
/// the right form) the way `storage::open` will read them.
fn check_store_settings(new: &NewDestination, invalid: &mut Invalid) {
    if let Err((field, problem)) = location::check_settings(&new.uri, &new.credentials, &new.options) {
        invalid.add(format!("destination.{field}"), problem);
    }
}

fn credentials_from_pb(credentials: std::collections::HashMap<String, String>) -> BTreeMap<String, Secret> {
    credentials.into_iter().map(|(key, value)| (key, Secret::new(value))).collect()
}

//! Creating, reading, changing and removing destinations, and the built-in `local` one.

use super::databases::parse_stored_id;
use super::{Cellar, DestinationPatch, Error, NewDestination};
use crate::domain::Invalid;
use crate::domain::list::{ListQuery, Page};
use crate::domain::{Destination, DestinationId, LOCAL_DESTINATION, ResourceName};
use crate::metadata::Created;
use crate::storage::location;

impl Cellar {
    /// Creates the `local` destination (at the backups directory) if it does not exist;
    /// returns it. Called at every start.
    pub async fn ensure_local_destination(&self) -> Result<Destination, Error> {
        if let Some(local) = self.store.find_destination_by_name(LOCAL_DESTINATION).await? {
            return Ok(local);
        }
        let uri = url::Url::from_directory_path(&self.places.backups_dir)
            .map_err(|()| Error::Internal("the backups directory is not an absolute path".to_owned()))?;
        let new = NewDestination {
            name: ResourceName::parse(LOCAL_DESTINATION).map_err(Error::Internal)?,
            uri: uri.to_string().trim_end_matches('/').to_owned(),
            credentials: Default::default(),
            options: Default::default(),
            labels: Default::default(),
        };
        self.create_destination(new, None).await
    }

    /// The `local` destination.
    pub async fn local_destination(&self) -> Result<Destination, Error> {
        match self.store.find_destination_by_name(LOCAL_DESTINATION).await? {
            Some(local) => Ok(local),
            None => self.ensure_local_destination().await,
        }
    }

    /// Creates a destination; a retried request id returns the first one.
    pub async fn create_destination(
        &self,
        new: NewDestination,
        request_id: Option<&str>,
    ) -> Result<Destination, Error> {
        let now = crate::domain::now();
        let destination = Destination {
            id: DestinationId::new(),
            name: new.name,
            uri: new.uri,
            credentials: new.credentials,
            options: new.options,
            labels: new.labels,
            create_time: now,
            update_time: now,
        };
        self.check_reach(&destination).await?;
        match self.store.create_destination(&destination, request_id).await? {
            Created::New => {
                tracing::info!(destination = %destination.id, name = %destination.name, "destination created");
                Ok(destination)
            }
            Created::Existing(id) => self.get_destination(parse_stored_id(&id)?).await,
        }
    }

    /// Reads a destination.
    pub async fn get_destination(&self, id: DestinationId) -> Result<Destination, Error> {
        Ok(self.store.get_destination(id).await?)
    }

    /// Lists destinations.
    pub async fn list_destinations(&self, query: &ListQuery) -> Result<Page<Destination>, Error> {
        Ok(self.store.list_destinations(query).await?)
    }

    /// Applies a patch. The `local` destination keeps its name.
    pub async fn update_destination(
        &self,
        id: DestinationId,
        patch: DestinationPatch,
    ) -> Result<Destination, Error> {
        let mut destination = self.store.get_destination(id).await?;
        if let Some(name) = patch.name {
            if destination.name.as_str() == LOCAL_DESTINATION && name.as_str() != LOCAL_DESTINATION {
                return Err(Error::FailedPrecondition {
                    reason: "BUILT_IN_DESTINATION",
                    message: "the built-in local destination cannot be renamed".to_owned(),
                });
            }
            destination.name = name;
        }
        if let Some(uri) = patch.uri {
            destination.uri = uri;
        }
        if let Some(credentials) = patch.credentials {
            destination.credentials = credentials;
        }
        if let Some(options) = patch.options {
            destination.options = options;
        }
        if let Some(labels) = patch.labels {
            destination.labels = labels;
        }
        // The patch is checked in the conversion; the settings only as a whole.
        let (uri, credentials, options) = (&destination.uri, &destination.credentials, &destination.options);
        if let Err((field, problem)) = location::check_settings(uri, credentials, options) {
            return Err(Invalid::field(format!("destination.{field}"), problem).into());
        }
        self.check_reach(&destination).await?;
        destination.update_time = crate::domain::now();
        self.store.update_destination(&destination).await?;
        Ok(destination)
    }

    /// Removes a destination that no database policy or backup uses.
    pub async fn delete_destination(&self, id: DestinationId) -> Result<(), Error> {
        let destination = self.store.get_destination(id).await?;
        if destination.name.as_str() == LOCAL_DESTINATION {
            return Err(Error::FailedPrecondition {
                reason: "BUILT_IN_DESTINATION",
                message: "the built-in local destination cannot be deleted".to_owned(),
            });
        }
        if self.store.destination_in_use(id).await? {
            return Err(Error::FailedPrecondition {
                reason: "DESTINATION_IN_USE",
                message: format!("destination {id} is used by a database policy or holds backups"),
            });
        }
        self.store.delete_destination(id).await?;
        Ok(())
    }

    // A destination whose host (an http(s) or ftp server, an object store's endpoint)
    // the URL policy lets through, as for import sources: internal addresses only for
    // allow-listed hosts (PERMISSION_DENIED, reason URL_NOT_ALLOWED). Local directories
    // are the operator's to choose.
    async fn check_reach(&self, destination: &Destination) -> Result<(), Error> {
        let Ok(uri) = url::Url::parse(&destination.uri) else { return Ok(()) };
        match uri.scheme() {
            "http" | "https" => self.check_url("destination.uri", &uri).await,
            "ftp" => self.check_ftp_host("destination.uri", &uri).await,
            "s3" | "gs" | "abs" | "az" => {
                self.check_endpoint("destination.options.endpoint", destination).await
            }
            _ => Ok(()),
        }
    }
}

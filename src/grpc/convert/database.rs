//! `Database` messages.

use super::*;
use crate::domain::{
    BackupPolicy, ConnectionUri, DEFAULT_PROJECT, Database, DestinationId, ResourceName, RetentionPolicy,
    Secret, Webhook,
};
use crate::schedule::Schedule;
use crate::service::{DatabasePatch, NewDatabase, PolicyPatch, WebhookPatch};

/// Fields an UpdateDatabase mask may name.
const UPDATABLE: &[&str] = &[
    "name",
    "project_id",
    "connection_uri",
    "labels",
    "backup_policy",
    "backup_policy.destination_id",
    "backup_policy.schedule",
    "backup_policy.compression",
    "backup_policy.retention",
    "backup_policy.backup_ttl",
    "webhook",
    "webhook.url",
    "webhook.secret",
    "backup_policy.age_recipients",
];

pub(crate) fn database_to_pb(database: &Database) -> pb::Database {
    let policy = &database.backup_policy;
    let retention = &policy.retention;
    pb::Database {
        id: database.id.to_string(),
        name: database.name.to_string(),
        project_id: database.project_id.clone(),
        engine: engine_to_pb(database.engine),
        connection_uri: database.connection_uri.redacted(),
        backup_policy: Some(pb::BackupPolicy {
            destination_id: policy.destination_id.map(|id| id.to_string()).unwrap_or_default(),
            schedule: policy.schedule.clone(),
            compression: compression_to_pb(policy.compression),
            retention: Some(pb::RetentionPolicy {
                keep_last: retention.keep_last as i32,
                keep_hourly: retention.keep_hourly as i32,
                keep_daily: retention.keep_daily as i32,
                keep_weekly: retention.keep_weekly as i32,
                keep_monthly: retention.keep_monthly as i32,
            }),
            backup_ttl: policy.backup_ttl.map(duration_to_pb),
            age_recipients: policy.age_recipients.iter().map(ToString::to_string).collect(),
        }),
        labels: labels_to_pb(&database.labels),
        create_time: Some(timestamp_to_pb(database.create_time)),
        update_time: Some(timestamp_to_pb(database.update_time)),
        // The handler adds it: it depends on the database's backups, not on the record.
        next_backup_time: None,
        webhook: database.webhook.as_ref().map(webhook_to_pb),
    }
}

// The secret is input only: a response says that one is stored, never what it is.
fn webhook_to_pb(webhook: &Webhook) -> pb::Webhook {
    pb::Webhook { url: webhook.url.to_string(), secret: String::new(), secret_set: true }
}

/// A CreateDatabase request, validated.
pub(crate) fn new_database_from_pb(
    request: pb::CreateDatabaseRequest,
) -> Result<(NewDatabase, Option<String>), Invalid> {
    let mut invalid = Invalid::default();
    let request_id = request_id_from_pb("request_id", &request.request_id, &mut invalid);
    let Some(database) = request.database else {
        invalid.add("database", "is required");
        return Err(invalid);
    };
    let name = name_from_pb("database.name", &database.name, &mut invalid);
    let project_id = project_from_pb(&database.project_id, &mut invalid);
    let engine = engine_from_pb(database.engine);
    if engine.is_none() {
        invalid.add("database.engine", "is required: ENGINE_REDIS, ENGINE_POSTGRES or ENGINE_MYSQL");
    }
    let uri = connection_uri_from_pb(&database.connection_uri, &mut invalid);
    if let (Some(engine), Some(uri)) = (engine, &uri) {
        invalid.check(Database::check_engine_matches_uri(engine, uri));
    }
    let policy = PolicyPatch::from_pb(database.backup_policy.as_ref(), None, &mut invalid)
        .apply(BackupPolicy::default());
    let labels = labels_from_pb("database.labels", &database.labels, &mut invalid);
    let webhook = webhook_from_pb(database.webhook.as_ref(), &mut invalid);
    let (Some(name), Some(engine), Some(connection_uri)) = (name, engine, uri) else {
        return Err(invalid);
    };
    let new =
        NewDatabase { name, project_id, engine, connection_uri, backup_policy: policy, labels, webhook };
    invalid.into_result(|| (new, request_id))
}

/// An UpdateDatabase request, validated.
pub(crate) fn database_patch_from_pb(
    request: pb::UpdateDatabaseRequest,
) -> Result<(crate::domain::DatabaseId, DatabasePatch), Invalid> {
    let mut invalid = Invalid::default();
    let Some(database) = request.database else {
        invalid.add("database", "is required");
        return Err(invalid);
    };
    let id = parse_id("database.id", &database.id, crate::domain::DatabaseId::parse, &mut invalid);
    let paths = match mask_paths(request.update_mask.as_ref()) {
        Some(paths) if paths.iter().any(|path| path == "*") => {
            UPDATABLE.iter().map(|path| path.to_string()).collect()
        }
        Some(paths) => paths,
        None => implied_paths(&database),
    };
    for path in &paths {
        if path == "engine" {
            invalid.add("update_mask", "engine cannot be changed; register a new database instead");
        } else if !UPDATABLE.contains(&path.as_str()) {
            invalid.add(
                "update_mask",
                format!("'{path}' cannot be updated; updatable: {}", UPDATABLE.join(", ")),
            );
        }
    }
    let has = |path: &str| paths.iter().any(|candidate| candidate == path);
    let mut patch = DatabasePatch::default();
    if has("name") {
        patch.name = name_from_pb("database.name", &database.name, &mut invalid);
    }
    if has("project_id") {
        patch.project_id = Some(project_from_pb(&database.project_id, &mut invalid));
    }
    if has("connection_uri") {
        patch.connection_uri = connection_uri_from_pb(&database.connection_uri, &mut invalid);
    }
    if has("labels") {
        patch.labels = Some(labels_from_pb("database.labels", &database.labels, &mut invalid));
    }
    patch.webhook = webhook_patch_from_pb(database.webhook.as_ref(), &has, &mut invalid);
    let policy_paths: Vec<&str> = paths.iter().filter_map(|path| policy_field(path)).collect();
    if !policy_paths.is_empty() {
        patch.backup_policy =
            PolicyPatch::from_pb(database.backup_policy.as_ref(), Some(&policy_paths), &mut invalid);
    }
    match id {
        Some(id) => invalid.into_result(|| (id, patch)),
        None => Err(invalid),
    }
}

// `backup_policy` → every policy field; `backup_policy.x` → x.
fn policy_field(path: &str) -> Option<&str> {
    match path {
        "backup_policy" => Some("*"),
        _ => path.strip_prefix("backup_policy."),
    }
}

// With no mask, the fields the client set to a non-default value are updated.
fn implied_paths(database: &pb::Database) -> Vec<String> {
    let mut paths = Vec::new();
    let mut add = |set: bool, path: &str| {
        if set {
            paths.push(path.to_owned());
        }
    };
    add(!database.name.is_empty(), "name");
    add(!database.project_id.is_empty(), "project_id");
    add(!database.connection_uri.is_empty(), "connection_uri");
    add(!database.labels.is_empty(), "labels");
    if let Some(policy) = &database.backup_policy {
        add(!policy.destination_id.is_empty(), "backup_policy.destination_id");
        add(!policy.schedule.is_empty(), "backup_policy.schedule");
        add(policy.compression != 0, "backup_policy.compression");
        add(policy.retention.is_some(), "backup_policy.retention");
        add(policy.backup_ttl.is_some(), "backup_policy.backup_ttl");
        add(!policy.age_recipients.is_empty(), "backup_policy.age_recipients");
    }
    if let Some(webhook) = &database.webhook {
        let path = match (webhook.url.is_empty(), webhook.secret.is_empty()) {
            (false, true) => "webhook.url",
            (true, false) => "webhook.secret",
            _ => "webhook",
        };
        paths.push(path.to_owned());
    }
    paths
}

/// A create's webhook: none when unset or empty, else an endpoint and a secret.
fn webhook_from_pb(webhook: Option<&pb::Webhook>, invalid: &mut Invalid) -> Option<Webhook> {
    let webhook = webhook.filter(|webhook| !webhook.url.is_empty() || !webhook.secret.is_empty())?;
    let url = webhook_url_from_pb(&webhook.url, invalid);
    let secret = webhook_secret_from_pb(&webhook.secret, invalid);
    Some(Webhook { url: url?, secret: secret? })
}

/// An update's webhook changes, for the mask paths `has` says are named: `webhook` and
/// `webhook.url` set the endpoint (empty: remove the webhook), `webhook` and
/// `webhook.secret` the secret (empty under `webhook`: keep the stored one).
fn webhook_patch_from_pb(
    webhook: Option<&pb::Webhook>,
    has: &dyn Fn(&str) -> bool,
    invalid: &mut Invalid,
) -> WebhookPatch {
    let default_webhook = pb::Webhook::default();
    let webhook = webhook.unwrap_or(&default_webhook);
    let mut patch = WebhookPatch::default();
    if has("webhook") || has("webhook.url") {
        patch.url = match webhook.url.trim() {
            "" => Some(None),
            url => webhook_url_from_pb(url, invalid).map(Some),
        };
    }
    if has("webhook.secret") || (has("webhook") && !webhook.secret.is_empty()) {
        patch.secret = webhook_secret_from_pb(&webhook.secret, invalid);
    }
    patch
}

fn webhook_url_from_pb(url: &str, invalid: &mut Invalid) -> Option<url::Url> {
    if url.trim().is_empty() {
        invalid.add("database.webhook.url", "is required");
        return None;
    }
    Webhook::parse_url(url).map_err(|problem| invalid.add("database.webhook.url", problem)).ok()
}

fn webhook_secret_from_pb(secret: &str, invalid: &mut Invalid) -> Option<Secret> {
    if secret.is_empty() {
        invalid.add("database.webhook.secret", "is required: the key that signs each notification");
        return None;
    }
    Webhook::parse_secret(secret).map_err(|problem| invalid.add("database.webhook.secret", problem)).ok()
}

impl PolicyPatch {
    // The policy fields named by `only` (`*` for all; `None` for a create, where every
    // field counts and unset ones keep their defaults).
    fn from_pb(
        policy: Option<&pb::BackupPolicy>,
        only: Option<&[&str]>,
        invalid: &mut Invalid,
    ) -> PolicyPatch {
        let default_policy = pb::BackupPolicy::default();
        let policy = policy.unwrap_or(&default_policy);
        let wanted =
            |field: &str| only.is_none_or(|fields| fields.iter().any(|name| *name == "*" || *name == field));
        let mut patch = PolicyPatch::default();
        if wanted("destination_id") {
            patch.destination_id = Some(parse_optional_id::<DestinationId>(
                "database.backup_policy.destination_id",
                &policy.destination_id,
                DestinationId::parse,
                invalid,
            ));
        }
        if wanted("schedule") {
            let schedule = policy.schedule.trim().to_owned();
            if let Err(problem) = check_schedule(&schedule) {
                invalid.add("database.backup_policy.schedule", problem);
            }
            patch.schedule = Some(schedule);
        }
        if wanted("compression") {
            let compression =
                compression_from_pb("database.backup_policy.compression", policy.compression, invalid);
            patch.compression = Some(compression.unwrap_or(crate::domain::Compression::Zstd));
        }
        if wanted("retention") {
            patch.retention = Some(retention_from_pb(policy.retention.as_ref(), invalid));
        }
        if wanted("backup_ttl") {
            patch.backup_ttl = Some(
                policy
                    .backup_ttl
                    .as_ref()
                    .and_then(|ttl| duration_from_pb("database.backup_policy.backup_ttl", ttl, invalid))
                    .filter(|ttl| !ttl.is_zero()),
            );
        }
        if wanted("age_recipients") {
            let mut recipients = Vec::new();
            for (index, text) in policy.age_recipients.iter().enumerate() {
                match crate::domain::AgeRecipient::parse(text) {
                    Ok(recipient) if !recipients.contains(&recipient) => recipients.push(recipient),
                    Ok(_) => {}
                    Err(problem) => {
                        invalid.add(format!("database.backup_policy.age_recipients[{index}]"), problem)
                    }
                }
            }
            patch.age_recipients = Some(recipients);
        }
        patch
    }
}

fn retention_from_pb(retention: Option<&pb::RetentionPolicy>, invalid: &mut Invalid) -> RetentionPolicy {
    let Some(retention) = retention else { return RetentionPolicy::default() };
    let mut count = |field: &str, value: i32| {
        u32::try_from(value).unwrap_or_else(|_| {
            invalid.add(format!("database.backup_policy.retention.{field}"), "must not be negative");
            0
        })
    };
    RetentionPolicy {
        keep_last: count("keep_last", retention.keep_last),
        keep_hourly: count("keep_hourly", retention.keep_hourly),
        keep_daily: count("keep_daily", retention.keep_daily),
        keep_weekly: count("keep_weekly", retention.keep_weekly),
        keep_monthly: count("keep_monthly", retention.keep_monthly),
    }
}

/// Checks a schedule: empty (none), or what [`Schedule::parse`] reads.
fn check_schedule(schedule: &str) -> Result<(), String> {
    if schedule.is_empty() {
        return Ok(());
    }
    Schedule::parse(schedule).map(drop)
}

pub(super) fn name_from_pb(field: &str, name: &str, invalid: &mut Invalid) -> Option<ResourceName> {
    ResourceName::parse(name).map_err(|problem| invalid.add(field, problem)).ok()
}

fn project_from_pb(project_id: &str, invalid: &mut Invalid) -> String {
    if project_id.is_empty() {
        return DEFAULT_PROJECT.to_owned();
    }
    if let Err(problem) = ResourceName::parse(project_id) {
        invalid.add("database.project_id", problem);
    }
    project_id.to_owned()
}

fn connection_uri_from_pb(uri: &str, invalid: &mut Invalid) -> Option<ConnectionUri> {
    if uri.trim().is_empty() {
        invalid.add("database.connection_uri", "is required");
        return None;
    }
    ConnectionUri::parse(uri).map_err(|problem| invalid.add("database.connection_uri", problem)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules() {
        for good in
            ["", "@daily", "@every 6h", "@every 1m", "0 3 * * *", "*/15 0-6 1,15 * 1-5", "0 3 * * MON"]
        {
            assert_eq!(check_schedule(good), Ok(()), "{good}");
        }
        for bad in ["@every 500ms", "@every", "@every 5x", "0 3 * *", "daily", "0 3 * * FUNDAY"] {
            assert!(check_schedule(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn create_reports_every_problem_and_never_echoes_the_password() {
        let request = pb::CreateDatabaseRequest {
            database: Some(pb::Database {
                name: "bad name".into(),
                engine: pb::Engine::Postgres as i32,
                connection_uri: "redis://u:hunter2@h:6379".into(),
                backup_policy: Some(pb::BackupPolicy { schedule: "sometimes".into(), ..Default::default() }),
                ..Default::default()
            }),
            request_id: String::new(),
        };
        let invalid = new_database_from_pb(request).unwrap_err();
        let fields: Vec<&str> = invalid.violations.iter().map(|violation| violation.field.as_str()).collect();
        assert_eq!(fields, ["database.name", "database.connection_uri", "database.backup_policy.schedule"]);
        assert!(!invalid.to_string().contains("hunter2"));
    }

    fn update_webhook(webhook: pb::Webhook, paths: &[&str]) -> WebhookPatch {
        let request = pb::UpdateDatabaseRequest {
            database: Some(pb::Database {
                id: crate::domain::DatabaseId::new().to_string(),
                webhook: Some(webhook),
                ..Default::default()
            }),
            update_mask: (!paths.is_empty()).then(|| prost_types::FieldMask {
                paths: paths.iter().map(|path| path.to_string()).collect(),
            }),
        };
        database_patch_from_pb(request).unwrap().1.webhook
    }

    #[test]
    fn webhook_mask_paths() {
        let url = "https://hooks.example.com/in";
        let secret = "0123456789abcdef-secret";
        let hook = |url: &str, secret: &str| pb::Webhook {
            url: url.to_owned(),
            secret: secret.to_owned(),
            secret_set: false,
        };
        let parts = |patch: WebhookPatch| {
            let url = patch.url.map(|url| url.map(|url| url.to_string()));
            (url, patch.secret.map(|secret| secret.expose().to_owned()))
        };
        let set = (Some(Some(url.to_owned())), Some(secret.to_owned()));
        assert_eq!(parts(update_webhook(hook(url, secret), &["webhook"])), set);
        assert_eq!(parts(update_webhook(hook(url, secret), &[])), set);
        // A URL alone keeps the stored secret; a secret alone keeps the stored URL.
        let moved = (Some(Some(url.to_owned())), None);
        assert_eq!(parts(update_webhook(hook(url, ""), &[])), moved);
        assert_eq!(parts(update_webhook(hook(url, secret), &["webhook.url"])), moved);
        assert_eq!(
            parts(update_webhook(hook("", secret), &["webhook.secret"])),
            (None, Some(secret.to_owned()))
        );
        // An empty URL removes the webhook; other paths leave it alone.
        assert_eq!(parts(update_webhook(hook("", ""), &["webhook"])), (Some(None), None));
        assert_eq!(parts(update_webhook(hook("", ""), &[])), (Some(None), None));
        assert_eq!(parts(update_webhook(hook(url, secret), &["labels"])), (None, None));
    }

    #[test]
    fn webhook_problems_name_their_field_without_the_secret() {
        let request = pb::CreateDatabaseRequest {
            database: Some(pb::Database {
                name: "hooked".into(),
                engine: pb::Engine::Redis as i32,
                connection_uri: "redis://h:6379".into(),
                webhook: Some(pb::Webhook {
                    url: "gopher://h/x".into(),
                    secret: "hunter2".into(),
                    secret_set: true,
                }),
                ..Default::default()
            }),
            request_id: String::new(),
        };
        let invalid = new_database_from_pb(request).unwrap_err();
        let fields: Vec<&str> = invalid.violations.iter().map(|violation| violation.field.as_str()).collect();
        assert_eq!(fields, ["database.webhook.url", "database.webhook.secret"]);
        assert!(!invalid.to_string().contains("hunter2"));
    }
}

//! Mapping between domain resources and rows of the SQLite catalog.
//!
//! Writing: each resource becomes a list of `(column, value)` pairs (every column but the
//! id), from which the INSERT and UPDATE statements are built, so a column and its value
//! are always written side by side. Reading: [`Reader`] decodes a row column by column
//! and names the resource and column that held a bad value, never the value itself.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::query::{Param, Sql};
use crate::domain::{
    Backup, BackupId, BackupName, BackupOrigin, BackupPolicy, BackupState, Compression, ConnectionUri,
    Database, DatabaseId, Destination, DestinationId, EngineKind, Operation, ResourceName, RetentionPolicy,
    Secret, Timestamp, Webhook,
};
use crate::metadata::Error;
use crate::metadata::seal::{self, Sealer};

/// A resource's columns other than `id`, with their values.
pub(super) type Values = Vec<(&'static str, Param)>;

/// `INSERT INTO table (id, columns...) VALUES (?, ...)`.
pub(super) fn insert(table: &str, id: String, values: Values) -> Sql {
    let mut sql = Sql { text: String::new(), params: vec![Param::Text(id)] };
    let mut columns = vec!["id"];
    for (column, param) in values {
        columns.push(column);
        sql.params.push(param);
    }
    let placeholders = vec!["?"; columns.len()].join(", ");
    sql.text = format!("INSERT INTO {table} ({}) VALUES ({placeholders})", columns.join(", "));
    sql
}

/// `UPDATE table SET column = ?, ... WHERE id = ?`.
pub(super) fn update(table: &str, id: String, values: Values) -> Sql {
    let mut sql = Sql::default();
    let mut assignments = Vec::with_capacity(values.len());
    for (column, param) in values {
        assignments.push(format!("{column} = ?"));
        sql.params.push(param);
    }
    sql.params.push(Param::Text(id));
    sql.text = format!("UPDATE {table} SET {} WHERE id = ?", assignments.join(", "));
    sql
}

/// Timestamps are stored as microseconds since the epoch; `domain::now()` truncates to
/// microseconds, so stored times round-trip exactly.
pub(super) fn micros(time: Timestamp) -> i64 {
    time.timestamp_micros()
}

/// The columns of `databases` other than `id` and `request_id`; the connection URI and
/// the webhook's secret sealed.
pub(super) fn database_values(database: &Database, sealer: &Sealer) -> Result<Values, Error> {
    let policy = &database.backup_policy;
    let retention = &policy.retention;
    let (ttl_seconds, ttl_nanos) = match policy.backup_ttl {
        Some(ttl) => {
            let seconds = i64::try_from(ttl.as_secs()).map_err(|_| {
                Error::Backend(format!("database {}: backup_ttl is too long to store", database.id))
            })?;
            (Some(seconds), Some(i64::from(ttl.subsec_nanos())))
        }
        None => (None, None),
    };
    Ok(vec![
        ("name", database.name.as_str().into()),
        ("project_id", database.project_id.as_str().into()),
        ("engine", database.engine.as_str().into()),
        (
            "connection_uri",
            seal(
                sealer,
                "databases",
                "connection_uri",
                &database.id.to_string(),
                database.connection_uri.expose().as_str(),
            )?
            .into(),
        ),
        ("policy_destination_id", policy.destination_id.map(|id| id.to_string()).into()),
        ("policy_schedule", policy.schedule.as_str().into()),
        ("policy_compression", policy.compression.as_str().into()),
        ("policy_keep_last", retention.keep_last.into()),
        ("policy_keep_hourly", retention.keep_hourly.into()),
        ("policy_keep_daily", retention.keep_daily.into()),
        ("policy_keep_weekly", retention.keep_weekly.into()),
        ("policy_keep_monthly", retention.keep_monthly.into()),
        ("policy_backup_ttl_seconds", ttl_seconds.into()),
        ("policy_backup_ttl_nanos", ttl_nanos.into()),
        ("policy_age_recipients", to_json(&policy.age_recipients, "policy age recipients")?.into()),
        ("labels", to_json(&database.labels, "database labels")?.into()),
        ("webhook_url", database.webhook.as_ref().map(|webhook| webhook.url.to_string()).into()),
        (
            "webhook_secret",
            database
                .webhook
                .as_ref()
                .map(|webhook| {
                    let id = database.id.to_string();
                    seal(sealer, "databases", "webhook_secret", &id, webhook.secret.expose())
                })
                .transpose()?
                .into(),
        ),
        ("create_time", micros(database.create_time).into()),
        ("update_time", micros(database.update_time).into()),
    ])
}

/// Reads a `databases` row.
pub(super) fn database_from_row(row: &SqliteRow, sealer: &Sealer) -> Result<Database, Error> {
    let reader = Reader::new(row, "database")?;
    let connection_uri = reader.opened("databases", "connection_uri", sealer)?;
    let ttl = match (reader.get("policy_backup_ttl_seconds")?, reader.get("policy_backup_ttl_nanos")?) {
        (Some(seconds), Some(nanos)) => Some(reader.duration("policy_backup_ttl", seconds, nanos)?),
        (None, None) => None,
        _ => return Err(reader.invalid("policy_backup_ttl")),
    };
    let backup_policy = BackupPolicy {
        destination_id: reader.optional_parsed("policy_destination_id", DestinationId::parse)?,
        schedule: reader.get("policy_schedule")?,
        compression: reader.parsed("policy_compression", Compression::parse)?,
        retention: RetentionPolicy {
            keep_last: reader.unsigned("policy_keep_last")?,
            keep_hourly: reader.unsigned("policy_keep_hourly")?,
            keep_daily: reader.unsigned("policy_keep_daily")?,
            keep_weekly: reader.unsigned("policy_keep_weekly")?,
            keep_monthly: reader.unsigned("policy_keep_monthly")?,
        },
        backup_ttl: ttl,
        age_recipients: reader.json("policy_age_recipients")?,
    };
    let webhook =
        match (reader.get::<Option<String>>("webhook_url")?, reader.get::<Option<String>>("webhook_secret")?)
        {
            (Some(url), Some(secret)) => Some(Webhook {
                url: Webhook::parse_url(&url).map_err(|_| reader.invalid("webhook_url"))?,
                secret: Secret::new(reader.open("databases", "webhook_secret", sealer, &secret)?),
            }),
            (None, None) => None,
            _ => return Err(reader.invalid("webhook")),
        };
    Ok(Database {
        id: reader.parsed("id", DatabaseId::parse)?,
        name: reader.parsed("name", |text| ResourceName::parse(text).ok())?,
        project_id: reader.get("project_id")?,
        engine: reader.parsed("engine", EngineKind::parse)?,
        connection_uri: ConnectionUri::parse(&connection_uri)
            .map_err(|_| reader.invalid("connection_uri"))?,
        backup_policy,
        labels: reader.json("labels")?,
        webhook,
        create_time: reader.time("create_time")?,
        update_time: reader.time("update_time")?,
    })
}

/// The columns of `destinations` other than `id` and `request_id`; the URI (which may
/// hold a password) and the credentials sealed.
pub(super) fn destination_values(destination: &Destination, sealer: &Sealer) -> Result<Values, Error> {
    let id = destination.id.to_string();
    let credentials = to_json(&destination.credentials, "destination credentials")?;
    Ok(vec![
        ("name", destination.name.as_str().into()),
        ("uri", seal(sealer, "destinations", "uri", &id, &destination.uri)?.into()),
        // The column must hold JSON: the sealed text goes in as a JSON string.
        (
            "credentials",
            to_json(&seal(sealer, "destinations", "credentials", &id, &credentials)?, "sealed credentials")?
                .into(),
        ),
        ("options", to_json(&destination.options, "destination options")?.into()),
        ("labels", to_json(&destination.labels, "destination labels")?.into()),
        ("create_time", micros(destination.create_time).into()),
        ("update_time", micros(destination.update_time).into()),
    ])
}

/// Reads a `destinations` row.
pub(super) fn destination_from_row(row: &SqliteRow, sealer: &Sealer) -> Result<Destination, Error> {
    let reader = Reader::new(row, "destination")?;
    let sealed_credentials: String = reader.json("credentials")?;
    let credentials = reader.open("destinations", "credentials", sealer, &sealed_credentials)?;
    Ok(Destination {
        id: reader.parsed("id", DestinationId::parse)?,
        name: reader.parsed("name", |text| ResourceName::parse(text).ok())?,
        uri: reader.opened("destinations", "uri", sealer)?,
        credentials: reader.json_text("credentials", &credentials)?,
        options: reader.json("options")?,
        labels: reader.json("labels")?,
        create_time: reader.time("create_time")?,
        update_time: reader.time("update_time")?,
    })
}

/// The columns of `backups` other than `id`.
pub(super) fn backup_values(backup: &Backup) -> Result<Values, Error> {
    let size = |bytes: u64, column: &str| {
        i64::try_from(bytes)
            .map_err(|_| Error::Backend(format!("backup {}: {column} is too large to store", backup.id)))
    };
    Ok(vec![
        ("name", backup.name.as_str().into()),
        ("database_id", backup.database_id.map(|id| id.to_string()).into()),
        ("instance_name", backup.instance_name.as_str().into()),
        ("database_name", backup.database_name.as_str().into()),
        ("project_id", backup.project_id.as_str().into()),
        ("engine", backup.engine.as_str().into()),
        ("server_version", backup.server_version.as_str().into()),
        ("state", backup.state.as_str().into()),
        ("size_bytes", size(backup.size_bytes, "size_bytes")?.into()),
        ("logical_size_bytes", size(backup.logical_size_bytes, "logical_size_bytes")?.into()),
        ("sha256", backup.sha256.as_str().into()),
        ("compression", backup.compression.as_str().into()),
        ("format", backup.format.as_str().into()),
        ("destination_id", backup.destination_id.to_string().into()),
        ("object_key", backup.object_key.as_str().into()),
        ("uri", backup.uri.as_str().into()),
        ("origin", backup.origin.as_str().into()),
        ("create_time", micros(backup.create_time).into()),
        ("update_time", micros(backup.update_time).into()),
        ("expire_time", backup.expire_time.map(micros).into()),
        ("labels", to_json(&backup.labels, "backup labels")?.into()),
        ("parts", to_json(&backup.parts, "backup parts")?.into()),
        ("age_recipients", to_json(&backup.age_recipients, "backup age recipients")?.into()),
    ])
}

/// Reads a `backups` row.
pub(super) fn backup_from_row(row: &SqliteRow) -> Result<Backup, Error> {
    let reader = Reader::new(row, "backup")?;
    Ok(Backup {
        id: reader.parsed("id", BackupId::parse)?,
        name: reader.parsed("name", |text| BackupName::parse(text).ok())?,
        database_id: reader.optional_parsed("database_id", DatabaseId::parse)?,
        instance_name: reader.get("instance_name")?,
        database_name: reader.get("database_name")?,
        project_id: reader.get("project_id")?,
        engine: reader.parsed("engine", EngineKind::parse)?,
        server_version: reader.get("server_version")?,
        state: reader.parsed("state", BackupState::parse)?,
        size_bytes: reader.unsigned("size_bytes")?,
        logical_size_bytes: reader.unsigned("logical_size_bytes")?,
        sha256: reader.get("sha256")?,
        compression: reader.parsed("compression", Compression::parse)?,
        format: reader.get("format")?,
        destination_id: reader.parsed("destination_id", DestinationId::parse)?,
        object_key: reader.get("object_key")?,
        uri: reader.get("uri")?,
        origin: reader.parsed("origin", BackupOrigin::parse)?,
        create_time: reader.time("create_time")?,
        update_time: reader.time("update_time")?,
        expire_time: reader.optional_time("expire_time")?,
        labels: reader.json("labels")?,
        parts: reader.json("parts")?,
        age_recipients: reader.json("age_recipients")?,
    })
}

/// The columns of `operations` other than `id`: copies of the listed fields, and the
/// whole operation as JSON.
pub(super) fn operation_values(operation: &Operation) -> Result<Values, Error> {
    Ok(vec![
        ("kind", operation.kind.as_str().into()),
        ("state", operation.state.as_str().into()),
        ("database_id", operation.database_id.map(|id| id.to_string()).into()),
        ("backup_id", operation.backup_id.map(|id| id.to_string()).into()),
        ("create_time", micros(operation.create_time).into()),
        ("update_time", micros(operation.update_time).into()),
        ("request_id", operation.request_id.clone().into()),
        ("body", to_json(operation, "operation")?.into()),
    ])
}

/// Reads an `operations` row (from its `body`).
pub(super) fn operation_from_row(row: &SqliteRow) -> Result<Operation, Error> {
    Reader::new(row, "operation")?.json("body")
}

/// Seals a secret column's value for its row.
pub(super) fn seal(
    sealer: &Sealer,
    table: &str,
    column: &str,
    id: &str,
    value: &str,
) -> Result<String, Error> {
    sealer
        .seal(&seal::place(table, column, id), value)
        .map_err(|error| Error::Backend(format!("sealing {column} of {table} row {id}: {error}")))
}

fn to_json(value: &impl Serialize, what: &str) -> Result<String, Error> {
    // Serializing maps of strings and derived structs does not fail; the message of a
    // failure names a type, never a value.
    serde_json::to_string(value).map_err(|error| Error::Backend(format!("encoding {what}: {error}")))
}

/// Decodes the columns of one row of a resource.
struct Reader<'r> {
    row: &'r SqliteRow,
    kind: &'static str,
    id: String,
}

impl<'r> Reader<'r> {
    fn new(row: &'r SqliteRow, kind: &'static str) -> Result<Self, Error> {
        let id = row
            .try_get("id")
            .map_err(|error| Error::Backend(format!("reading the id of a {kind} row: {error}")))?;
        Ok(Reader { row, kind, id })
    }

    /// The error for a column whose value does not decode. The value is not shown: it
    /// may be a secret.
    fn invalid(&self, column: &str) -> Error {
        Error::Backend(format!("{} {} has an invalid {column}", self.kind, self.id))
    }

    fn get<T>(&self, column: &str) -> Result<T, Error>
    where
        T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
    {
        // sqlx decode errors name the column and the types, not the value.
        self.row.try_get(column).map_err(|error| {
            Error::Backend(format!("reading {} of {} {}: {error}", column, self.kind, self.id))
        })
    }

    fn parsed<T>(&self, column: &str, parse: impl FnOnce(&str) -> Option<T>) -> Result<T, Error> {
        let text: String = self.get(column)?;
        parse(&text).ok_or_else(|| self.invalid(column))
    }

    fn optional_parsed<T>(
        &self,
        column: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<Option<T>, Error> {
        match self.get::<Option<String>>(column)? {
            Some(text) => parse(&text).map(Some).ok_or_else(|| self.invalid(column)),
            None => Ok(None),
        }
    }

    fn unsigned<T: TryFrom<i64>>(&self, column: &str) -> Result<T, Error> {
        T::try_from(self.get::<i64>(column)?).map_err(|_| self.invalid(column))
    }

    fn time(&self, column: &str) -> Result<Timestamp, Error> {
        Timestamp::from_timestamp_micros(self.get(column)?).ok_or_else(|| self.invalid(column))
    }

    fn optional_time(&self, column: &str) -> Result<Option<Timestamp>, Error> {
        match self.get::<Option<i64>>(column)? {
            Some(micros) => {
                Timestamp::from_timestamp_micros(micros).map(Some).ok_or_else(|| self.invalid(column))
            }
            None => Ok(None),
        }
    }

    fn duration(&self, name: &str, seconds: i64, nanos: i64) -> Result<Duration, Error> {
        let seconds = u64::try_from(seconds).map_err(|_| self.invalid(name))?;
        match u32::try_from(nanos) {
            Ok(nanos) if nanos < 1_000_000_000 => Ok(Duration::new(seconds, nanos)),
            _ => Err(self.invalid(name)),
        }
    }

    /// A sealed column, opened. A value that does not open fails the read, naming the
    /// row, the column and why (another key, damage), never the value.
    fn opened(&self, table: &str, column: &str, sealer: &Sealer) -> Result<String, Error> {
        let text: String = self.get(column)?;
        self.open(table, column, sealer, &text)
    }

    /// Opens `text`, the sealed value of `column`.
    fn open(&self, table: &str, column: &str, sealer: &Sealer, text: &str) -> Result<String, Error> {
        sealer
            .open(&seal::place(table, column, &self.id), text)
            .map_err(|error| Error::Backend(format!("{} {}: {column} {error}", self.kind, self.id)))
    }

    fn json<T: DeserializeOwned>(&self, column: &str) -> Result<T, Error> {
        let text: String = self.get(column)?;
        self.json_text(column, &text)
    }

    fn json_text<T: DeserializeOwned>(&self, column: &str, text: &str) -> Result<T, Error> {
        // serde_json messages may quote the offending value (a credential); keep only
        // where and what kind of error it was.
        serde_json::from_str(text).map_err(|error| {
            Error::Backend(format!(
                "{} {} has an invalid {column} ({:?} error at line {}, column {})",
                self.kind,
                self.id,
                error.classify(),
                error.line(),
                error.column()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_pair_columns_with_values() {
        let values: Values = vec![("name", "n".into()), ("size_bytes", 5_i64.into())];
        let insert = insert("backups", "i".to_owned(), values.clone());
        assert_eq!(insert.text, "INSERT INTO backups (id, name, size_bytes) VALUES (?, ?, ?)");
        assert_eq!(insert.params, [Param::Text("i".into()), Param::Text("n".into()), Param::Integer(5)]);
        let update = update("backups", "i".to_owned(), values);
        assert_eq!(update.text, "UPDATE backups SET name = ?, size_bytes = ? WHERE id = ?");
        assert_eq!(update.params, [Param::Text("n".into()), Param::Integer(5), Param::Text("i".into())]);
    }
}

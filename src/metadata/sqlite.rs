//! The SQLite catalog: one file (WAL mode) on one node.
//!
//! Every write is a single statement or one `BEGIN IMMEDIATE` transaction, so a crash or
//! a dropped future leaves the catalog as before or after it: SQLite rolls back an
//! unfinished transaction, and sqlx rolls back a transaction dropped mid-way before the
//! connection is reused. Reads of a page and its total share one read transaction.

mod query;
mod rows;
mod sealing;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};

use self::query::{BACKUPS, DATABASES, DESTINATIONS, OPERATIONS, Table};
use super::key::CatalogKey;
use super::seal::Sealer;
use super::{Created, Error, Store};
use crate::domain::list::{ListQuery, Page};
use crate::domain::{
    Backup, BackupId, Database, DatabaseId, Destination, DestinationId, Operation, OperationId, OperationKind,
};

/// How long a statement waits for another connection's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections of a file-backed catalog: one writer at a time, readers beside it.
const MAX_CONNECTIONS: u32 = 8;

/// The catalog in a SQLite database, its secrets sealed with the catalog key.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    sealer: Arc<Sealer>,
}

impl SqliteStore {
    /// Opens the catalog at `path`, creating the file and its parent directory when
    /// missing, brings its schema up to date, checks that `key` is the catalog's (a
    /// catalog takes the key it is first opened with), and seals any secret still stored
    /// in plain text (a catalog from before secrets were sealed).
    ///
    /// The journal is a write-ahead log with `synchronous = FULL`: a commit is on disk
    /// when it returns, and a crash (even a power loss) leaves the file consistent.
    /// `secure_delete` overwrites what a write replaces, so that no earlier plain value
    /// stays readable in the file's free space.
    pub async fn open(path: &Path, key: &CatalogKey) -> Result<Self, Error> {
        let shown = path.display();
        if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent).await.map_err(|error| {
                Error::Backend(format!("creating the catalog directory of {shown}: {error}"))
            })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .pragma("secure_delete", "ON")
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await
            .map_err(|error| Error::Backend(format!("opening the catalog at {shown}: {error}")))?;
        Self::migrated(pool, key).await
    }

    /// Opens an empty catalog that lives in memory until the store is dropped (tests).
    pub async fn open_in_memory() -> Result<Self, Error> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")
            .map_err(|error| Error::Backend(format!("configuring an in-memory catalog: {error}")))?
            .foreign_keys(true);
        // An in-memory database lives as long as a connection to it: keep exactly one,
        // forever.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(|error| Error::Backend(format!("opening an in-memory catalog: {error}")))?;
        let key = CatalogKey::random().map_err(|error| Error::Backend(error.to_string()))?;
        Self::migrated(pool, &key).await
    }

    /// Closes every connection, waiting for those in use to be returned. Later calls
    /// fail with [`Error::Backend`].
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn migrated(pool: SqlitePool, key: &CatalogKey) -> Result<Self, Error> {
        sqlx::migrate!("src/metadata/migrations")
            .run(&pool)
            .await
            .map_err(|error| Error::Backend(format!("migrating the catalog: {error}")))?;
        let sealer = Arc::new(Sealer::new(key));
        let sealed = sealing::check_key_and_seal(&pool, &sealer).await?;
        if sealed > 0 {
            tracing::info!(
                values = sealed,
                key_id = sealer.key_id(),
                "sealed the catalog's plain-text secrets"
            );
        }
        Ok(SqliteStore { pool, sealer })
    }

    /// A write transaction that holds the write lock from its start, so reading before
    /// writing never fails on a snapshot another writer has moved past.
    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, Error> {
        self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(backend("starting a write"))
    }

    async fn fetch_one_by_id<T>(
        &self,
        table: Table,
        kind: &'static str,
        id: String,
        decode: impl Fn(&SqliteRow) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let sql = format!("SELECT * FROM {} WHERE id = ?", table.name);
        let row = sqlx::query(&sql)
            .bind(&id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend(&format!("reading {kind} {id}")))?;
        match row {
            Some(row) => decode(&row),
            None => Err(Error::NotFound { kind, id }),
        }
    }

    async fn list<T>(
        &self,
        table: Table,
        query: &ListQuery,
        decode: impl Fn(&SqliteRow) -> Result<T, Error>,
    ) -> Result<Page<T>, Error> {
        let sql = query::list_sql(table, query)?;
        let context = format!("listing {}", table.name);
        let mut transaction = self.pool.begin().await.map_err(backend(&context))?;
        let total: i64 = sql
            .count
            .query()
            .fetch_one(&mut *transaction)
            .await
            .and_then(|row| row.try_get(0))
            .map_err(backend(&context))?;
        let rows = sql.select.query().fetch_all(&mut *transaction).await.map_err(backend(&context))?;
        transaction.commit().await.map_err(backend(&context))?;
        let items = rows.iter().map(&decode).collect::<Result<Vec<T>, Error>>()?;
        Ok(query.page(items, u64::try_from(total).unwrap_or_default()))
    }

    /// Runs an UPDATE or DELETE of one row by id; no row is [`Error::NotFound`].
    async fn change_one(
        &self,
        statement: query::Sql,
        kind: &'static str,
        id: String,
        unique: &[Unique<'_>],
    ) -> Result<(), Error> {
        let result =
            statement.query().execute(&self.pool).await.map_err(|error| write_error(error, kind, unique))?;
        match result.rows_affected() {
            0 => Err(Error::NotFound { kind, id }),
            _ => Ok(()),
        }
    }

    async fn delete_by_id(&self, table: Table, kind: &'static str, id: String) -> Result<(), Error> {
        let statement = query::Sql {
            text: format!("DELETE FROM {} WHERE id = ?", table.name),
            params: vec![id.clone().into()],
        };
        self.change_one(statement, kind, id, &[]).await
    }

    /// Inserts a database or destination row unless `request_id` was used by an earlier
    /// create of the same kind.
    async fn create_named(
        &self,
        table: Table,
        kind: &'static str,
        id: String,
        name: &str,
        mut values: rows::Values,
        request_id: Option<&str>,
    ) -> Result<Created, Error> {
        let mut transaction = self.begin_write().await?;
        if let Some(request_id) = request_id {
            let sql = format!("SELECT id FROM {} WHERE request_id = ?", table.name);
            let existing: Option<String> = sqlx::query_scalar(&sql)
                .bind(request_id)
                .fetch_optional(&mut *transaction)
                .await
                .map_err(backend(&format!("looking up a {kind} request id")))?;
            if let Some(existing) = existing {
                return Ok(Created::Existing(existing));
            }
        }
        values.push(("request_id", request_id.into()));
        let unique = [Unique::name(table, name), Unique::id(table, &id)];
        let statement = rows::insert(table.name, id.clone(), values);
        statement
            .query()
            .execute(&mut *transaction)
            .await
            .map_err(|error| write_error(error, kind, &unique))?;
        transaction.commit().await.map_err(backend(&format!("creating {kind} {id}")))?;
        Ok(Created::New)
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_database(&self, database: &Database, request_id: Option<&str>) -> Result<Created, Error> {
        let values = rows::database_values(database, &self.sealer)?;
        let (id, name) = (database.id.to_string(), database.name.as_str());
        self.create_named(DATABASES, "database", id, name, values, request_id).await
    }

    async fn get_database(&self, id: DatabaseId) -> Result<Database, Error> {
        let decode = |row: &SqliteRow| rows::database_from_row(row, &self.sealer);
        self.fetch_one_by_id(DATABASES, "database", id.to_string(), decode).await
    }

    async fn list_databases(&self, query: &ListQuery) -> Result<Page<Database>, Error> {
        self.list(DATABASES, query, |row| rows::database_from_row(row, &self.sealer)).await
    }

    async fn update_database(&self, database: &Database) -> Result<(), Error> {
        let id = database.id.to_string();
        let statement =
            rows::update(DATABASES.name, id.clone(), rows::database_values(database, &self.sealer)?);
        let unique = [Unique::name(DATABASES, database.name.as_str())];
        self.change_one(statement, "database", id, &unique).await
    }

    async fn delete_database(&self, id: DatabaseId) -> Result<(), Error> {
        self.delete_by_id(DATABASES, "database", id.to_string()).await
    }

    async fn create_destination(
        &self,
        destination: &Destination,
        request_id: Option<&str>,
    ) -> Result<Created, Error> {
        let values = rows::destination_values(destination, &self.sealer)?;
        let (id, name) = (destination.id.to_string(), destination.name.as_str());
        self.create_named(DESTINATIONS, "destination", id, name, values, request_id).await
    }

    async fn get_destination(&self, id: DestinationId) -> Result<Destination, Error> {
        let decode = |row: &SqliteRow| rows::destination_from_row(row, &self.sealer);
        self.fetch_one_by_id(DESTINATIONS, "destination", id.to_string(), decode).await
    }

    async fn find_destination_by_name(&self, name: &str) -> Result<Option<Destination>, Error> {
        let row = sqlx::query("SELECT * FROM destinations WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend("finding a destination by name"))?;
        row.as_ref().map(|row| rows::destination_from_row(row, &self.sealer)).transpose()
    }

    async fn list_destinations(&self, query: &ListQuery) -> Result<Page<Destination>, Error> {
        self.list(DESTINATIONS, query, |row| rows::destination_from_row(row, &self.sealer)).await
    }

    async fn update_destination(&self, destination: &Destination) -> Result<(), Error> {
        let id = destination.id.to_string();
        let statement =
            rows::update(DESTINATIONS.name, id.clone(), rows::destination_values(destination, &self.sealer)?);
        let unique = [Unique::name(DESTINATIONS, destination.name.as_str())];
        self.change_one(statement, "destination", id, &unique).await
    }

    async fn delete_destination(&self, id: DestinationId) -> Result<(), Error> {
        self.delete_by_id(DESTINATIONS, "destination", id.to_string()).await
    }

    async fn destination_in_use(&self, id: DestinationId) -> Result<bool, Error> {
        let id = id.to_string();
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM databases WHERE policy_destination_id = ?) \
             OR EXISTS (SELECT 1 FROM backups WHERE destination_id = ?)",
        )
        .bind(&id)
        .bind(&id)
        .fetch_one(&self.pool)
        .await
        .map_err(backend(&format!("checking the use of destination {id}")))
    }

    async fn create_backup(&self, backup: &Backup) -> Result<(), Error> {
        let id = backup.id.to_string();
        let statement = rows::insert(BACKUPS.name, id.clone(), rows::backup_values(backup)?);
        let unique = [Unique::id(BACKUPS, &id)];
        statement.query().execute(&self.pool).await.map_err(|error| write_error(error, "backup", &unique))?;
        Ok(())
    }

    async fn get_backup(&self, id: BackupId) -> Result<Backup, Error> {
        self.fetch_one_by_id(BACKUPS, "backup", id.to_string(), rows::backup_from_row).await
    }

    async fn list_backups(&self, query: &ListQuery) -> Result<Page<Backup>, Error> {
        self.list(BACKUPS, query, rows::backup_from_row).await
    }

    async fn update_backup(&self, backup: &Backup) -> Result<(), Error> {
        let id = backup.id.to_string();
        let statement = rows::update(BACKUPS.name, id.clone(), rows::backup_values(backup)?);
        self.change_one(statement, "backup", id, &[]).await
    }

    async fn delete_backup(&self, id: BackupId) -> Result<(), Error> {
        self.delete_by_id(BACKUPS, "backup", id.to_string()).await
    }

    async fn create_operation(&self, operation: &Operation, backup: Option<&Backup>) -> Result<(), Error> {
        let id = operation.id.to_string();
        let insert_operation = rows::insert(OPERATIONS.name, id.clone(), rows::operation_values(operation)?);
        let insert_backup = match backup {
            Some(backup) => Some((
                backup.id.to_string(),
                rows::insert(BACKUPS.name, backup.id.to_string(), rows::backup_values(backup)?),
            )),
            None => None,
        };
        let request_id = operation.request_id.as_deref().unwrap_or_default();
        let unique = [Unique::id(OPERATIONS, &id), Unique::request_id(request_id)];
        let mut transaction = self.begin_write().await?;
        insert_operation
            .query()
            .execute(&mut *transaction)
            .await
            .map_err(|error| write_error(error, "operation", &unique))?;
        if let Some((backup_id, insert_backup)) = insert_backup {
            let unique = [Unique::id(BACKUPS, &backup_id)];
            insert_backup
                .query()
                .execute(&mut *transaction)
                .await
                .map_err(|error| write_error(error, "backup", &unique))?;
        }
        transaction.commit().await.map_err(backend(&format!("creating operation {id}")))
    }

    async fn get_operation(&self, id: OperationId) -> Result<Operation, Error> {
        self.fetch_one_by_id(OPERATIONS, "operation", id.to_string(), rows::operation_from_row).await
    }

    async fn find_operation_by_request_id(
        &self,
        kind: OperationKind,
        request_id: &str,
    ) -> Result<Option<Operation>, Error> {
        let row = sqlx::query("SELECT * FROM operations WHERE kind = ? AND request_id = ?")
            .bind(kind.as_str())
            .bind(request_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend("finding an operation by request id"))?;
        row.as_ref().map(rows::operation_from_row).transpose()
    }

    async fn list_operations(&self, query: &ListQuery) -> Result<Page<Operation>, Error> {
        self.list(OPERATIONS, query, rows::operation_from_row).await
    }

    async fn update_operation(&self, operation: &Operation) -> Result<(), Error> {
        let id = operation.id.to_string();
        let statement = rows::update(OPERATIONS.name, id.clone(), rows::operation_values(operation)?);
        let request_id = operation.request_id.as_deref().unwrap_or_default();
        self.change_one(statement, "operation", id, &[Unique::request_id(request_id)]).await
    }

    async fn delete_operation(&self, id: OperationId) -> Result<(), Error> {
        self.delete_by_id(OPERATIONS, "operation", id.to_string()).await
    }
}

/// A unique constraint a write may violate, as SQLite names it in its message
/// (`UNIQUE constraint failed: databases.name`), and the error to report for it.
struct Unique<'v> {
    columns: String,
    field: &'static str,
    value: &'v str,
}

impl<'v> Unique<'v> {
    fn id(table: Table, id: &'v str) -> Self {
        Unique { columns: format!("{}.id", table.name), field: "id", value: id }
    }

    fn name(table: Table, name: &'v str) -> Self {
        Unique { columns: format!("{}.name", table.name), field: "name", value: name }
    }

    fn request_id(request_id: &'v str) -> Self {
        Unique {
            columns: "operations.kind, operations.request_id".to_owned(),
            field: "request_id",
            value: request_id,
        }
    }
}

/// Maps a failed write: a violation of one of `unique` is [`Error::AlreadyExists`],
/// anything else a backend failure. SQLite's constraint messages name columns, never
/// the values bound.
fn write_error(error: sqlx::Error, kind: &'static str, unique: &[Unique<'_>]) -> Error {
    let violated = match &error {
        sqlx::Error::Database(database_error) if database_error.is_unique_violation() => {
            database_error.message().strip_prefix("UNIQUE constraint failed: ").map(str::to_owned)
        }
        _ => None,
    };
    let clash = violated.and_then(|columns| unique.iter().find(|unique| unique.columns == columns));
    match clash {
        Some(unique) => Error::AlreadyExists { kind, field: unique.field, value: unique.value.to_owned() },
        None => Error::Backend(format!("writing a {kind}: {error}")),
    }
}

/// Maps any other sqlx failure, saying what was being done. sqlx errors carry SQLite's
/// message, never bound values.
fn backend(context: &str) -> impl FnOnce(sqlx::Error) -> Error + '_ {
    move |error| Error::Backend(format!("{context}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::suite;

    #[tokio::test]
    async fn suite_in_memory() {
        let store = SqliteStore::open_in_memory().await.unwrap();
        suite::run_all(&store).await;
    }

    #[tokio::test]
    async fn suite_on_file_and_data_survives_reopening() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("nested/dir/catalog.db");
        let key = CatalogKey::random().unwrap();
        let store = SqliteStore::open(&path, &key).await.unwrap();
        suite::run_all(&store).await;
        let written = suite::write_sample(&store).await;
        store.close().await;

        let reopened = SqliteStore::open(&path, &key).await.unwrap();
        suite::check_sample(&reopened, &written).await;
        // Running the suite again on a catalog holding data checks that it is scoped.
        suite::run_all(&reopened).await;
        let journal_mode: String =
            sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&reopened.pool).await.unwrap();
        assert_eq!(journal_mode, "wal");
    }

    /// Every byte of the catalog's files (the database, its write-ahead log).
    fn catalog_bytes(path: &Path) -> Vec<u8> {
        let mut bytes = std::fs::read(path).unwrap();
        for suffix in ["-wal", "-shm", "-journal"] {
            let mut side = path.as_os_str().to_owned();
            side.push(suffix);
            bytes.extend(std::fs::read(side).unwrap_or_default());
        }
        bytes
    }

    fn holds(haystack: &[u8], needle: &str) -> bool {
        haystack.windows(needle.len()).any(|window| window == needle.as_bytes())
    }

    #[tokio::test]
    async fn secrets_are_sealed_and_plain_ones_of_an_older_catalog_sealed_at_open() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("catalog.db");
        let key = CatalogKey::random().unwrap();
        let store = SqliteStore::open(&path, &key).await.unwrap();
        let written = suite::write_sample(&store).await;
        assert!(!holds(&catalog_bytes(&path), suite::SECRET), "a secret is in the catalog's files");

        // An older catalog: the same rows with their secrets in plain text.
        let database = written.database();
        let destination = written.destination();
        let webhook_secret = database.webhook.as_ref().map(|webhook| webhook.secret.expose().to_owned());
        assert!(webhook_secret.is_some(), "the sample has a webhook");
        sqlx::query("UPDATE databases SET connection_uri = ?, webhook_secret = ? WHERE id = ?")
            .bind(database.connection_uri.expose().as_str())
            .bind(webhook_secret)
            .bind(database.id.to_string())
            .execute(&store.pool)
            .await
            .unwrap();
        let credentials = serde_json::to_string(&destination.credentials).unwrap();
        sqlx::query("UPDATE destinations SET uri = ?, credentials = ? WHERE id = ?")
            .bind(&destination.uri)
            .bind(credentials)
            .bind(destination.id.to_string())
            .execute(&store.pool)
            .await
            .unwrap();
        let error = store.get_database(database.id).await.unwrap_err();
        assert!(error.to_string().contains("connection_uri is not sealed"), "{error}");
        store.close().await;
        assert!(holds(&catalog_bytes(&path), suite::SECRET), "the test wrote plain secrets");

        let reopened = SqliteStore::open(&path, &key).await.unwrap();
        suite::check_sample(&reopened, &written).await;
        reopened.close().await;
        assert!(!holds(&catalog_bytes(&path), suite::SECRET), "a plain secret stayed in the catalog's files");
    }

    #[tokio::test]
    async fn another_key_does_not_open_the_catalog_and_a_moved_value_does_not_open() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("catalog.db");
        let key = CatalogKey::random().unwrap();
        let store = SqliteStore::open(&path, &key).await.unwrap();
        let written = suite::write_sample(&store).await;
        let other = suite::write_sample(&store).await;
        // One row's sealed URI copied into another row does not open there.
        sqlx::query("UPDATE databases SET connection_uri = (SELECT connection_uri FROM databases WHERE id = ?) WHERE id = ?")
            .bind(written.database().id.to_string())
            .bind(other.database().id.to_string())
            .execute(&store.pool)
            .await
            .unwrap();
        let error = store.get_database(other.database().id).await.unwrap_err();
        assert!(error.to_string().contains("belongs to another row"), "{error}");
        store.close().await;

        let wrong = CatalogKey::random().unwrap();
        let error = SqliteStore::open(&path, &wrong).await.unwrap_err().to_string();
        assert!(
            error.contains("wrong catalog key") && error.contains(&key.id()) && error.contains(&wrong.id()),
            "{error}"
        );
        let reopened = SqliteStore::open(&path, &key).await.unwrap();
        assert_eq!(reopened.get_database(written.database().id).await.unwrap(), *written.database());
    }

    #[tokio::test]
    async fn a_closed_store_fails_plainly() {
        let store = SqliteStore::open_in_memory().await.unwrap();
        store.close().await;
        let error = store.get_backup(BackupId::new()).await.unwrap_err();
        assert!(matches!(error, Error::Backend(_)), "{error}");
    }
}

//! Registering, reading, changing and removing databases.

use super::{Cellar, DatabasePatch, Error, NewDatabase};
use crate::domain::list::{ListQuery, Page};
use crate::domain::{ConnectionUri, Database, DatabaseId, DestinationId};
use crate::metadata::Created;

impl Cellar {
    /// Registers a database; a retried request id returns the first registration.
    pub async fn create_database(
        &self,
        new: NewDatabase,
        request_id: Option<&str>,
    ) -> Result<Database, Error> {
        self.check_destination_exists(new.backup_policy.destination_id).await?;
        if let Some(webhook) = &new.webhook {
            self.check_webhook(webhook).await?;
        }
        let now = crate::domain::now();
        let database = Database {
            id: DatabaseId::new(),
            name: new.name,
            project_id: new.project_id,
            engine: new.engine,
            connection_uri: new.connection_uri,
            backup_policy: new.backup_policy,
            labels: new.labels,
            webhook: new.webhook,
            create_time: now,
            update_time: now,
        };
        match self.store.create_database(&database, request_id).await? {
            Created::New => {
                tracing::info!(database = %database.id, name = %database.name, "database registered");
                self.schedules_changed();
                Ok(database)
            }
            Created::Existing(id) => self.get_database(parse_stored_id(&id)?).await,
        }
    }

    /// Reads a database.
    pub async fn get_database(&self, id: DatabaseId) -> Result<Database, Error> {
        Ok(self.store.get_database(id).await?)
    }

    /// Lists databases.
    pub async fn list_databases(&self, query: &ListQuery) -> Result<Page<Database>, Error> {
        Ok(self.store.list_databases(query).await?)
    }

    /// Applies a patch; the engine never changes, so a new URI must fit it.
    pub async fn update_database(&self, id: DatabaseId, patch: DatabasePatch) -> Result<Database, Error> {
        let mut database = self.store.get_database(id).await?;
        if let Some(uri) = patch.connection_uri {
            Database::check_engine_matches_uri(database.engine, &uri)?;
            database.connection_uri = keep_stored_password(uri, &database.connection_uri);
        }
        let policy = patch.backup_policy.apply(database.backup_policy.clone());
        if policy.destination_id != database.backup_policy.destination_id {
            self.check_destination_exists(policy.destination_id).await?;
        }
        database.backup_policy = policy;
        if let Some(name) = patch.name {
            database.name = name;
        }
        if let Some(project_id) = patch.project_id {
            database.project_id = project_id;
        }
        if let Some(labels) = patch.labels {
            database.labels = labels;
        }
        database.webhook = self.patched_webhook(database.webhook.take(), patch.webhook).await?;
        database.update_time = crate::domain::now();
        self.store.update_database(&database).await?;
        self.schedules_changed();
        Ok(database)
    }

    /// Unregisters a database. Its backups stay in the catalog; a database with a data
    /// operation queued or running is busy.
    pub async fn delete_database(&self, id: DatabaseId) -> Result<(), Error> {
        self.store.get_database(id).await?;
        if let Some(operation_id) = self.manager.busy_with(id) {
            return Err(Error::DatabaseBusy { database_id: id, operation_id });
        }
        self.store.delete_database(id).await?;
        tracing::info!(database = %id, "database unregistered");
        self.schedules_changed();
        Ok(())
    }

    pub(super) async fn check_destination_exists(&self, id: Option<DestinationId>) -> Result<(), Error> {
        let Some(id) = id else { return Ok(()) };
        // An unknown destination in a request is NOT_FOUND, like any unknown id.
        self.store.get_destination(id).await?;
        Ok(())
    }
}

// Clients read URIs back with the password shown as `****`; sending such a URI back
// keeps the stored password instead of setting it to four stars.
fn keep_stored_password(mut uri: ConnectionUri, stored: &ConnectionUri) -> ConnectionUri {
    if uri.expose().password() == Some("****") {
        uri.set_password(stored.expose().password());
    }
    uri
}

/// Parses an id the catalog handed back.
pub(super) fn parse_stored_id<T: std::str::FromStr>(text: &str) -> Result<T, Error> {
    text.parse().map_err(|_| Error::Internal(format!("the catalog holds a malformed id '{text}'")))
}

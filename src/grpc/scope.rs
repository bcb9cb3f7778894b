//! What a handler checks once it knows the resource: the [`Caller`] the auth layer put
//! in the request, and, for a `member`, whether the database a call acts on (directly,
//! or through a backup or an operation) is in its scope. Every check also records the
//! resource for the audit line. A member gets PERMISSION_DENIED for a resource outside
//! its scope and for one that does not exist alike, so that ids cannot be probed.

use std::collections::HashMap;

use tonic::{Request, Status};

use super::status::{permission_denied, to_status};
use crate::auth::Caller;
use crate::domain::{BackupId, DatabaseId, OperationId};
use crate::service::{Cellar, Error};

/// The caller the auth layer admitted; its absence (routes served without the layer) is
/// refused rather than served open.
pub(super) fn caller<T>(request: &Request<T>) -> Result<Caller, Status> {
    request.extensions().get::<Caller>().cloned().ok_or_else(|| {
        tracing::error!("a call reached a handler without passing the auth layer");
        Status::internal("the call was not authorized")
    })
}

/// Checks that the caller may act on database `id`.
pub(super) async fn database(caller: &Caller, cellar: &Cellar, id: DatabaseId) -> Result<(), Status> {
    caller.touches(format!("databases/{id}"));
    check(caller, cellar, Some(id)).await
}

/// Checks that the caller may act on backup `id` (its database's scope).
pub(super) async fn backup(caller: &Caller, cellar: &Cellar, id: BackupId) -> Result<(), Status> {
    caller.touches(format!("backups/{id}"));
    if !caller.role.is_scoped() {
        return Ok(());
    }
    let database = match cellar.get_backup(id).await {
        Ok(backup) => backup.database_id,
        Err(Error::NotFound { .. }) => None,
        Err(error) => return Err(to_status(error)),
    };
    check(caller, cellar, database).await
}

/// Checks that the caller may act on operation `id` (its database's scope; an
/// operation on no database is outside every member's scope).
pub(super) async fn operation(caller: &Caller, cellar: &Cellar, id: OperationId) -> Result<(), Status> {
    caller.touches(format!("operations/{id}"));
    if !caller.role.is_scoped() {
        return Ok(());
    }
    let database = match cellar.operations().get(id).await {
        Ok(operation) => operation.database_id,
        Err(error) => match Error::from(error) {
            Error::NotFound { .. } => None,
            error => return Err(to_status(error)),
        },
    };
    check(caller, cellar, database).await
}

/// Refuses a member outright: for calls that name no database of its scope.
pub(super) fn unscoped(caller: &Caller) -> Result<(), Status> {
    if caller.role.is_scoped() {
        return Err(permission_denied(
            caller.permission.name,
            "a member acts only on the databases of its scope",
        ));
    }
    Ok(())
}

async fn check(caller: &Caller, cellar: &Cellar, database: Option<DatabaseId>) -> Result<(), Status> {
    if !caller.role.is_scoped() {
        return Ok(());
    }
    let covered = match database {
        Some(id) => match cellar.get_database(id).await {
            Ok(database) => caller.covers(&database),
            Err(Error::NotFound { .. }) => false,
            Err(error) => return Err(to_status(error)),
        },
        None => false,
    };
    if covered {
        Ok(())
    } else {
        Err(permission_denied(caller.permission.name, "the database is not in the caller's scope"))
    }
}

/// Which databases a caller sees, for filtering list pages (each database looked up
/// once per page).
pub(super) struct Visible<'a> {
    caller: &'a Caller,
    cellar: &'a Cellar,
    known: HashMap<DatabaseId, bool>,
}

impl<'a> Visible<'a> {
    /// The caller's view.
    pub(super) fn new(caller: &'a Caller, cellar: &'a Cellar) -> Self {
        Visible { caller, cellar, known: HashMap::new() }
    }

    /// Whether lists are filtered at all for this caller.
    pub(super) fn filters(&self) -> bool {
        self.caller.role.is_scoped()
    }

    /// Whether the caller sees what belongs to database `id` (nothing for `None`).
    pub(super) async fn database(&mut self, id: Option<DatabaseId>) -> Result<bool, Status> {
        if !self.filters() {
            return Ok(true);
        }
        let Some(id) = id else { return Ok(false) };
        if let Some(seen) = self.known.get(&id) {
            return Ok(*seen);
        }
        let seen = match self.cellar.get_database(id).await {
            Ok(database) => self.caller.covers(&database),
            Err(Error::NotFound { .. }) => false,
            Err(error) => return Err(to_status(error)),
        };
        self.known.insert(id, seen);
        Ok(seen)
    }

    /// Keeps the items the caller sees.
    pub(super) async fn retain<T>(
        &mut self,
        items: Vec<T>,
        database_of: impl Fn(&T) -> Option<DatabaseId>,
    ) -> Result<Vec<T>, Status> {
        if !self.filters() {
            return Ok(items);
        }
        let mut kept = Vec::with_capacity(items.len());
        for item in items {
            if self.database(database_of(&item)).await? {
                kept.push(item);
            }
        }
        Ok(kept)
    }
}

//! Roles, scopes and permissions, and the one rule that says whether a role may use a
//! permission: `viewer` reads, `member` reads and moves data of the databases in its
//! scope, `operator` does that on every database, `admin` does everything.

use std::fmt;
use std::sync::{Arc, Mutex};

use crate::domain::Database;

/// What a caller may do, from least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Reads only, on every resource.
    Viewer,
    /// Reads and data operations, only on the databases its scope covers.
    Member,
    /// Reads and data operations on every database.
    Operator,
    /// Everything, including registering databases and destinations.
    Admin,
}

impl Role {
    /// Parses `admin`, `operator`, `member` or `viewer`.
    pub fn parse(text: &str) -> Option<Role> {
        match text.trim().to_ascii_lowercase().as_str() {
            "admin" => Some(Role::Admin),
            "operator" => Some(Role::Operator),
            "member" => Some(Role::Member),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }

    /// The role's name as configured.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Member => "member",
            Role::Viewer => "viewer",
        }
    }

    /// Whether this role may use a permission of `level` at all (a member's calls are
    /// then checked against its scope, resource by resource).
    pub fn reaches(self, level: Level) -> bool {
        match level {
            Level::Read => true,
            Level::Data => self >= Role::Member,
            Level::Admin => self == Role::Admin,
        }
    }

    /// Whether calls of this role are limited to a scope.
    pub fn is_scoped(self) -> bool {
        self == Role::Member
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of thing a permission lets a caller do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Reading the catalog: any role.
    Read,
    /// Moving data (backups, restores, imports, exports, downloads, cancels): members
    /// within their scope, operators and admins.
    Data,
    /// Changing what Cellar manages (databases, destinations): admins only.
    Admin,
}

/// A named permission, e.g. `backups.create`, and the level it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permission {
    /// Its name, `<resource>.<verb>`; what PERMISSION_DENIED names.
    pub name: &'static str,
    /// What it needs.
    pub level: Level,
}

/// The databases a `member` may work on: those named (by id or name), those carrying
/// one of the labels (`key=value`, or `key` for any value), those of the projects.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// Database ids or names.
    #[serde(default)]
    pub databases: Vec<String>,
    /// Labels, `key=value` or `key`.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Project ids.
    #[serde(default)]
    pub projects: Vec<String>,
}

impl Scope {
    /// Whether the scope covers `database`.
    pub fn covers(&self, database: &Database) -> bool {
        let id = database.id.to_string();
        self.databases.iter().any(|named| *named == id || named == database.name.as_str())
            || self.projects.contains(&database.project_id)
            || self.labels.iter().any(|label| match label.split_once('=') {
                Some((key, value)) => {
                    database.labels.get(key.trim()).is_some_and(|held| held == value.trim())
                }
                None => database.labels.contains_key(label.trim()),
            })
    }

    /// Whether it covers nothing at all.
    pub fn is_empty(&self) -> bool {
        self.databases.is_empty() && self.labels.is_empty() && self.projects.is_empty()
    }
}

/// An authenticated caller of one request: who, with which role and scope, asking for
/// which permission. It also collects, for the audit line, the resource the call
/// touched.
#[derive(Debug, Clone)]
pub struct Caller {
    /// `token:<id>` for a configured token, `jwt:<sub>` for a JWT, `anonymous` when
    /// authentication is off.
    pub id: String,
    /// Its role.
    pub role: Role,
    /// Its scope (used for `member` only).
    pub scope: Scope,
    /// The permission the call needs.
    pub permission: Permission,
    resource: Arc<Mutex<Option<String>>>,
}

impl Caller {
    /// A caller with a role and scope, for `permission`.
    pub fn new(id: String, role: Role, scope: Scope, permission: Permission) -> Caller {
        Caller { id, role, scope, permission, resource: Arc::default() }
    }

    /// The caller of a server without authentication: an admin named `anonymous`.
    pub fn anonymous(permission: Permission) -> Caller {
        Caller::new("anonymous".to_owned(), Role::Admin, Scope::default(), permission)
    }

    /// Whether the caller may see or act on `database` (always, unless it is a member
    /// whose scope does not cover it).
    pub fn covers(&self, database: &Database) -> bool {
        !self.role.is_scoped() || self.scope.covers(database)
    }

    /// Records the resource the call acts on, for the audit line (the first one named
    /// stays).
    pub fn touches(&self, resource: impl fmt::Display) {
        let mut slot = self.resource.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if slot.is_none() {
            *slot = Some(resource.to_string());
        }
    }

    /// The resource recorded by [`Caller::touches`], if any.
    pub fn resource(&self) -> Option<String> {
        self.resource.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_reach_their_levels() {
        let cases = [
            (Role::Viewer, [true, false, false]),
            (Role::Member, [true, true, false]),
            (Role::Operator, [true, true, false]),
            (Role::Admin, [true, true, true]),
        ];
        for (role, expected) in cases {
            let reached = [Level::Read, Level::Data, Level::Admin].map(|level| role.reaches(level));
            assert_eq!(reached, expected, "{role}");
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
    }
}

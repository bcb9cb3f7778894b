//! Putting a loaded scratch database S in the place of the target T. MySQL has no
//! `RENAME DATABASE`, but `RENAME TABLE` moves any number of tables between databases
//! in one atomic statement; views, triggers, routines and events do not move with
//! it, so they are carried by their definitions:
//!
//! 1. Capture the definitions (`SHOW CREATE ...`) of S's and T's views, routines,
//!    triggers and events, S's name taken out of S's (T is created, with S's
//!    character set, if missing).
//! 2. Drop S's triggers (a table with triggers cannot change database), then T's
//!    triggers and views (a view would stand in the way of a table of its name).
//! 3. One `RENAME TABLE T.a TO O.a, ..., S.x TO T.x, ...`, O being another scratch
//!    database for T's old tables. If it fails, T's views and triggers are put back:
//!    T is as it was.
//! 4. Drop T's old routines and events; create S's routines, views (in rounds, as a
//!    view may use another), triggers and events in T. If that fails, the new objects
//!    are dropped, the tables renamed back and T's old objects put back.
//! 5. Drop O and S.
//!
//! Between steps 2 and 4, sessions using T may see it without views or triggers for
//! a moment. Not carried over from T's old state: grants on T's objects (they name
//! objects, so they still apply to objects of the same name), and the definitions'
//! client character set (they are re-created over a utf8mb4 connection, with their
//! `sql_mode` and, for events, `time_zone`).

use super::client::{Server, identifier, literal};
use crate::engine::Error;
use crate::engine::sql::scratch_name;

/// How long the rename waits for sessions holding T's tables, in seconds.
const LOCK_WAIT_SECONDS: u32 = 60;

/// What kind of object a definition creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Function,
    Procedure,
    View,
    Trigger,
    Event,
}

impl Kind {
    /// The SQL keyword (`FUNCTION`, ...).
    fn keyword(self) -> &'static str {
        match self {
            Kind::Function => "FUNCTION",
            Kind::Procedure => "PROCEDURE",
            Kind::View => "VIEW",
            Kind::Trigger => "TRIGGER",
            Kind::Event => "EVENT",
        }
    }
}

/// How to create one object again.
#[derive(Debug, Clone)]
struct Definition {
    kind: Kind,
    name: String,
    /// The `sql_mode` it was created under, when it keeps one.
    sql_mode: Option<String>,
    /// The time zone an event was created in.
    time_zone: Option<String>,
    /// The `CREATE ...` statement.
    create: String,
}

/// The objects of one database other than tables, in creation order (routines first,
/// as views and triggers may call them).
#[derive(Debug, Default)]
struct Objects(Vec<Definition>);

impl Objects {
    fn of(&self, kinds: &[Kind]) -> Vec<&Definition> {
        self.0.iter().filter(|definition| kinds.contains(&definition.kind)).collect()
    }
}

/// Moves database `scratch`'s content into `target` (see the module's header), and
/// drops `scratch` whatever happens. Returns the tables moved.
pub(super) async fn swap(server: Server, scratch: String, target: String) -> Result<u64, Error> {
    let old_home = scratch_name(&target);
    let swapped = swap_through(&server, &scratch, &target, &old_home).await;
    for name in [&old_home, &scratch] {
        if let Err(error) = drop_database(&server, name).await {
            tracing::warn!(database = %name, %error, "cannot drop a scratch database");
        }
    }
    swapped
}

async fn swap_through(server: &Server, scratch: &str, target: &str, old_home: &str) -> Result<u64, Error> {
    let created_target = !server.database_exists(target).await?;
    if created_target {
        let charset_sql = format!(
            "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE \
             SCHEMA_NAME = {}",
            literal(scratch)
        );
        let charset = server.query(None, &charset_sql).await?.into_iter().next().unwrap_or_default();
        let [charset, collation] = charset.as_slice() else {
            return Err(Error::RestoreFailed(format!("the scratch database {scratch} is gone")));
        };
        let create = format!(
            "CREATE DATABASE {} CHARACTER SET {} COLLATE {}",
            identifier(target),
            literal(charset),
            literal(collation)
        );
        server.query(None, &create).await?;
    }
    let outcome = swap_into_existing(server, scratch, target, old_home).await;
    if outcome.is_err()
        && created_target
        && let Err(error) = drop_database(server, target).await
    {
        tracing::warn!(database = %target, %error, "cannot drop the database made for a failed load");
    }
    outcome
}

async fn swap_into_existing(
    server: &Server,
    scratch: &str,
    target: &str,
    old_home: &str,
) -> Result<u64, Error> {
    let new = capture(server, scratch).await?;
    let old = capture(server, target).await?;
    let new_tables = tables(server, scratch).await?;
    let old_tables = tables(server, target).await?;
    server.query(None, &format!("CREATE DATABASE {}", identifier(old_home))).await?;

    drop_objects(server, scratch, &new.of(&[Kind::Trigger])).await?;
    let in_the_way = old.of(&[Kind::Trigger, Kind::View]);
    let cleared = drop_objects(server, target, &in_the_way).await;
    let renamed = match cleared {
        Ok(()) => rename(server, &[(target, old_home, &old_tables), (scratch, target, &new_tables)]).await,
        Err(error) => Err(error),
    };
    if let Err(error) = renamed {
        let put_back = create_objects(server, target, &in_the_way).await;
        return Err(failed(target, error, put_back));
    }

    let installed =
        match drop_objects(server, target, &old.of(&[Kind::Function, Kind::Procedure, Kind::Event])).await {
            Ok(()) => create_objects(server, target, &new.0.iter().collect::<Vec<_>>()).await,
            Err(error) => Err(error),
        };
    let Err(error) = installed else { return Ok(new_tables.len() as u64) };
    // Undo: the new objects out, the tables back, the old objects in again.
    let undone = async {
        drop_objects(server, target, &new.0.iter().collect::<Vec<_>>()).await?;
        rename(server, &[(target, scratch, &new_tables), (old_home, target, &old_tables)]).await?;
        create_objects(server, target, &old.0.iter().collect::<Vec<_>>()).await
    }
    .await;
    Err(failed(target, error, undone))
}

/// The error of a failed swap, saying whether the target could be put back.
fn failed(target: &str, error: Error, put_back: Result<(), Error>) -> Error {
    match put_back {
        Ok(()) => Error::RestoreFailed(format!(
            "the loaded copy could not replace database {target}: {error}; {target} was left as it was"
        )),
        Err(undo_error) => Error::RestoreFailed(format!(
            "the loaded copy could not replace database {target}: {error}; putting {target} back failed too \
             ({undo_error}): check its views, triggers, routines and events"
        )),
    }
}

/// The tables (base tables, sequences: all but views) of `database`.
async fn tables(server: &Server, database: &str) -> Result<Vec<String>, Error> {
    let sql = format!(
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = {} AND TABLE_TYPE <> 'VIEW' ORDER BY 1",
        literal(database)
    );
    server.column(None, &sql).await
}

/// Renames every table of each `(from, to, tables)` in one atomic statement.
async fn rename(server: &Server, moves: &[(&str, &str, &Vec<String>)]) -> Result<(), Error> {
    let pairs: Vec<String> = moves
        .iter()
        .flat_map(|(from, to, tables)| {
            tables.iter().map(move |table| {
                format!(
                    "{}.{} TO {}.{}",
                    identifier(from),
                    identifier(table),
                    identifier(to),
                    identifier(table)
                )
            })
        })
        .collect();
    if pairs.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "SET SESSION lock_wait_timeout = {LOCK_WAIT_SECONDS};\nRENAME TABLE {};",
        pairs.join(",\n  ")
    );
    server.query(None, &sql).await.map(drop)
}

/// The definitions of `database`'s routines, views, triggers and events.
async fn capture(server: &Server, database: &str) -> Result<Objects, Error> {
    let schema = literal(database);
    let list_sql = format!(
        "SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = {schema} AND \
         ROUTINE_TYPE IN ('FUNCTION', 'PROCEDURE') ORDER BY ROUTINE_TYPE, ROUTINE_NAME;\n\
         SELECT 'VIEW', TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = {schema} ORDER BY TABLE_NAME;\n\
         SELECT 'TRIGGER', TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = {schema} ORDER BY \
         EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, ACTION_ORDER;\n\
         SELECT 'EVENT', EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = {schema} ORDER BY EVENT_NAME;"
    );
    let listed = server.query(None, &list_sql).await?;
    let mut objects = Vec::new();
    for row in listed {
        let [keyword, name] = row.as_slice() else { continue };
        let kind = match keyword.as_str() {
            "FUNCTION" => Kind::Function,
            "PROCEDURE" => Kind::Procedure,
            "VIEW" => Kind::View,
            "TRIGGER" => Kind::Trigger,
            _ => Kind::Event,
        };
        objects.push((kind, name.clone()));
    }
    if objects.is_empty() {
        return Ok(Objects::default());
    }
    let show_sql: String = objects
        .iter()
        .map(|(kind, name)| format!("SHOW CREATE {} {};\n", kind.keyword(), identifier(name)))
        .collect();
    let shown = server.query(Some(database), &show_sql).await?;
    if shown.len() != objects.len() {
        return Err(Error::RestoreFailed(format!(
            "the definitions of database {database}'s views, triggers, routines and events could not be read \
             ({} of {})",
            shown.len(),
            objects.len()
        )));
    }
    let qualifier = format!("{}.", identifier(database));
    let mut definitions = Vec::new();
    for ((kind, name), row) in objects.into_iter().zip(shown) {
        let field = |index: usize| row.get(index).cloned().unwrap_or_default();
        let (sql_mode, time_zone, create) = match kind {
            Kind::View => (None, None, field(1)),
            Kind::Event => (Some(field(1)), Some(field(2)), field(3)),
            Kind::Function | Kind::Procedure | Kind::Trigger => (Some(field(1)), None, field(2)),
        };
        if create.is_empty() || create == "NULL" {
            return Err(Error::RestoreFailed(format!(
                "the definition of {} {name} in database {database} cannot be read (missing privileges?)",
                kind.keyword().to_ascii_lowercase()
            )));
        }
        definitions.push(Definition {
            kind,
            name,
            sql_mode,
            time_zone,
            create: create.replace(&qualifier, ""),
        });
    }
    // Creation order: routines, views, triggers, events.
    definitions.sort_by_key(|definition| match definition.kind {
        Kind::Function | Kind::Procedure => 0,
        Kind::View => 1,
        Kind::Trigger => 2,
        Kind::Event => 3,
    });
    Ok(Objects(definitions))
}

/// Drops `definitions`' objects from `database`, those already gone ignored.
async fn drop_objects(server: &Server, database: &str, definitions: &[&Definition]) -> Result<(), Error> {
    if definitions.is_empty() {
        return Ok(());
    }
    let sql: String = definitions
        .iter()
        .map(|definition| {
            format!("DROP {} IF EXISTS {};\n", definition.kind.keyword(), identifier(&definition.name))
        })
        .collect();
    server.query(Some(database), &sql).await.map(drop)
}

/// Creates `definitions`' objects in `database`: views one at a time, in rounds until
/// every view that uses another finds it; the others in one script.
async fn create_objects(server: &Server, database: &str, definitions: &[&Definition]) -> Result<(), Error> {
    let (views, others): (Vec<&Definition>, Vec<&Definition>) =
        definitions.iter().partition(|definition| definition.kind == Kind::View);
    let (routines, rest): (Vec<&Definition>, Vec<&Definition>) = others
        .into_iter()
        .partition(|definition| matches!(definition.kind, Kind::Function | Kind::Procedure));
    run_definitions(server, database, &routines).await?;
    let mut waiting = views;
    while !waiting.is_empty() {
        let mut failed = Vec::new();
        let mut last_error = None;
        for view in &waiting {
            if let Err(error) = run_definitions(server, database, &[view]).await {
                failed.push(*view);
                last_error = Some(error);
            }
        }
        if failed.len() == waiting.len() {
            return Err(
                last_error.unwrap_or_else(|| Error::RestoreFailed("views could not be created".to_owned()))
            );
        }
        waiting = failed;
    }
    run_definitions(server, database, &rest).await
}

/// Runs `definitions`' `CREATE` statements in `database`, each under its own
/// `sql_mode` (and time zone), with a delimiter no definition holds.
async fn run_definitions(server: &Server, database: &str, definitions: &[&Definition]) -> Result<(), Error> {
    if definitions.is_empty() {
        return Ok(());
    }
    // The client takes delimiters of up to 16 bytes.
    let delimiter = format!("$c_{}$", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let mut sql = format!("DELIMITER {delimiter}\n");
    for definition in definitions {
        if let Some(sql_mode) = &definition.sql_mode {
            sql.push_str(&format!("SET SESSION sql_mode = {}{delimiter}\n", literal(sql_mode)));
        }
        if let Some(time_zone) = &definition.time_zone {
            sql.push_str(&format!("SET SESSION time_zone = {}{delimiter}\n", literal(time_zone)));
        }
        sql.push_str(&definition.create);
        sql.push_str(&format!("{delimiter}\n"));
    }
    server.query(Some(database), &sql).await.map(drop)
}

/// Drops a database, foreign keys from elsewhere into it not checked.
async fn drop_database(server: &Server, name: &str) -> Result<(), Error> {
    let sql = format!("SET SESSION foreign_key_checks = 0;\nDROP DATABASE IF EXISTS {};", identifier(name));
    server.query(None, &sql).await.map(drop)
}

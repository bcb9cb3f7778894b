//! `cellar retention-plan`: what each database's retention and expiry would delete now,
//! and when its schedule runs next, read from the catalog. Nothing is deleted.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::domain::list::{Clause, ListQuery, Op, Value};
use crate::domain::{Backup, BackupOrigin, BackupState, Database};
use crate::metadata::{KeySource, SqliteStore, Store};
use crate::schedule::Schedule;
use crate::schedule::retention::{self, Candidate};

/// Flags of `cellar retention-plan`.
#[derive(Debug, clap::Args)]
pub(super) struct RetentionPlanArgs {
    /// The server's data directory, whose catalog is read.
    #[arg(long, value_name = "DIR", default_value = "./cellar-data")]
    data_dir: PathBuf,
    /// Only this database (its name or id).
    #[arg(long, value_name = "DATABASE")]
    database: Option<String>,
    /// The catalog key's file, as `cellar serve` takes it (default:
    /// `CELLAR_CATALOG_KEY`, else the generated key in the user's configuration directory).
    #[arg(long, value_name = "FILE", env = "CELLAR_CATALOG_KEY_FILE")]
    catalog_key_file: Option<PathBuf>,
}

/// Prints the plan; exit code 2 when the catalog cannot be read.
pub(super) fn run(args: RetentionPlanArgs) -> ExitCode {
    let planned = tokio::runtime::Runtime::new()
        .context("cannot start the async runtime")
        .and_then(|runtime| runtime.block_on(plan(&args)));
    match planned {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("cellar: {error:#}");
            ExitCode::from(2)
        }
    }
}

async fn plan(args: &RetentionPlanArgs) -> anyhow::Result<String> {
    let catalog = args.data_dir.join("catalog.sqlite");
    anyhow::ensure!(catalog.is_file(), "no catalog at {} (see --data-dir)", catalog.display());
    let source = match (&args.catalog_key_file, std::env::var("CELLAR_CATALOG_KEY")) {
        (Some(path), _) => KeySource::File(path.clone()),
        (None, Ok(key)) => KeySource::Value(crate::domain::Secret::new(key)),
        (None, Err(_)) => KeySource::Default,
    };
    let (key, place) = crate::metadata::key::load(&source, |name| std::env::var(name).ok())?;
    let store = SqliteStore::open(&catalog, &key)
        .await
        .with_context(|| format!("cannot open {} with the catalog key from {place}", catalog.display()))?;
    let databases = store.list_databases(&ListQuery::all(Vec::new())).await?.items;
    let chosen: Vec<&Database> = databases
        .iter()
        .filter(|database| {
            args.database
                .as_deref()
                .is_none_or(|wanted| wanted == database.name.as_str() || wanted == database.id.to_string())
        })
        .collect();
    if let (Some(wanted), true) = (&args.database, chosen.is_empty()) {
        anyhow::bail!("no database named or with id '{wanted}'");
    }
    let mut text = String::new();
    for database in chosen {
        let clause = Clause {
            field: "database_id",
            label_key: None,
            op: Op::Eq,
            value: Value::Text(database.id.to_string()),
        };
        let backups = store.list_backups(&ListQuery::all(vec![clause])).await?.items;
        describe(database, &backups, crate::domain::now(), &mut text);
    }
    Ok(text)
}

/// Appends what happens to `database`'s backups at `now`.
fn describe(database: &Database, backups: &[Backup], now: crate::domain::Timestamp, text: &mut String) {
    let policy = &database.backup_policy;
    let schedule = (!policy.schedule.is_empty()).then(|| Schedule::parse(&policy.schedule));
    let next = match &schedule {
        None => "no schedule".to_owned(),
        Some(Err(problem)) => format!("schedule '{}' is not valid: {problem}", policy.schedule),
        Some(Ok(schedule)) => {
            let last =
                backups.iter().filter(|b| b.origin == BackupOrigin::Scheduled).map(|b| b.create_time).max();
            match crate::schedule::runner::first_due(schedule, last, now) {
                Some(next) => format!("schedule '{schedule}', next run {}", next.to_rfc3339()),
                None => format!("schedule '{schedule}' runs no more"),
            }
        }
    };
    let ready: Vec<&Backup> = backups.iter().filter(|backup| backup.state == BackupState::Ready).collect();
    let _ =
        writeln!(text, "database {} ({}): {next}; {} READY backups", database.name, database.id, ready.len());

    let zone = match &schedule {
        Some(Ok(schedule)) => schedule.zone(),
        _ => chrono_tz::Tz::UTC,
    };
    let candidates: Vec<Candidate> = ready
        .iter()
        .map(|backup| Candidate {
            id: backup.id,
            create_time: backup.create_time,
            scheduled: backup.origin == BackupOrigin::Scheduled,
        })
        .collect();
    let mut doomed = Vec::new();
    for id in retention::to_delete(&candidates, &policy.retention, zone) {
        doomed.push((id, "retention".to_owned()));
    }
    let newest = ready.iter().max_by_key(|backup| backup.create_time).map(|backup| backup.id);
    for backup in &ready {
        if let Some(expired) = backup.expire_time.filter(|at| *at <= now)
            && Some(backup.id) != newest
            && !doomed.iter().any(|(id, _)| *id == backup.id)
        {
            doomed.push((backup.id, format!("expired at {}", expired.to_rfc3339())));
        }
    }
    if doomed.is_empty() {
        let _ = writeln!(text, "  nothing to delete");
    }
    for (id, why) in doomed {
        let Some(backup) = ready.iter().find(|backup| backup.id == id) else { continue };
        let _ = writeln!(
            text,
            "  would delete {} ({}), created {}: {why}",
            backup.id,
            backup.name,
            backup.create_time.to_rfc3339()
        );
    }
}

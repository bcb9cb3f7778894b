//! Child processes: a cancelled backup or restore (also mid-swap) leaves no tool
//! running, no object stored, no scratch database and a target that takes
//! connections; a source lost mid-dump fails the backup; Cellar killed outright takes
//! its pg_dump with it (a parent-death signal).

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_backup_kills_its_pg_dump_and_stores_nothing() {
    let server = TestServer::start().await;
    let name = format!("locked_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let postgres = blocking(|| server_with_fixture(&name));
    let lock = blocking(|| LockHolder::lock(&postgres, &name, "every_type"));
    let database = server.register(postgres_database("pg-locked", &postgres.url(&name))).await;

    let started = server.start_backup(backup_of(&database.id)).await;
    server
        .wait_for(&started.name, "the dumping phase", |operation| operation.meta().phase == "dumping")
        .await;
    // pg_dump is really running, and waits for the lock.
    let (postgres_ref, name_ref) = (&postgres, name.as_str());
    let waiting = "SELECT count(*) FROM pg_locks WHERE NOT granted";
    poll("pg_dump waiting for the lock", PATIENCE, || async move {
        (blocking(|| postgres_ref.psql(name_ref, waiting)) != "0").then_some(())
    })
    .await;
    assert!(!blocking(|| tools_for_database(&name)).is_empty(), "no pg_dump found for {name}");

    let request = pb::CancelOperationRequest { name: started.name.clone() };
    server.operations().cancel_operation(request).await.expect("CancelOperation");
    let done = server.wait_done(&started.name).await;
    assert_eq!(done.state(), pb::OperationState::Cancelled, "{done:?}");
    poll("pg_dump to end", PATIENCE, || async move {
        let left = blocking(|| tools_for_database(name_ref));
        left.is_empty().then_some(())
    })
    .await;

    let backup_id = done.meta().backup_id.clone();
    assert_eq!(backup_state(&server.backup(&backup_id).await), pb::BackupState::Failed);
    assert_eq!(stored_objects(&server, &backup_id), Vec::<PathBuf>::new(), "objects of a cancelled backup");
    drop(lock);
    assert_kept_secret(postgres.password(), &done);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_restore_kills_pg_restore_and_drops_its_scratch_database() {
    // pg_restore waits at a gate (a FIFO the shell opens before it becomes the real
    // pg_restore) so that the cancel lands mid-load; the other tools are the real ones.
    let tools = tempfile::Builder::new().prefix("cellar-gated-tools-").tempdir().expect("temp dir");
    let gate = tools.path().join("gate");
    let made = Command::new("mkfifo").arg(&gate).status().expect("run mkfifo");
    assert!(made.success(), "mkfifo failed");
    for name in ["pg_dump", "psql"] {
        script(&tools.path().join(name), &format!("exec '{}' \"$@\"", real_postgres_tool(name).display()));
    }
    let pg_restore = real_postgres_tool("pg_restore");
    script(
        &tools.path().join("pg_restore"),
        &format!(
            "case \"$1\" in --version|--list) exec '{real}' \"$@\";; esac\nexec 3< '{gate}'\nexec '{real}' \"$@\"",
            real = pg_restore.display(),
            gate = gate.display()
        ),
    );
    let options =
        ServerOptions { tool_path: Some(vec![tools.path().to_owned()]), ..ServerOptions::default() };
    let server = TestServer::start_with(options).await;
    let name = format!("gated_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let postgres = blocking(|| server_with_fixture(&name));
    let database = server.register(postgres_database("pg-gated", &postgres.url(&name))).await;
    let backup = ready_backup(&server, &database.id).await;
    blocking(|| {
        postgres.psql(&name, "UPDATE every_type SET words = 'kept through the cancel' WHERE id = 10")
    });
    let before = blocking(|| postgres.checksums(&name));

    let request = pb::RestoreBackupRequest { backup_id: backup.id.clone(), ..Default::default() };
    let started = server.backups().restore_backup(request).await.expect("RestoreBackup").into_inner();
    server
        .wait_for(&started.name, "the loading phase", |operation| operation.meta().phase == "loading")
        .await;
    let scratch_prefix = format!("PGDATABASE={name}_cellar_");
    let loading = |variable: &[u8]| variable.starts_with(scratch_prefix.as_bytes());
    poll("pg_restore at the gate", PATIENCE, || async { (!tools_where(loading).is_empty()).then_some(()) })
        .await;
    let scratch: Vec<String> =
        blocking(|| postgres.databases()).into_iter().filter(|db| db.contains("_cellar_")).collect();
    assert_eq!(scratch.len(), 1, "one scratch database while loading: {scratch:?}");
    // The backup streams from storage into pg_restore: nothing is spooled on the way.
    let spooled = files::files_under(&server.data_dir().join("spool"));
    assert!(spooled.is_empty(), "spool files while loading: {spooled:?}");

    let request = pb::CancelOperationRequest { name: started.name.clone() };
    server.operations().cancel_operation(request).await.expect("CancelOperation");
    let done = server.wait_done(&started.name).await;
    assert_eq!(done.state(), pb::OperationState::Cancelled, "{done:?}");
    poll("pg_restore to end", PATIENCE, || async { tools_where(loading).is_empty().then_some(()) }).await;
    let postgres_ref = &postgres;
    poll("the scratch database to go", PATIENCE, || async move {
        let databases = blocking(|| postgres_ref.databases());
        (!databases.iter().any(|db| db.contains("_cellar_"))).then_some(())
    })
    .await;
    assert_same(&blocking(|| postgres.checksums(&name)), &before, "the target after a cancelled restore");
    assert_kept_secret(postgres.password(), &done);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_lost_mid_dump_fails_the_backup_as_unreachable_and_stores_nothing() {
    let server = TestServer::start().await;
    let mut postgres = blocking(|| server_with_fixture("shop"));
    let lock = blocking(|| LockHolder::lock(&postgres, "shop", "every_type"));
    let database = server.register(postgres_database("pg-lost", &postgres.url("shop"))).await;
    let started = server.start_backup(backup_of(&database.id)).await;
    server
        .wait_for(&started.name, "the dumping phase", |operation| operation.meta().phase == "dumping")
        .await;
    let postgres_ref = &postgres;
    poll("pg_dump waiting for the lock", PATIENCE, || async move {
        let waiting =
            blocking(|| postgres_ref.psql("shop", "SELECT count(*) FROM pg_locks WHERE NOT granted"));
        (waiting != "0").then_some(())
    })
    .await;

    blocking(|| postgres.kill());
    let done = server.wait_done(&started.name).await;
    let message = assert_failed(&done, "SOURCE_UNREACHABLE");
    assert!(message.contains("pg_dump"), "{message}");
    let backup_id = done.meta().backup_id.clone();
    assert_eq!(backup_state(&server.backup(&backup_id).await), pb::BackupState::Failed);
    assert_eq!(stored_objects(&server, &backup_id), Vec::<PathBuf>::new(), "objects of a failed backup");
    drop(lock);
    assert_kept_secret(postgres.password(), &done);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_cancelled_while_swapping_leaves_the_target_open_and_no_scratch_database() {
    // psql stops at a gate before the renames of the swap (after the target stopped
    // taking connections); the other statements and tools run as usual.
    let tools = tempfile::Builder::new().prefix("cellar-swap-tools-").tempdir().expect("temp dir");
    let gate = tools.path().join("gate");
    let reached = tools.path().join("reached");
    let made = Command::new("mkfifo").arg(&gate).status().expect("run mkfifo");
    assert!(made.success(), "mkfifo failed");
    for name in ["pg_dump", "pg_restore"] {
        script(&tools.path().join(name), &format!("exec '{}' \"$@\"", real_postgres_tool(name).display()));
    }
    script(
        &tools.path().join("psql"),
        &format!(
            "[ \"$1\" = --version ] && exec '{real}' \"$@\"\nsql=$(cat)\n\
             case \"$sql\" in *'RENAME TO'*) touch '{reached}'; exec 3< '{gate}';; esac\n\
             printf '%s\\n' \"$sql\" | '{real}' \"$@\"",
            real = real_postgres_tool("psql").display(),
            reached = reached.display(),
            gate = gate.display()
        ),
    );
    let options =
        ServerOptions { tool_path: Some(vec![tools.path().to_owned()]), ..ServerOptions::default() };
    let server = TestServer::start_with(options).await;
    let postgres = blocking(|| server_with_fixture("shop"));
    let database = server.register(postgres_database("pg-swap", &postgres.url("shop"))).await;
    let backup = ready_backup(&server, &database.id).await;
    blocking(|| {
        postgres.psql("shop", "UPDATE every_type SET words = 'kept through the cancel' WHERE id = 10")
    });
    let before = blocking(|| postgres.checksums("shop"));

    let request = pb::RestoreBackupRequest { backup_id: backup.id.clone(), ..Default::default() };
    let started = server.backups().restore_backup(request).await.expect("RestoreBackup").into_inner();
    let reached_ref = &reached;
    poll("the swap at the gate", PATIENCE, || async move { reached_ref.exists().then_some(()) }).await;
    let allowed = "SELECT datallowconn FROM pg_database WHERE datname = 'shop'";
    assert_eq!(blocking(|| postgres.psql("postgres", allowed)), "f", "the target is closed while swapping");

    let request = pb::CancelOperationRequest { name: started.name.clone() };
    server.operations().cancel_operation(request).await.expect("CancelOperation");
    let done = server.wait_done(&started.name).await;
    assert_eq!(done.state(), pb::OperationState::Cancelled, "{done:?}");
    let postgres_ref = &postgres;
    poll("the target to take connections again", PATIENCE, || async move {
        (blocking(|| postgres_ref.psql("postgres", allowed)) == "t").then_some(())
    })
    .await;
    poll("the scratch database to go", PATIENCE, || async move {
        let databases = blocking(|| postgres_ref.databases());
        (!databases.iter().any(|db| db.contains("_cellar_"))).then_some(())
    })
    .await;
    assert_same(&blocking(|| postgres.checksums("shop")), &before, "the target after a cancelled swap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cellar_killed_outright_takes_its_pg_dump_with_it() {
    let data_dir = tempfile::Builder::new().prefix("cellar-orphan-").tempdir().expect("temp dir");
    let mut cellar = crate::support::ProcessServer::start(data_dir.path()).await;
    let name = format!("orphan_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let postgres = blocking(|| server_with_fixture(&name));
    let lock = blocking(|| LockHolder::lock(&postgres, &name, "every_type"));
    let database = postgres_database("pg-orphan", &postgres.url(&name));
    let request = pb::CreateDatabaseRequest { database: Some(database), request_id: String::new() };
    let database = cellar.databases().create_database(request).await.expect("CreateDatabase").into_inner();
    cellar.backups().create_backup(backup_of(&database.id)).await.expect("CreateBackup");

    // pg_dump runs (and waits for the lock) when Cellar dies without a chance to clean up.
    let name_ref = name.as_str();
    poll("pg_dump to start", PATIENCE, || async move {
        (!blocking(|| tools_for_database(name_ref)).is_empty()).then_some(())
    })
    .await;
    cellar.kill_hard();
    poll("pg_dump to die with Cellar", PATIENCE, || async move {
        blocking(|| tools_for_database(name_ref)).is_empty().then_some(())
    })
    .await;
    drop(lock);
}

//! What works: a database backs up (pg_dump custom format, every compression) and
//! restores under another name, into another server and over itself (in use) with the
//! same content checksums, also for odd names and a role that is not a superuser; a
//! server registered without a database backs up every database as parts of one
//! backup, restored one or all; imports from a live database (or every database of a
//! server) and from dump files (custom, plain SQL, gzip, zstd).

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_backs_up_and_restores_under_another_name_into_another_server_and_over_itself() {
    let server = TestServer::start().await;
    let (source, other) = blocking(|| (server_with_fixture("shop"), PostgresServer::start()));
    let original = blocking(|| source.checksums("shop"));
    let database = server.register(postgres_database("pg-shop", &source.url("shop"))).await;

    let done = run_backup(&server, &database.id, "").await;
    assert_eq!(done.state(), pb::OperationState::Succeeded, "{done:?}");
    let progress = done.meta().progress.clone().expect("progress");
    assert_eq!(progress.items_unit, "tables", "{progress:?}");
    assert!(progress.items_done >= 5 && progress.bytes_done > 0, "{progress:?}");
    let backup = done.response_backup().expect("the backup").clone();
    assert_eq!(backup_state(&backup), pb::BackupState::Ready, "{backup:?}");
    assert_eq!(backup.format, "pg_custom");
    assert_eq!(backup.database_name, "shop");
    assert_eq!(backup.engine, pb::Engine::Postgres as i32);
    assert!(backup.parts.is_empty(), "{backup:?}");
    assert!(!backup.server_version.is_empty() && backup.size_bytes > 0, "{backup:?}");
    assert_eq!(server.backup(&backup.id).await.database_name, "shop");

    // Under another name on the same server: created, the source untouched.
    let copied = restore(&server, &backup, "", "shop_copy").await;
    let result = restore_result(&copied);
    assert_eq!(result.database_name, "shop_copy");
    assert!(result.items_loaded > 0, "{result:?}");
    assert_eq!(result.items_unit, "tables", "{result:?}");
    assert_same(&blocking(|| source.checksums("shop_copy")), &original, "the copy under another name");
    assert_same(&blocking(|| source.checksums("shop")), &original, "the source after a restore beside it");

    // Every compression restores alike.
    for compression in [pb::Compression::Gzip, pb::Compression::None] {
        let request = pb::CreateBackupRequest { compression: compression as i32, ..backup_of(&database.id) };
        let started = server.start_backup(request).await;
        let done = server.wait_done(&started.name).await;
        let compressed = done.response_backup().unwrap_or_else(|| panic!("no backup: {done:?}")).clone();
        assert_eq!(compressed.compression, compression as i32);
        let into = format!("shop_{}", compression.as_str_name().to_ascii_lowercase());
        restore_result(&restore(&server, &compressed, "", &into).await);
        assert_same(&blocking(|| source.checksums(&into)), &original, &into);
    }

    // Into another server: the database its URI names, created; registered without
    // one, the backup's database name.
    let replica = server.register(postgres_database("pg-replica", &other.url("replica"))).await;
    let moved = restore(&server, &backup, &replica.id, "").await;
    assert_eq!(restore_result(&moved).database_name, "replica");
    assert_same(&blocking(|| other.checksums("replica")), &original, "the copy on another server");
    let whole_server = server.register(postgres_database("pg-other", &other.url(""))).await;
    let moved = restore(&server, &backup, &whole_server.id, "").await;
    assert_eq!(restore_result(&moved).database_name, "shop");
    assert_same(&blocking(|| other.checksums("shop")), &original, "the copy under the backup's name");

    // Over itself: a changed row and large object are put back.
    blocking(|| {
        source.psql("shop", "UPDATE every_type SET words = 'changed' WHERE id = 10");
        source.psql("shop", "SELECT lo_put(424201, 0, 'J')");
        source.psql("shop", "CREATE TABLE added_since (id int)");
    });
    assert_ne!(blocking(|| source.checksums("shop")), original, "the change shows");
    // A session in the database (even one holding a lock) does not stop the swap.
    let session = blocking(|| LockHolder::lock(&source, "shop", "documents"));
    let replaced = restore(&server, &backup, "", "").await;
    drop(session);
    assert_eq!(restore_result(&replaced).database_name, "shop");
    assert_same(&blocking(|| source.checksums("shop")), &original, "the database restored over itself");
    blocking(|| {
        assert_no_scratch(&source);
        assert_no_scratch(&other);
    });
    assert_kept_secret(source.password(), &replaced);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_a_database_backs_up_every_database_and_restores_one_or_all() {
    let server = TestServer::start().await;
    let (source, target) = blocking(|| {
        let source = server_with_fixture("alpha");
        source.create_database("beta");
        source.psql("beta", "CREATE TABLE notes (id int PRIMARY KEY, body text); INSERT INTO notes SELECT g, 'note ' || g FROM generate_series(1, 500) g;");
        let target = PostgresServer::start();
        // The target's own alpha, which restoring only beta must leave alone.
        target.create_database("alpha");
        target.psql("alpha", "CREATE TABLE mine (id int); INSERT INTO mine VALUES (1);");
        (source, target)
    });
    let (alpha, beta) = blocking(|| (source.checksums("alpha"), source.checksums("beta")));
    let targets_alpha = blocking(|| target.checksums("alpha"));
    let whole = source.url("");
    assert!(whole.ends_with(&format!(":{}/", source.port())), "a URL without a database: {whole}");
    let database = server.register(postgres_database("pg-server", &whole)).await;

    let backup = ready_backup(&server, &database.id).await;
    let parts: Vec<&str> = backup.parts.iter().map(|part| part.database_name.as_str()).collect();
    assert_eq!(parts, ["alpha", "beta"], "{backup:?}");
    assert!(backup.parts.iter().all(|part| part.size_bytes > 0 && part.sha256.len() == 64), "{backup:?}");
    assert_eq!(backup.parts[1].items, 1, "{backup:?}");

    let manifest_path = stored_objects(&server, &backup.id)
        .into_iter()
        .find(|path| path.ends_with("manifest.json"))
        .expect("a manifest.json");
    let manifest = files::read_json(&manifest_path);
    let listed: Vec<&str> = manifest["parts"]
        .as_array()
        .unwrap_or_else(|| panic!("no parts in {manifest}"))
        .iter()
        .map(|part| part["database_name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(listed, ["alpha", "beta"], "{manifest}");
    assert_eq!(manifest["format"], "pg_custom", "{manifest}");
    for part in &backup.parts {
        let object = files::path_of_uri(&part.uri);
        assert_eq!(files::sha256_hex(&object), part.sha256, "{part:?}");
    }

    // One database of the server, asked for by name: a backup of its own.
    let named = run_backup(&server, &database.id, "beta").await;
    let single = named.response_backup().unwrap_or_else(|| panic!("no backup: {named:?}")).clone();
    assert_eq!((single.database_name.as_str(), single.parts.len()), ("beta", 0), "{single:?}");

    let elsewhere = server.register(postgres_database("pg-target", &target.url(""))).await;
    let not_held = pb::RestoreBackupRequest {
        backup_id: backup.id.clone(),
        target_database_id: elsewhere.id.clone(),
        target_database_name: "gamma".to_owned(),
        ..Default::default()
    };
    assert_invalid(server.backups().restore_backup(not_held).await, "target_database_name");
    let databases_before = blocking(|| target.databases());
    let only_beta = restore(&server, &backup, &elsewhere.id, "beta").await;
    assert_eq!(restore_result(&only_beta).database_name, "beta");
    let mut expected_databases = databases_before;
    expected_databases.push("beta".to_owned());
    expected_databases.sort();
    assert_eq!(blocking(|| target.databases()), expected_databases, "only beta appeared");
    assert_same(&blocking(|| target.checksums("beta")), &beta, "beta restored alone");
    assert_same(&blocking(|| target.checksums("alpha")), &targets_alpha, "the target's alpha, untouched");

    let all = restore(&server, &backup, &elsewhere.id, "").await;
    restore_result(&all);
    assert_same(&blocking(|| target.checksums("alpha")), &alpha, "alpha restored with every part");
    assert_same(&blocking(|| target.checksums("beta")), &beta, "beta restored with every part");

    // A damaged part fails the whole restore before any database is touched.
    blocking(|| target.psql("alpha", "UPDATE every_type SET words = 'changed on the target' WHERE id = 10"));
    let changed_alpha = blocking(|| target.checksums("alpha"));
    let beta_object = files::path_of_uri(&backup.parts[1].uri);
    let mut stored = std::fs::read(&beta_object).expect("read the part");
    let middle = stored.len() / 2;
    stored[middle] ^= 0xff;
    std::fs::write(&beta_object, stored).expect("damage the part");
    let damaged = restore(&server, &backup, &elsewhere.id, "").await;
    assert_failed(&damaged, "SOURCE_CORRUPT");
    assert_same(&blocking(|| target.checksums("alpha")), &changed_alpha, "alpha, before the damaged beta");
    blocking(|| assert_no_scratch(&target));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_database_imports_alone_or_with_every_database_of_its_server() {
    let server = TestServer::start().await;
    let (source, target) = blocking(|| {
        let source = server_with_fixture("shop");
        source.create_database("ledger");
        source.psql("ledger", "CREATE TABLE entries (id bigint PRIMARY KEY, amount numeric(12, 2)); INSERT INTO entries SELECT g, g * 1.5 FROM generate_series(1, 300) g;");
        let target = PostgresServer::start();
        target.create_database("landing");
        target.psql("landing", "CREATE TABLE stale (id int); INSERT INTO stale VALUES (1);");
        (source, target)
    });
    let (shop, ledger) = blocking(|| (source.checksums("shop"), source.checksums("ledger")));
    let landing = server.register(postgres_database("pg-landing", &target.url("landing"))).await;

    let request = pb::ImportDatabaseRequest {
        database_id: landing.id.clone(),
        source_connection_uri: source.url("shop"),
        ..Default::default()
    };
    let done = import(&server, request).await;
    let result = import_result(&done);
    assert_eq!(result.database_names, ["landing"], "{result:?}");
    assert!(result.items_loaded > 0, "{result:?}");
    assert_eq!(result.items_unit, "tables", "{result:?}");
    assert_same(&blocking(|| target.checksums("landing")), &shop, "the imported live database");
    assert_kept_secret(source.password(), &done);

    let request = pb::ImportDatabaseRequest {
        database_id: landing.id.clone(),
        source_connection_uri: source.url(""),
        import_all_databases: true,
        ..Default::default()
    };
    let named = pb::ImportDatabaseRequest { database_name: "landing".to_owned(), ..request.clone() };
    assert_invalid(server.imports().import_database(named).await, "database_name");
    let done = import(&server, request).await;
    assert_eq!(import_result(&done).database_names, ["ledger", "shop"], "{done:?}");
    assert_same(&blocking(|| target.checksums("shop")), &shop, "shop, imported with every database");
    assert_same(&blocking(|| target.checksums("ledger")), &ledger, "ledger, imported with every database");
    assert_same(&blocking(|| target.checksums("landing")), &shop, "landing, not a source database");
    blocking(|| assert_no_scratch(&target));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dump_files_import_whether_custom_or_plain_sql_gzip_or_zstd() {
    let server = TestServer::start().await;
    let postgres = blocking(|| server_with_fixture("shop"));
    let original = blocking(|| postgres.checksums("shop"));
    let dir = tempfile::Builder::new().prefix("cellar-pg-dumps-").tempdir().expect("temp dir");
    let custom = pg_dump(&postgres.url("shop"), &["--format=custom"], &dir.path().join("shop.pgdump"));
    let plain = pg_dump(&postgres.url("shop"), &["--no-owner"], &dir.path().join("shop.sql"));
    let gzipped = compress(&plain, "gzip", ".gz");
    let zstded = compress(&custom, "zstd", ".zst");
    let database = server.register(postgres_database("pg-files", &postgres.url("shop"))).await;

    for (file, into, method) in [
        (&custom, "from_custom", "pg_restore"),
        (&plain, "from_plain", "psql"),
        (&gzipped, "from_gzip", "psql"),
        (&zstded, "from_zstd", "pg_restore"),
    ] {
        let done = import_files(&server, &database.id, into, &[file]).await;
        let result = import_result(&done);
        assert_eq!(result.database_names, [into], "{result:?}");
        assert_eq!(result.load_method, method, "{result:?}");
        assert_same(&blocking(|| postgres.checksums(into)), &original, &format!("{}", file.display()));
    }
    blocking(|| assert_no_scratch(&postgres));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn databases_with_odd_names_back_up_and_restore_whole_or_alone() {
    let server = TestServer::start().await;
    let odd = "Odd \"db\" namé 'x' $1";
    let (source, target) = blocking(|| {
        let source = PostgresServer::start();
        source.create_database(odd);
        source.psql(odd, "CREATE TABLE \"Quoted Table\" (\"Id\" int, note text); INSERT INTO \"Quoted Table\" VALUES (1, 'one'), (2, 'two');");
        (source, PostgresServer::start())
    });
    let original = blocking(|| source.checksums(odd));
    let alone = server.register(postgres_database("pg-odd", &source.url(odd))).await;
    let backup = ready_backup(&server, &alone.id).await;
    assert_eq!(backup.database_name, odd);
    let copy_name = "copy of \"odd\"";
    let copied = restore(&server, &backup, "", copy_name).await;
    assert_eq!(restore_result(&copied).database_name, copy_name);
    assert_same(&blocking(|| source.checksums(copy_name)), &original, "the copy under an odd name");

    let whole = server.register(postgres_database("pg-odd-server", &source.url(""))).await;
    let every = ready_backup(&server, &whole.id).await;
    let parts: Vec<&str> = every.parts.iter().map(|part| part.database_name.as_str()).collect();
    assert_eq!(parts, [odd, copy_name], "{every:?}");
    let elsewhere = server.register(postgres_database("pg-odd-target", &target.url(""))).await;
    restore_result(&restore(&server, &every, &elsewhere.id, odd).await);
    assert_same(&blocking(|| target.checksums(odd)), &original, "the odd database restored alone");
    restore_result(&restore(&server, &every, &elsewhere.id, "").await);
    assert_same(&blocking(|| target.checksums(copy_name)), &original, "the copy restored with every part");
    blocking(|| assert_no_scratch(&target));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_that_is_not_a_superuser_backs_up_and_restores_its_own_database() {
    let server = TestServer::start().await;
    let password = format!("app{}", uuid::Uuid::new_v4().simple());
    let postgres = blocking(|| {
        let postgres = PostgresServer::start();
        postgres.psql("postgres", &format!("CREATE ROLE app LOGIN CREATEDB PASSWORD '{password}'"));
        postgres.create_database("appdb");
        postgres.psql("postgres", "ALTER DATABASE appdb OWNER TO app");
        postgres.psql(
            "appdb",
            "SET ROLE app; CREATE SCHEMA app AUTHORIZATION app; \
             CREATE TABLE app.orders (id serial PRIMARY KEY, item text, placed timestamptz DEFAULT now()); \
             INSERT INTO app.orders (item) SELECT 'item ' || g FROM generate_series(1, 200) g; \
             CREATE VIEW app.recent AS SELECT * FROM app.orders WHERE id > 100;",
        );
        postgres
    });
    let original = blocking(|| postgres.checksums("appdb"));
    let url =
        with_password(&postgres.url("appdb"), postgres.password(), &password).replace("cellar:", "app:");
    let database = server.register(postgres_database("pg-app", &url)).await;

    let backup = ready_backup(&server, &database.id).await;
    let copied = restore(&server, &backup, "", "appdb_copy").await;
    restore_result(&copied);
    assert_same(&blocking(|| postgres.checksums("appdb_copy")), &original, "a copy made by the role");
    blocking(|| postgres.psql("appdb", "DELETE FROM app.orders WHERE id < 50"));
    let replaced = restore(&server, &backup, "", "").await;
    restore_result(&replaced);
    assert_same(
        &blocking(|| postgres.checksums("appdb")),
        &original,
        "the role's database restored over itself",
    );
    let owner = blocking(|| {
        postgres.psql("postgres", "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'appdb'")
    });
    assert_eq!(owner, "app", "the restored database belongs to the role");
    blocking(|| assert_no_scratch(&postgres));
    for operation in [&copied, &replaced] {
        assert_kept_secret(&password, operation);
    }
}

//! Failures: a wrong password, a missing database, a stopped server, damaged dumps,
//! missing or old tools, SQL trying psql meta-commands on the Cellar host, one
//! unreadable database of many. Each carries its reason, leaves the target as it was
//! and no scratch database behind, and shows no password.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_or_a_missing_database_fails_with_its_reason_and_no_password_shows() {
    let server = TestServer::start().await;
    let postgres = blocking(|| server_with_fixture("shop"));
    let original = blocking(|| postgres.checksums("shop"));
    let good = server.register(postgres_database("pg-good", &postgres.url("shop"))).await;
    let backup = ready_backup(&server, &good.id).await;
    let wrong_password = format!("wrong{}", uuid::Uuid::new_v4().simple());
    let wrong_url = with_password(&postgres.url("shop"), postgres.password(), &wrong_password);
    let wrong = server.register(postgres_database("pg-wrong", &wrong_url)).await;

    let backed_up = backup_failure(&server, &wrong.id, "AUTH_FAILED").await;
    let restored = restore(&server, &backup, &wrong.id, "").await;
    let message = assert_failed(&restored, "AUTH_FAILED");
    assert!(message.contains("password authentication failed"), "{message}");
    let request = pb::ImportDatabaseRequest {
        database_id: good.id.clone(),
        source_connection_uri: wrong_url.clone(),
        ..Default::default()
    };
    let imported = import(&server, request).await;
    assert_failed(&imported, "AUTH_FAILED");

    let missing = server.register(postgres_database("pg-missing", &postgres.url("no_such_database"))).await;
    let missing_backup = backup_failure(&server, &missing.id, "DATABASE_NOT_FOUND").await;
    let request = pb::ImportDatabaseRequest {
        database_id: good.id.clone(),
        source_connection_uri: postgres.url("no_such_database"),
        ..Default::default()
    };
    let missing_import = import(&server, request).await;
    let message = assert_failed(&missing_import, "DATABASE_NOT_FOUND");
    assert!(message.contains("no_such_database"), "{message}");

    assert_same(&blocking(|| postgres.checksums("shop")), &original, "the target after failed loads");
    blocking(|| assert_no_scratch(&postgres));
    for operation in [&backed_up, &restored, &imported, &missing_backup, &missing_import] {
        assert_kept_secret(&wrong_password, operation);
        assert_kept_secret(postgres.password(), operation);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_fails_backups_and_imports_from_it_and_restores_into_it_as_unreachable() {
    let server = TestServer::start().await;
    let (mut source, target) = blocking(|| (server_with_fixture("shop"), server_with_fixture("landing")));
    let landing = blocking(|| target.checksums("landing"));
    let database = server.register(postgres_database("pg-stopped", &source.url("shop"))).await;
    let registered_target = server.register(postgres_database("pg-landing", &target.url("landing"))).await;
    let earlier = ready_backup(&server, &database.id).await;
    blocking(|| source.stop());

    let backed_up = backup_failure(&server, &database.id, "SOURCE_UNREACHABLE").await;
    // The stopped server as the target of a restore is the target that is unreachable.
    let restored = restore(&server, &earlier, "", "").await;
    assert_failed(&restored, "TARGET_UNREACHABLE");
    let request = pb::ImportDatabaseRequest {
        database_id: registered_target.id.clone(),
        source_connection_uri: source.url("shop"),
        ..Default::default()
    };
    let imported = import(&server, request).await;
    let message = assert_failed(&imported, "SOURCE_UNREACHABLE");
    assert!(message.contains("127.0.0.1"), "the message names the server: {message}");

    assert_same(&blocking(|| target.checksums("landing")), &landing, "the target after a failed import");
    blocking(|| assert_no_scratch(&target));
    for operation in [&backed_up, &restored, &imported] {
        assert_kept_secret(source.password(), operation);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_dumps_fail_the_import_and_leave_the_target_as_it_was() {
    let server = TestServer::start().await;
    let postgres = blocking(|| server_with_fixture("shop"));
    let original = blocking(|| postgres.checksums("shop"));
    let database = server.register(postgres_database("pg-damaged", &postgres.url("shop"))).await;
    let dir = tempfile::Builder::new().prefix("cellar-pg-damaged-").tempdir().expect("temp dir");

    // A custom archive cut in the middle of its data: its table of contents still
    // reads, so the load starts, and pg_restore fails part-way into the scratch database
    // on reading the data: SOURCE_CORRUPT.
    let whole = pg_dump(&postgres.url("shop"), &["--format=custom"], &dir.path().join("whole.pgdump"));
    let bytes = std::fs::read(&whole).expect("read the dump");
    let truncated = dir.path().join("truncated.pgdump");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write the truncated dump");
    let truncated_import = import_files(&server, &database.id, "", &[&truncated]).await;
    let message = assert_failed(&truncated_import, "SOURCE_CORRUPT");
    assert!(message.contains("pg_restore: error"), "{message}");
    assert!(message.contains("left as it was"), "{message}");
    assert_same(&blocking(|| postgres.checksums("shop")), &original, "the target after a truncated archive");
    // Into a database that does not exist yet: it still does not.
    let into_new = import_files(&server, &database.id, "fresh", &[&truncated]).await;
    assert_failed(&into_new, "SOURCE_CORRUPT");
    assert!(
        !blocking(|| postgres.databases()).contains(&"fresh".to_owned()),
        "a failed load created its target"
    );

    // SQL that fails half-way: nothing of it lands, psql's error is in the message.
    let broken = dir.path().join("broken.sql");
    let mut sql = std::fs::File::create(&broken).expect("create the SQL file");
    writeln!(sql, "CREATE TABLE half_way (id int);\nINSERT INTO half_way VALUES (1);").unwrap();
    writeln!(sql, "INSERT INTO no_such_table VALUES (1);\nCREATE TABLE after_the_error (id int);").unwrap();
    drop(sql);
    let sql_import = import_files(&server, &database.id, "", &[&broken]).await;
    let message = assert_failed(&sql_import, "RESTORE_FAILED");
    assert!(message.contains("relation \"no_such_table\" does not exist"), "{message}");
    assert_same(&blocking(|| postgres.checksums("shop")), &original, "the target after failing SQL");

    // Not a dump at all.
    let noise = dir.path().join("noise.bin");
    std::fs::write(&noise, [0u8, 159, 146, 150, 1, 2, 3].repeat(100)).expect("write the noise");
    let noise_import = import_files(&server, &database.id, "", &[&noise]).await;
    assert_failed(&noise_import, "SOURCE_CORRUPT");

    assert_same(&blocking(|| postgres.checksums("shop")), &original, "the target after every failure");
    blocking(|| assert_no_scratch(&postgres));
    for operation in [&truncated_import, &into_new, &sql_import, &noise_import] {
        assert_kept_secret(postgres.password(), operation);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_tool_path_fails_with_tool_not_found() {
    let tools = tempfile::Builder::new().prefix("cellar-no-tools-").tempdir().expect("temp dir");
    let options =
        ServerOptions { tool_path: Some(vec![tools.path().to_owned()]), ..ServerOptions::default() };
    let server = TestServer::start_with(options).await;
    let postgres = blocking(|| server_with_fixture("shop"));
    let original = blocking(|| postgres.checksums("shop"));
    let database = server.register(postgres_database("pg-no-tools", &postgres.url("shop"))).await;

    let done = backup_failure(&server, &database.id, "TOOL_NOT_FOUND").await;
    let message = assert_failed(&done, "TOOL_NOT_FOUND");
    assert!(message.contains(&tools.path().display().to_string()), "names where it looked: {message}");
    assert!(message.contains("postgresql-client"), "says how to install: {message}");

    let dumps = tempfile::Builder::new().prefix("cellar-pg-dumps-").tempdir().expect("temp dir");
    let dump = pg_dump(&postgres.url("shop"), &["--format=custom"], &dumps.path().join("shop.pgdump"));
    let imported = import_files(&server, &database.id, "", &[&dump]).await;
    assert_failed(&imported, "TOOL_NOT_FOUND");
    assert_same(&blocking(|| postgres.checksums("shop")), &original, "the target after TOOL_NOT_FOUND");
    blocking(|| assert_no_scratch(&postgres));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_older_than_the_server_or_archive_fail_with_tool_too_old() {
    let tools = tempfile::Builder::new().prefix("cellar-old-tools-").tempdir().expect("temp dir");
    script(
        &tools.path().join("pg_dump"),
        "[ \"$1\" = --version ] && { echo 'pg_dump (PostgreSQL) 9.6.24'; exit 0; }\n\
         echo 'pg_dump: this 9.6 stand-in must not be run' >&2; exit 1",
    );
    // What a pg_restore 9.6 says of a newer archive.
    script(
        &tools.path().join("pg_restore"),
        "[ \"$1\" = --version ] && { echo 'pg_restore (PostgreSQL) 9.6.24'; exit 0; }\n\
         echo 'pg_restore: [archiver] unsupported version (1.14) in file header' >&2; exit 1",
    );
    script(&tools.path().join("psql"), &format!("exec '{}' \"$@\"", real_postgres_tool("psql").display()));
    let options =
        ServerOptions { tool_path: Some(vec![tools.path().to_owned()]), ..ServerOptions::default() };
    let server = TestServer::start_with(options).await;
    let postgres = blocking(|| server_with_fixture("shop"));
    let original = blocking(|| postgres.checksums("shop"));
    let database = server.register(postgres_database("pg-old-tools", &postgres.url("shop"))).await;

    let done = backup_failure(&server, &database.id, "TOOL_TOO_OLD").await;
    let message = assert_failed(&done, "TOOL_TOO_OLD");
    assert!(
        message.contains("9.6.24") && message.contains("PostgreSQL 15"),
        "names both versions: {message}"
    );

    let dumps = tempfile::Builder::new().prefix("cellar-pg-old-").tempdir().expect("temp dir");
    let dump = pg_dump(&postgres.url("shop"), &["--format=custom"], &dumps.path().join("shop.pgdump"));
    let imported = import_files(&server, &database.id, "", &[&dump]).await;
    let message = assert_failed(&imported, "TOOL_TOO_OLD");
    assert!(message.contains("pg_restore 9.6.24"), "{message}");
    assert_same(&blocking(|| postgres.checksums("shop")), &original, "the target after TOOL_TOO_OLD");
    blocking(|| assert_no_scratch(&postgres));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_files_cannot_run_psql_meta_commands_on_the_cellar_host() {
    let server = TestServer::start().await;
    let postgres = blocking(|| server_with_fixture("shop"));
    let original = blocking(|| postgres.checksums("shop"));
    let database = server.register(postgres_database("pg-meta", &postgres.url("shop"))).await;
    let dir = tempfile::Builder::new().prefix("cellar-pg-meta-").tempdir().expect("temp dir");
    let marker = dir.path().join("marker");
    let local_copy = dir.path().join("copied");

    // Shell commands, local files written, and a dump's own restrict key lifted by the
    // file itself: a SQL file is data, not a psql script of the Cellar host.
    let attempts = [
        format!("CREATE TABLE t (id int);\n\\! touch '{}'\n", marker.display()),
        format!("\\o '{}'\nSELECT 1;\n", local_copy.display()),
        format!("\\restrict abc\n\\unrestrict abc\n\\! touch '{}'\n", marker.display()),
        format!("CREATE TABLE t (id int);\n\\copy t to '{}'\n", local_copy.display()),
    ];
    for (index, sql) in attempts.iter().enumerate() {
        let path = dir.path().join(format!("attempt{index}.sql"));
        std::fs::write(&path, sql).expect("write the SQL");
        let done = import_files(&server, &database.id, "", &[&path]).await;
        let message = assert_failed(&done, "RESTORE_FAILED");
        assert!(!marker.exists(), "attempt {index} ran a shell command on the Cellar host: {message}");
        assert!(!local_copy.exists(), "attempt {index} wrote a local file: {message}");
        assert!(message.contains("restricted"), "attempt {index}: {message}");
    }
    assert_same(&blocking(|| postgres.checksums("shop")), &original, "the target after refused SQL");
    blocking(|| assert_no_scratch(&postgres));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_psql_without_restricted_mode_refuses_sql_files_but_loads_archives() {
    let tools = tempfile::Builder::new().prefix("cellar-old-psql-").tempdir().expect("temp dir");
    for name in ["pg_dump", "pg_restore"] {
        script(&tools.path().join(name), &format!("exec '{}' \"$@\"", real_postgres_tool(name).display()));
    }
    // A psql 15.13 (the last before \restrict) in all but name.
    script(
        &tools.path().join("psql"),
        &format!(
            "[ \"$1\" = --version ] && {{ echo 'psql (PostgreSQL) 15.13'; exit 0; }}\nexec '{}' \"$@\"",
            real_postgres_tool("psql").display()
        ),
    );
    let options =
        ServerOptions { tool_path: Some(vec![tools.path().to_owned()]), ..ServerOptions::default() };
    let server = TestServer::start_with(options).await;
    let postgres = blocking(|| server_with_fixture("shop"));
    let original = blocking(|| postgres.checksums("shop"));
    let database = server.register(postgres_database("pg-old-psql", &postgres.url("shop"))).await;
    let dumps = tempfile::Builder::new().prefix("cellar-pg-old-psql-").tempdir().expect("temp dir");
    let plain = pg_dump(&postgres.url("shop"), &["--no-owner"], &dumps.path().join("shop.sql"));
    let custom = pg_dump(&postgres.url("shop"), &["--format=custom"], &dumps.path().join("shop.pgdump"));

    let refused = import_files(&server, &database.id, "from_plain", &[&plain]).await;
    let message = assert_failed(&refused, "TOOL_TOO_OLD");
    assert!(message.contains("psql 15.13") && message.contains("15.14"), "{message}");
    assert!(
        !blocking(|| postgres.databases()).contains(&"from_plain".to_owned()),
        "a refused load created its target"
    );
    let loaded = import_files(&server, &database.id, "from_custom", &[&custom]).await;
    import_result(&loaded);
    assert_same(
        &blocking(|| postgres.checksums("from_custom")),
        &original,
        "an archive loaded by pg_restore",
    );
    blocking(|| assert_no_scratch(&postgres));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn importing_every_database_touches_none_when_one_cannot_be_read() {
    let server = TestServer::start().await;
    let password = format!("reader{}", uuid::Uuid::new_v4().simple());
    let (source, target) = blocking(|| {
        let source = PostgresServer::start();
        source.psql("postgres", &format!("CREATE ROLE reader LOGIN PASSWORD '{password}'"));
        for name in ["aaa_readable", "zzz_secret"] {
            source.create_database(name);
            source.psql(name, "CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2);");
        }
        source.psql("aaa_readable", "GRANT SELECT ON t TO reader");
        let target = PostgresServer::start();
        target.create_database("aaa_readable");
        target.psql("aaa_readable", "CREATE TABLE mine (id int); INSERT INTO mine VALUES (42);");
        (source, target)
    });
    let before = blocking(|| target.checksums("aaa_readable"));
    let landing = server.register(postgres_database("pg-every-target", &target.url(""))).await;
    let reader = with_password(&source.url(""), source.password(), &password).replace("cellar:", "reader:");

    let request = pb::ImportDatabaseRequest {
        database_id: landing.id.clone(),
        source_connection_uri: reader,
        import_all_databases: true,
        ..Default::default()
    };
    let done = import(&server, request).await;
    let message = assert_failed(&done, "SOURCE_UNREACHABLE");
    assert!(message.contains("zzz_secret") && message.contains("permission denied"), "{message}");
    assert_same(&blocking(|| target.checksums("aaa_readable")), &before, "the readable database's namesake");
    assert!(!blocking(|| target.databases()).contains(&"zzz_secret".to_owned()));
    blocking(|| assert_no_scratch(&target));
    assert_kept_secret(&password, &done);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_restore_of_a_changed_cut_or_damaged_object_leaves_the_target_and_no_scratch() {
    let server = TestServer::start().await;
    let postgres = blocking(|| server_with_fixture("shop"));
    let database = server.register(postgres_database("pg-streamed", &postgres.url("shop"))).await;
    let backup = ready_backup(&server, &database.id).await;
    blocking(|| postgres.psql("shop", "UPDATE every_type SET words = 'a later backup' WHERE id = 10"));
    let later = ready_backup(&server, &database.id).await;
    blocking(|| postgres.psql("shop", "UPDATE every_type SET words = 'the target now' WHERE id = 10"));
    let original = blocking(|| postgres.checksums("shop"));
    let data_object = |backup_id: &str| {
        stored_objects(&server, backup_id)
            .into_iter()
            .find(|path| !path.ends_with("manifest.json"))
            .expect("a data object")
    };
    let (object, later_object) = (data_object(&backup.id), data_object(&later.id));
    let bytes = std::fs::read(&object).expect("read the object");

    // Another backup's object in its place: a whole archive that loads (into the
    // scratch database, to its end) whose SHA-256 is not the catalog's.
    std::fs::copy(&later_object, &object).expect("replace the object");
    let mut middle_flipped = bytes.clone();
    let middle = middle_flipped.len() / 2;
    middle_flipped[middle] ^= 0x5a;
    let damages = [
        ("changed", None),
        ("cut", Some(bytes[..bytes.len() / 2].to_vec())),
        ("flipped", Some(middle_flipped)),
    ];
    for (what, damaged) in damages {
        if let Some(damaged) = damaged {
            std::fs::write(&object, damaged).expect("damage the object");
        }
        let done = restore(&server, &backup, "", "").await;
        let message = assert_failed(&done, "SOURCE_CORRUPT");
        if what == "changed" {
            assert!(message.contains("sha-256"), "{what}: {message}");
        }
        assert_same(&blocking(|| postgres.checksums("shop")), &original, what);
        blocking(|| assert_no_scratch(&postgres));
        assert_kept_secret(postgres.password(), &done);
    }

    // The object put back restores, with no spool file on the way.
    std::fs::write(&object, &bytes).expect("put the object back");
    let done = restore(&server, &backup, "", "").await;
    assert_eq!(restore_result(&done).load_method, "pg_restore");
    assert!(
        blocking(|| postgres.checksums("shop")) != original,
        "the restore replaced the target's data with the backup's"
    );
    blocking(|| assert_no_scratch(&postgres));
}

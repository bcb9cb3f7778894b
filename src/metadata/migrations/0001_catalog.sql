-- The catalog: one table per resource.
--
-- Columns that list filters and order_by address carry the API field names. Timestamps
-- are INTEGER microseconds since the Unix epoch (UTC), so they order and compare as
-- numbers and round-trip exactly; enums are their lowercase text form; maps are JSON
-- objects. Secrets (connection URI passwords, destination credentials) are stored as
-- given. A missing reference (no database, no expiry) is NULL.

CREATE TABLE databases (
    id                          TEXT PRIMARY KEY NOT NULL,
    name                        TEXT NOT NULL UNIQUE,
    project_id                  TEXT NOT NULL,
    engine                      TEXT NOT NULL,
    -- The full URI, password included.
    connection_uri              TEXT NOT NULL,
    -- The backup policy; a NULL destination means the built-in `local` one.
    policy_destination_id       TEXT,
    policy_schedule             TEXT NOT NULL,
    policy_compression          TEXT NOT NULL,
    policy_keep_last            INTEGER NOT NULL,
    policy_keep_hourly          INTEGER NOT NULL,
    policy_keep_daily           INTEGER NOT NULL,
    policy_keep_weekly          INTEGER NOT NULL,
    policy_keep_monthly         INTEGER NOT NULL,
    -- The backup time-to-live as whole seconds plus nanoseconds; both NULL for none.
    policy_backup_ttl_seconds   INTEGER,
    policy_backup_ttl_nanos     INTEGER,
    labels                      TEXT NOT NULL CHECK (json_valid(labels)),
    create_time                 INTEGER NOT NULL,
    update_time                 INTEGER NOT NULL,
    -- The idempotency key of the create that inserted the row.
    request_id                  TEXT UNIQUE,
    CHECK ((policy_backup_ttl_seconds IS NULL) = (policy_backup_ttl_nanos IS NULL))
) STRICT;

CREATE INDEX databases_policy_destination_id ON databases (policy_destination_id);
CREATE INDEX databases_create_time ON databases (create_time);

CREATE TABLE destinations (
    id                          TEXT PRIMARY KEY NOT NULL,
    name                        TEXT NOT NULL UNIQUE,
    -- May hold a password (ftp://user:pass@host/dir).
    uri                         TEXT NOT NULL,
    -- A JSON object of secret values.
    credentials                 TEXT NOT NULL CHECK (json_valid(credentials)),
    options                     TEXT NOT NULL CHECK (json_valid(options)),
    labels                      TEXT NOT NULL CHECK (json_valid(labels)),
    create_time                 INTEGER NOT NULL,
    update_time                 INTEGER NOT NULL,
    request_id                  TEXT UNIQUE
) STRICT;

-- No foreign keys between resources: backups outlive their database, and the service
-- checks references (destination_in_use) before it deletes.
CREATE TABLE backups (
    id                          TEXT PRIMARY KEY NOT NULL,
    name                        TEXT NOT NULL,
    database_id                 TEXT,
    instance_name               TEXT NOT NULL,
    database_name               TEXT NOT NULL,
    project_id                  TEXT NOT NULL,
    engine                      TEXT NOT NULL,
    server_version              TEXT NOT NULL,
    state                       TEXT NOT NULL,
    size_bytes                  INTEGER NOT NULL,
    logical_size_bytes          INTEGER NOT NULL,
    sha256                      TEXT NOT NULL,
    compression                 TEXT NOT NULL,
    format                      TEXT NOT NULL,
    destination_id              TEXT NOT NULL,
    object_key                  TEXT NOT NULL,
    uri                         TEXT NOT NULL,
    origin                      TEXT NOT NULL,
    create_time                 INTEGER NOT NULL,
    update_time                 INTEGER NOT NULL,
    expire_time                 INTEGER,
    labels                      TEXT NOT NULL CHECK (json_valid(labels))
) STRICT;

CREATE INDEX backups_create_time ON backups (create_time);
CREATE INDEX backups_database_id ON backups (database_id);
CREATE INDEX backups_destination_id ON backups (destination_id);

-- The columns beside `body` are copies of the operation's fields for filtering, ordering
-- and idempotency; `body` (the whole operation as JSON) is what is read back.
CREATE TABLE operations (
    id                          TEXT PRIMARY KEY NOT NULL,
    kind                        TEXT NOT NULL,
    state                       TEXT NOT NULL,
    database_id                 TEXT,
    backup_id                   TEXT,
    create_time                 INTEGER NOT NULL,
    update_time                 INTEGER NOT NULL,
    request_id                  TEXT,
    body                        TEXT NOT NULL CHECK (json_valid(body))
) STRICT;

-- NULL request ids are distinct, so only operations created with one are constrained.
CREATE UNIQUE INDEX operations_kind_request_id ON operations (kind, request_id);
CREATE INDEX operations_create_time ON operations (create_time);
CREATE INDEX operations_database_id ON operations (database_id);

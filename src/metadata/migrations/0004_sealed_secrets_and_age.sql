-- Secrets are sealed from here on (`metadata::seal`, XChaCha20-Poly1305 under the
-- catalog key, which is kept outside the data directory): `databases.connection_uri`
-- and `destinations.uri` hold `sealed:v1:<key id>:<base64url>` text, and
-- `destinations.credentials` the same as a JSON string. Plain values of an older catalog
-- are sealed at the first start with a key.
--
-- One row: a value sealed with the catalog's key, opened at every start, so that a
-- start with another key stops before anything is read or written with it.
CREATE TABLE catalog_key (
    id                          INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    key_id                      TEXT NOT NULL,
    check_value                 TEXT NOT NULL
) STRICT;

-- Backup encryption: a policy's age recipients (X25519 public keys, no secrets) and the
-- recipients a backup's objects were encrypted to, as JSON arrays of `age1...` text;
-- empty for none.
ALTER TABLE databases ADD COLUMN policy_age_recipients TEXT NOT NULL DEFAULT '[]'
    CHECK (json_valid(policy_age_recipients));
ALTER TABLE backups ADD COLUMN age_recipients TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(age_recipients));

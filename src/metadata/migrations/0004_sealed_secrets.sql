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

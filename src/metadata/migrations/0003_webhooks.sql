-- A database's completion webhook: the endpoint (an http(s) URL) and the key that signs
-- each notification, both NULL when the database has none. The secret is stored like
-- the connection URI's password: in the catalog, never returned.
ALTER TABLE databases ADD COLUMN webhook_url TEXT;
ALTER TABLE databases ADD COLUMN webhook_secret TEXT
    CHECK ((webhook_url IS NULL) = (webhook_secret IS NULL));

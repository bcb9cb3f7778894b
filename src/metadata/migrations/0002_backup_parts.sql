-- Whole-server backups of PostgreSQL and MySQL keep one object per logical database:
-- a JSON array of {database_name, object_key, uri, size_bytes, logical_size_bytes,
-- sha256, items}, empty for a backup held in one object.
ALTER TABLE backups ADD COLUMN parts TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(parts));

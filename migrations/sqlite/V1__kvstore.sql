-- The key/value table shared by every KV namespace on a backend. Keys are stored with their
-- namespace prefix ("<namespace>:<key>"). SQLite's default BINARY collation compares UTF-8 text
-- byte by byte, so ranges and ORDER BY are byte order, as on PostgreSQL.
--
-- expires_at is the expiry instant in Unix milliseconds (UTC), NULL for entries that never expire.
CREATE TABLE kvstore (
    key        TEXT NOT NULL PRIMARY KEY,
    value      TEXT NOT NULL,
    expires_at INTEGER
);

-- Serves purging expired entries; entries without an expiry are not indexed.
CREATE INDEX kvstore_expires_at_idx ON kvstore (expires_at) WHERE expires_at IS NOT NULL;

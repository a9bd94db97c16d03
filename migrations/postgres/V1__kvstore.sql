-- The key/value table shared by every KV namespace on a backend. Keys are stored with their
-- namespace prefix ("<namespace>:<key>").
--
-- COLLATE "C" makes key comparison byte order, whatever the database's default collation: range
-- scans ([start, end)) and ORDER BY must not depend on the server's locale, and the primary-key
-- index then serves them directly.
CREATE TABLE kvstore (
    key        TEXT COLLATE "C" PRIMARY KEY,
    value      TEXT NOT NULL,
    expires_at TIMESTAMPTZ
);

-- Serves purging expired entries; entries without an expiry are not indexed.
CREATE INDEX kvstore_expires_at_idx ON kvstore (expires_at) WHERE expires_at IS NOT NULL;

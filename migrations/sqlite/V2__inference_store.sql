-- Stored chat completions (the inference store). One row per completion id.
--
-- id is the primary key across all tenants: a completion id is global, and a duplicate id from
-- another owner never touches the existing row (the write queue's upsert updates only the same
-- owner's row). SQLite's default BINARY collation compares ids byte by byte, as the PostgreSQL
-- column's COLLATE "C" does.
--
-- created is the completion's Unix time in seconds. choices, input_messages, metadata and
-- access_attributes hold JSON text. owner_principal ('' = unowned, never NULL) and
-- access_attributes are the owner columns written by the authorized store layer.
CREATE TABLE inference_store (
    id                TEXT NOT NULL PRIMARY KEY,
    created           INTEGER NOT NULL,
    model             TEXT NOT NULL,
    choices           TEXT NOT NULL,
    input_messages    TEXT NOT NULL,
    metadata          TEXT,
    owner_principal   TEXT NOT NULL DEFAULT '',
    access_attributes TEXT
);

-- One owner's listing, newest or oldest first (the default policy filters on the owner).
CREATE INDEX inference_store_owner_created_idx ON inference_store (owner_principal, created, id);
-- Listings under policies that do not pin the owner, and model-filtered listings scanned in order.
CREATE INDEX inference_store_created_idx ON inference_store (created, id);

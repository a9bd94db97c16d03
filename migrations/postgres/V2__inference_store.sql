-- Stored chat completions (the inference store). One row per completion id.
--
-- id is the primary key across all tenants: a completion id is global, and a duplicate id from
-- another owner never touches the existing row (the write queue's upsert updates only the same
-- owner's row). COLLATE "C" makes id comparison byte order, as on SQLite, so keyset pagination on
-- (created, id) orders ties the same way on both engines, whatever the database's locale.
--
-- created is the completion's Unix time in seconds. choices, input_messages and metadata hold the
-- OpenAI objects as JSON. owner_principal ('' = unowned, never NULL) and access_attributes are the
-- owner columns written by the authorized store layer.
CREATE TABLE inference_store (
    id                TEXT COLLATE "C" PRIMARY KEY,
    created           BIGINT NOT NULL,
    model             TEXT NOT NULL,
    choices           JSONB NOT NULL,
    input_messages    JSONB NOT NULL,
    metadata          JSONB,
    owner_principal   TEXT NOT NULL DEFAULT '',
    access_attributes JSONB
);

-- One owner's listing, newest or oldest first (the default policy filters on the owner).
CREATE INDEX inference_store_owner_created_idx ON inference_store (owner_principal, created, id);
-- Listings under policies that do not pin the owner, and model-filtered listings scanned in order.
CREATE INDEX inference_store_created_idx ON inference_store (created, id);
-- Attribute-based policies test access_attributes @> '{"<category>": ["<value>"]}'.
CREATE INDEX inference_store_access_attributes_idx ON inference_store USING GIN (access_attributes jsonb_path_ops);

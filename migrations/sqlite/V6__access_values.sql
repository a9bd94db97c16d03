-- SQLite's index of the owners' attribute values (issue 16): for each tenant table, a side table
-- <table>_access_values with one entry per (row, category, value) of an owned row's
-- access_attributes, kept in step by the triggers below and filled here from the rows already
-- stored. PostgreSQL needs none (its GIN index on access_attributes serves `user in owners C`);
-- its V6 is empty, so that both dialects carry the same migrations.
--
-- An entry exists exactly when the row is owned (owner_principal <> ''), access_attributes is
-- valid JSON holding an object, the object's member attribute_category is an array, and the array
-- holds the string attribute_value. row_key is the table's unique tiebreak column (its id, or
-- sequence for responses), row_created a copy of its created column: the primary key
-- (category, value, created, key) is the ordered range a list walks for one value, newest or
-- oldest first; the row index serves the per-row EXISTS test and the triggers' deletes.
--
-- The statements are those of ferrostack_authz::policy::sqlite_access_values_ddl (a test checks
-- this file against it). On a 1M-row inference_store with one value per row, this migration
-- took 19 s (6 s of CPU) and added about 100 MB (docs/operations.md).

-- inference_store: rows keyed by id.
CREATE TABLE inference_store_access_values (
    attribute_category TEXT NOT NULL,
    attribute_value    TEXT NOT NULL,
    row_created        INTEGER NOT NULL,
    row_key            TEXT NOT NULL,
    PRIMARY KEY (attribute_category, attribute_value, row_created, row_key)
) WITHOUT ROWID;
CREATE INDEX inference_store_access_values_row_idx ON inference_store_access_values (row_key, attribute_category, attribute_value);
INSERT INTO inference_store_access_values (attribute_category, attribute_value, row_created, row_key)
SELECT DISTINCT a.key, v.value, source_row.created, source_row.id
    FROM inference_store AS source_row, json_each(CASE WHEN json_valid(source_row.access_attributes) THEN CASE json_type(source_row.access_attributes) WHEN 'object' THEN source_row.access_attributes END END) AS a,
        json_each(CASE a.type WHEN 'array' THEN a.value END) AS v
    WHERE source_row.owner_principal <> '' AND a.type = 'array' AND v.type = 'text';
CREATE TRIGGER inference_store_access_values_insert AFTER INSERT ON inference_store
BEGIN
    INSERT INTO inference_store_access_values (attribute_category, attribute_value, row_created, row_key)
    SELECT DISTINCT a.key, v.value, NEW.created, NEW.id
        FROM json_each(CASE WHEN json_valid(NEW.access_attributes) THEN CASE json_type(NEW.access_attributes) WHEN 'object' THEN NEW.access_attributes END END) AS a,
            json_each(CASE a.type WHEN 'array' THEN a.value END) AS v
        WHERE NEW.owner_principal <> '' AND a.type = 'array' AND v.type = 'text';
END;
CREATE TRIGGER inference_store_access_values_update AFTER UPDATE OF owner_principal, access_attributes, created, id ON inference_store
BEGIN
    DELETE FROM inference_store_access_values WHERE row_key = OLD.id;
    INSERT INTO inference_store_access_values (attribute_category, attribute_value, row_created, row_key)
    SELECT DISTINCT a.key, v.value, NEW.created, NEW.id
        FROM json_each(CASE WHEN json_valid(NEW.access_attributes) THEN CASE json_type(NEW.access_attributes) WHEN 'object' THEN NEW.access_attributes END END) AS a,
            json_each(CASE a.type WHEN 'array' THEN a.value END) AS v
        WHERE NEW.owner_principal <> '' AND a.type = 'array' AND v.type = 'text';
END;
CREATE TRIGGER inference_store_access_values_delete AFTER DELETE ON inference_store
BEGIN
    DELETE FROM inference_store_access_values WHERE row_key = OLD.id;
END;

-- openai_conversations: rows keyed by id.
CREATE TABLE openai_conversations_access_values (
    attribute_category TEXT NOT NULL,
    attribute_value    TEXT NOT NULL,
    row_created        INTEGER NOT NULL,
    row_key            TEXT NOT NULL,
    PRIMARY KEY (attribute_category, attribute_value, row_created, row_key)
) WITHOUT ROWID;
CREATE INDEX openai_conversations_access_values_row_idx ON openai_conversations_access_values (row_key, attribute_category, attribute_value);
INSERT INTO openai_conversations_access_values (attribute_category, attribute_value, row_created, row_key)
SELECT DISTINCT a.key, v.value, source_row.created_at, source_row.id
    FROM openai_conversations AS source_row, json_each(CASE WHEN json_valid(source_row.access_attributes) THEN CASE json_type(source_row.access_attributes) WHEN 'object' THEN source_row.access_attributes END END) AS a,
        json_each(CASE a.type WHEN 'array' THEN a.value END) AS v
    WHERE source_row.owner_principal <> '' AND a.type = 'array' AND v.type = 'text';
CREATE TRIGGER openai_conversations_access_values_insert AFTER INSERT ON openai_conversations
BEGIN
    INSERT INTO openai_conversations_access_values (attribute_category, attribute_value, row_created, row_key)
    SELECT DISTINCT a.key, v.value, NEW.created_at, NEW.id
        FROM json_each(CASE WHEN json_valid(NEW.access_attributes) THEN CASE json_type(NEW.access_attributes) WHEN 'object' THEN NEW.access_attributes END END) AS a,
            json_each(CASE a.type WHEN 'array' THEN a.value END) AS v
        WHERE NEW.owner_principal <> '' AND a.type = 'array' AND v.type = 'text';
END;
CREATE TRIGGER openai_conversations_access_values_update AFTER UPDATE OF owner_principal, access_attributes, created_at, id ON openai_conversations
BEGIN
    DELETE FROM openai_conversations_access_values WHERE row_key = OLD.id;
    INSERT INTO openai_conversations_access_values (attribute_category, attribute_value, row_created, row_key)
    SELECT DISTINCT a.key, v.value, NEW.created_at, NEW.id
        FROM json_each(CASE WHEN json_valid(NEW.access_attributes) THEN CASE json_type(NEW.access_attributes) WHEN 'object' THEN NEW.access_attributes END END) AS a,
            json_each(CASE a.type WHEN 'array' THEN a.value END) AS v
        WHERE NEW.owner_principal <> '' AND a.type = 'array' AND v.type = 'text';
END;
CREATE TRIGGER openai_conversations_access_values_delete AFTER DELETE ON openai_conversations
BEGIN
    DELETE FROM openai_conversations_access_values WHERE row_key = OLD.id;
END;

-- openai_responses: rows keyed by sequence.
CREATE TABLE openai_responses_access_values (
    attribute_category TEXT NOT NULL,
    attribute_value    TEXT NOT NULL,
    row_created        INTEGER NOT NULL,
    row_key            INTEGER NOT NULL,
    PRIMARY KEY (attribute_category, attribute_value, row_created, row_key)
) WITHOUT ROWID;
CREATE INDEX openai_responses_access_values_row_idx ON openai_responses_access_values (row_key, attribute_category, attribute_value);
INSERT INTO openai_responses_access_values (attribute_category, attribute_value, row_created, row_key)
SELECT DISTINCT a.key, v.value, source_row.created_at, source_row.sequence
    FROM openai_responses AS source_row, json_each(CASE WHEN json_valid(source_row.access_attributes) THEN CASE json_type(source_row.access_attributes) WHEN 'object' THEN source_row.access_attributes END END) AS a,
        json_each(CASE a.type WHEN 'array' THEN a.value END) AS v
    WHERE source_row.owner_principal <> '' AND a.type = 'array' AND v.type = 'text';
CREATE TRIGGER openai_responses_access_values_insert AFTER INSERT ON openai_responses
BEGIN
    INSERT INTO openai_responses_access_values (attribute_category, attribute_value, row_created, row_key)
    SELECT DISTINCT a.key, v.value, NEW.created_at, NEW.sequence
        FROM json_each(CASE WHEN json_valid(NEW.access_attributes) THEN CASE json_type(NEW.access_attributes) WHEN 'object' THEN NEW.access_attributes END END) AS a,
            json_each(CASE a.type WHEN 'array' THEN a.value END) AS v
        WHERE NEW.owner_principal <> '' AND a.type = 'array' AND v.type = 'text';
END;
CREATE TRIGGER openai_responses_access_values_update AFTER UPDATE OF owner_principal, access_attributes, created_at, sequence ON openai_responses
BEGIN
    DELETE FROM openai_responses_access_values WHERE row_key = OLD.sequence;
    INSERT INTO openai_responses_access_values (attribute_category, attribute_value, row_created, row_key)
    SELECT DISTINCT a.key, v.value, NEW.created_at, NEW.sequence
        FROM json_each(CASE WHEN json_valid(NEW.access_attributes) THEN CASE json_type(NEW.access_attributes) WHEN 'object' THEN NEW.access_attributes END END) AS a,
            json_each(CASE a.type WHEN 'array' THEN a.value END) AS v
        WHERE NEW.owner_principal <> '' AND a.type = 'array' AND v.type = 'text';
END;
CREATE TRIGGER openai_responses_access_values_delete AFTER DELETE ON openai_responses
BEGIN
    DELETE FROM openai_responses_access_values WHERE row_key = OLD.sequence;
END;

-- Stored responses (OpenAI's Responses API), one row per turn.
--
-- A row holds its own turn only: the input items of the request (`input_items`, JSON text, each
-- with its id) and the response object as answered (`response_object`: output items, usage,
-- status, the request's parameters; without the input). `previous_response_id` points at the
-- turn it continues, so a chain of N turns takes N rows, and reading it is one recursive query
-- walking the primary key (each step under the access policy). No history is copied from turn to
-- turn.
--
-- There is no foreign key on previous_response_id: deleting a response leaves the turns that
-- continued it in place (their chain ends where the deleted row was).
--
-- sequence numbers rows in insertion order: lists are ordered on (created_at, sequence), so
-- responses created in the same second keep their order and a keyset page never skips one.
-- created_at is Unix seconds; model the id the client asked for. The owner columns are written
-- by the authorized store layer ('' = unowned, never NULL).
CREATE TABLE openai_responses (
    sequence             INTEGER PRIMARY KEY AUTOINCREMENT,
    id                   TEXT NOT NULL UNIQUE,
    created_at           INTEGER NOT NULL,
    model                TEXT NOT NULL,
    previous_response_id TEXT,
    response_object      TEXT NOT NULL,
    input_items          TEXT NOT NULL,
    owner_principal      TEXT NOT NULL DEFAULT '',
    access_attributes    TEXT
);

-- One tenant's list, newest or oldest first, and the same filtered by model.
CREATE INDEX openai_responses_owner_created_idx ON openai_responses (owner_principal, created_at, sequence);
CREATE INDEX openai_responses_owner_model_created_idx ON openai_responses (owner_principal, model, created_at, sequence);

-- SQLite's V6 creates a side table of the owners' attribute values per tenant table (SQLite has
-- no index for a value inside a JSON list). PostgreSQL needs none: its GIN index on
-- access_attributes serves `user in owners C`. This file keeps the two migration sets in step
-- (the same versions and names); it changes nothing.
SELECT 1;

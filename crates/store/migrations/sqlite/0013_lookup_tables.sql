-- Lookup tables kept by Weft: reference data that recipes read (the tables connector, the
-- lookup template function). A table's rows are one JSON array: tables are small, read from
-- memory, and written whole; `version` tells other processes that their copy is old.
CREATE TABLE lookup_tables (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    columns    TEXT NOT NULL,
    rows       TEXT NOT NULL,
    version    BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

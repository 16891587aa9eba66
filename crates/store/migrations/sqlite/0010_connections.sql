-- Data keys seal secrets (envelope encryption); each is sealed by the master key, which is
-- never stored here. One per workspace.
CREATE TABLE data_keys (
    id            TEXT PRIMARY KEY,
    workspace     TEXT NOT NULL UNIQUE,
    master_key_id TEXT NOT NULL,
    sealed        TEXT NOT NULL,
    created_at    TEXT NOT NULL
);

-- Connections: the settings of one account of a connector. `fields` holds the settings that
-- are not secret, as JSON; `secrets` the secret ones, as one JSON object sealed by a data key.
CREATE TABLE connections (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    connector   TEXT NOT NULL,
    fields      TEXT NOT NULL,
    data_key_id TEXT REFERENCES data_keys (id),
    secrets     TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

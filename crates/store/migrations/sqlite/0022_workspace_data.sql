-- Every recipe, connection, lookup table and job belongs to one workspace; what was here
-- before belongs to `default`. Names and webhook paths are unique within a workspace, not
-- across the installation. SQLite cannot drop a column's UNIQUE in place, so the three tables
-- are made anew; the tables that refer to recipes and connections move with them (to tables
-- that refer to the new ones) before the old ones go, or dropping those would delete them.
ALTER TABLE jobs ADD COLUMN workspace_id TEXT NOT NULL DEFAULT 'default';

CREATE TABLE recipes_new (
    id              TEXT PRIMARY KEY,
    workspace_id    TEXT NOT NULL DEFAULT 'default' REFERENCES workspaces (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    enabled         BOOLEAN NOT NULL,
    current_version BIGINT NOT NULL,
    webhook_path    TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    max_running     BIGINT,
    UNIQUE (workspace_id, name),
    UNIQUE (workspace_id, webhook_path)
);
INSERT INTO recipes_new (id, workspace_id, name, enabled, current_version, webhook_path, created_at, updated_at, max_running)
    SELECT id, 'default', name, enabled, current_version, webhook_path, created_at, updated_at, max_running FROM recipes;

CREATE TABLE recipe_versions_new (
    recipe_id  TEXT NOT NULL REFERENCES recipes_new (id) ON DELETE CASCADE,
    version    BIGINT NOT NULL,
    source     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (recipe_id, version)
);
INSERT INTO recipe_versions_new SELECT recipe_id, version, source, created_at FROM recipe_versions;

CREATE TABLE schedule_state_new (
    recipe_id     TEXT PRIMARY KEY REFERENCES recipes_new (id) ON DELETE CASCADE,
    last_fired_at TEXT NOT NULL
);
INSERT INTO schedule_state_new SELECT recipe_id, last_fired_at FROM schedule_state;

CREATE TABLE poll_state_new (
    recipe_id TEXT PRIMARY KEY REFERENCES recipes_new (id) ON DELETE CASCADE,
    cursor    TEXT,
    polls     BIGINT NOT NULL,
    polled_at TEXT NOT NULL
);
INSERT INTO poll_state_new SELECT recipe_id, cursor, polls, polled_at FROM poll_state;

CREATE TABLE poll_seen_new (
    recipe_id TEXT NOT NULL REFERENCES recipes_new (id) ON DELETE CASCADE,
    item_key  TEXT NOT NULL,
    seen      BIGINT NOT NULL,
    PRIMARY KEY (recipe_id, item_key)
);
INSERT INTO poll_seen_new SELECT recipe_id, item_key, seen FROM poll_seen;

DROP TABLE recipe_versions;
DROP TABLE schedule_state;
DROP TABLE poll_state;
DROP TABLE poll_seen;
DROP TABLE recipes;
-- Renaming rewrites the references of the new child tables to the new name.
ALTER TABLE recipes_new RENAME TO recipes;
ALTER TABLE recipe_versions_new RENAME TO recipe_versions;
ALTER TABLE schedule_state_new RENAME TO schedule_state;
ALTER TABLE poll_state_new RENAME TO poll_state;
ALTER TABLE poll_seen_new RENAME TO poll_seen;
CREATE INDEX poll_seen_by_age ON poll_seen (recipe_id, seen);

CREATE TABLE connections_new (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL DEFAULT 'default' REFERENCES workspaces (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    connector    TEXT NOT NULL,
    fields       TEXT NOT NULL,
    data_key_id  TEXT REFERENCES data_keys (id),
    secrets      TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    limits       TEXT,
    UNIQUE (workspace_id, name)
);
INSERT INTO connections_new (id, workspace_id, name, connector, fields, data_key_id, secrets, created_at, updated_at, limits)
    SELECT id, 'default', name, connector, fields, data_key_id, secrets, created_at, updated_at, limits FROM connections;

CREATE TABLE oauth_sign_ins_new (
    state_hash    TEXT PRIMARY KEY,
    connection_id TEXT NOT NULL REFERENCES connections_new (id) ON DELETE CASCADE,
    data_key_id   TEXT NOT NULL REFERENCES data_keys (id),
    verifier      TEXT NOT NULL,
    redirect_uri  TEXT NOT NULL,
    until_ms      BIGINT NOT NULL
);
INSERT INTO oauth_sign_ins_new SELECT state_hash, connection_id, data_key_id, verifier, redirect_uri, until_ms FROM oauth_sign_ins;
DROP TABLE oauth_sign_ins;
DROP TABLE connections;
ALTER TABLE connections_new RENAME TO connections;
ALTER TABLE oauth_sign_ins_new RENAME TO oauth_sign_ins;

CREATE TABLE lookup_tables_new (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL DEFAULT 'default' REFERENCES workspaces (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    columns      TEXT NOT NULL,
    rows         TEXT NOT NULL,
    version      BIGINT NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    UNIQUE (workspace_id, name)
);
INSERT INTO lookup_tables_new (id, workspace_id, name, columns, rows, version, created_at, updated_at)
    SELECT id, 'default', name, columns, rows, version, created_at, updated_at FROM lookup_tables;
DROP TABLE lookup_tables;
ALTER TABLE lookup_tables_new RENAME TO lookup_tables;

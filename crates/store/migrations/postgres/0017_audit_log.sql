-- The audit log of each workspace: who did what, to what, from where. `details` holds a
-- change's before and after as JSON, never a secret. Ids are time-ordered, so the log pages
-- by id.
CREATE TABLE audit_events (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    at           TIMESTAMPTZ NOT NULL,
    actor_id     TEXT,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    target_id    TEXT,
    details      TEXT,
    ip           TEXT,
    user_agent   TEXT
);
CREATE INDEX audit_events_by_workspace ON audit_events (workspace_id, id);
CREATE INDEX audit_events_by_time ON audit_events (at);

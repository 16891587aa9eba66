-- When a workspace closed by its owner is deleted (NULL: it is open), and the final report of
-- each workspace deleted: what went, counted (no data of it).
ALTER TABLE workspaces ADD COLUMN close_due_at TIMESTAMPTZ;
CREATE TABLE closed_workspaces (
    id        TEXT NOT NULL,
    name      TEXT NOT NULL,
    closed_at TIMESTAMPTZ NOT NULL,
    report    TEXT NOT NULL,
    PRIMARY KEY (id, closed_at)
);

-- Recipes published for every workspace of the platform to import, in their shared form:
-- placeholders where the publisher's connections, secrets and personal data were (the values
-- taken out are never kept).
CREATE TABLE recipe_library (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL,
    source       TEXT NOT NULL,
    placeholders TEXT NOT NULL,
    published_by TEXT,
    published_at TEXT NOT NULL
);

-- Each workspace's masking rules for its job records: the field names masked wherever they
-- appear (NULL: the built-in list) and whether values that look like card numbers or
-- credentials are found and masked.
CREATE TABLE mask_settings (
    workspace_id TEXT PRIMARY KEY REFERENCES workspaces (id) ON DELETE CASCADE,
    fields       TEXT,
    detect       BOOLEAN NOT NULL,
    updated_at   TEXT NOT NULL
);

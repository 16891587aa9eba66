-- Each workspace's rules for its job history: how long it is kept (NULL: the server's
-- default, --history-keep) and how many bytes of it at most (NULL: no cap).
CREATE TABLE retention_settings (
    workspace_id      TEXT PRIMARY KEY REFERENCES workspaces (id) ON DELETE CASCADE,
    keep_secs         BIGINT,
    max_history_bytes BIGINT,
    updated_at        TEXT NOT NULL
);

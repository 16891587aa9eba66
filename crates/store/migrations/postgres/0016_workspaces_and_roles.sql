-- Workspaces, the people in each with a role, and API tokens scoped to one workspace and a
-- role. What was here before belongs to the workspace `default`; its people become owners
-- and its tokens keep the power they had (owner).
CREATE TABLE workspaces (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
INSERT INTO workspaces (id, name, created_at) VALUES ('default', 'Default', now());

CREATE TABLE memberships (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role         TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX memberships_by_user ON memberships (user_id);
INSERT INTO memberships (workspace_id, user_id, role, created_at)
    SELECT 'default', id, 'owner', created_at FROM users;

ALTER TABLE api_tokens ADD COLUMN workspace_id TEXT NOT NULL DEFAULT 'default' REFERENCES workspaces (id) ON DELETE CASCADE;
ALTER TABLE api_tokens ADD COLUMN role TEXT NOT NULL DEFAULT 'owner';
ALTER TABLE api_tokens ADD COLUMN name TEXT NOT NULL DEFAULT '';
ALTER TABLE api_tokens ADD COLUMN expires_at TIMESTAMPTZ;
ALTER TABLE api_tokens ADD COLUMN last_used_at TIMESTAMPTZ;

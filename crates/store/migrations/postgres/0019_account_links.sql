-- Links mailed to people (or printed once): a password reset, an email check, an invitation
-- into a workspace, the first owner's setup. Only the SHA-256 of a link's secret is kept; a
-- link is taken once (deleted) and ends at `expires_at`.
CREATE TABLE account_links (
    token_hash   TEXT PRIMARY KEY,
    purpose      TEXT NOT NULL,
    email        TEXT NOT NULL,
    workspace_id TEXT,
    role         TEXT,
    created_by   TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL
);

ALTER TABLE users ADD COLUMN email_verified_at TIMESTAMPTZ;

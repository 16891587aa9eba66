-- Single sign-on (OpenID Connect) of a workspace: its identity provider, the client's id and
-- secret (sealed by a data key), and whether members must sign in through it.
CREATE TABLE sso_settings (
    workspace_id  TEXT PRIMARY KEY,
    provider      TEXT NOT NULL,
    issuer        TEXT NOT NULL,
    client_id     TEXT NOT NULL,
    data_key_id   TEXT NOT NULL REFERENCES data_keys (id),
    client_secret TEXT NOT NULL,
    required      BOOLEAN NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);

-- Sign-ins through the identity provider in progress, found by the SHA-256 of their state;
-- the nonce and the PKCE verifier are sealed. Taken once by the callback.
CREATE TABLE sso_sign_ins (
    state_hash   TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    data_key_id  TEXT NOT NULL REFERENCES data_keys (id),
    sealed       TEXT NOT NULL,
    until_ms     BIGINT NOT NULL
);

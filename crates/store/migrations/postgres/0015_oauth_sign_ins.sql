-- Accounts being connected through the browser (OAuth 2 authorization code), kept here so
-- that any process of the platform can take the provider's callback. A sign-in is found by
-- the SHA-256 of its `state` (the state itself is never stored), its PKCE verifier is sealed
-- by a data key, and it is taken once: the callback deletes it.
CREATE TABLE oauth_sign_ins (
    state_hash    TEXT PRIMARY KEY,
    connection_id TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    data_key_id   TEXT NOT NULL REFERENCES data_keys (id),
    verifier      TEXT NOT NULL,
    redirect_uri  TEXT NOT NULL,
    until_ms      BIGINT NOT NULL
);

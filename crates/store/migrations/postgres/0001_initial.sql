-- Weft's first schema (PostgreSQL). Keep in step with migrations/sqlite: same versions, same tables.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   TIMESTAMPTZ NOT NULL
);

CREATE TABLE recipes (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    enabled         BOOLEAN NOT NULL,
    current_version BIGINT NOT NULL,
    webhook_path    TEXT UNIQUE,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);

CREATE TABLE recipe_versions (
    recipe_id  TEXT NOT NULL REFERENCES recipes (id) ON DELETE CASCADE,
    version    BIGINT NOT NULL,
    source     TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (recipe_id, version)
);

CREATE TABLE jobs (
    id             TEXT PRIMARY KEY,
    recipe_id      TEXT NOT NULL,
    recipe_name    TEXT NOT NULL,
    recipe_version BIGINT NOT NULL,
    status         TEXT NOT NULL,
    trigger        JSONB NOT NULL,
    output         JSONB,
    error          JSONB,
    attempt        BIGINT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    run_after      TIMESTAMPTZ NOT NULL,
    started_at     TIMESTAMPTZ,
    finished_at    TIMESTAMPTZ,
    lease_owner    TEXT,
    lease_until    TIMESTAMPTZ
);

CREATE INDEX jobs_ready ON jobs (status, run_after);
CREATE INDEX jobs_by_recipe ON jobs (recipe_id, created_at);
CREATE INDEX jobs_by_time ON jobs (created_at);

CREATE TABLE job_steps (
    job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq    BIGINT NOT NULL,
    record JSONB NOT NULL,
    PRIMARY KEY (job_id, seq)
);

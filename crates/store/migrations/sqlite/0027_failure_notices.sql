-- Failed jobs whose notice is still to be mailed: written with the job's record, deleted once
-- the digest that lists it is sent (or the job is deleted). They hold no data of the job.
-- `failed_at` is a job time (on SQLite, microseconds since the epoch, as in `jobs`).
CREATE TABLE failure_notices (
    job_id       TEXT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    workspace_id TEXT NOT NULL,
    recipe_id    TEXT NOT NULL,
    recipe_name  TEXT NOT NULL,
    failed_at    BIGINT NOT NULL
);

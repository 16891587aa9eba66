-- The answer of a job whose caller waits in another process (a sync webhook taken by a web
-- process and run by a worker): left by the worker, taken (deleted) by the waiting process,
-- which is told by a notification. Unread answers are deleted within minutes, and with their
-- job. `posted_ms` is milliseconds since the epoch.
CREATE TABLE job_answers (
    job_id    TEXT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    answer    JSONB NOT NULL,
    posted_ms BIGINT NOT NULL
);

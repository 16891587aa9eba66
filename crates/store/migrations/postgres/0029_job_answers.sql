-- The answer of a job whose caller waits in another process (a sync webhook taken by a web
-- process and run by a worker): left by the worker, taken (deleted) by the waiting process,
-- which is told by a notification. Unread answers are deleted within minutes, and with their
-- job. `posted_ms` is milliseconds since the epoch.
CREATE TABLE job_answers (
    job_id    TEXT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    answer    JSONB NOT NULL,
    posted_ms BIGINT NOT NULL
);


-- Claims take the job that became due first. With a long queue, an index in that order finds
-- it at once; without it, every claim sorted the whole queue (1.5 s a claim with 1,000,000
-- queued jobs on PostgreSQL 15, against 0.2 ms with it: see bench/RESULTS.md).
CREATE INDEX jobs_due ON jobs (run_after) WHERE status IN ('queued', 'waiting', 'running');

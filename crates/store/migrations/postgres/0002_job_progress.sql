-- The steps a running job has finished, written as they finish, so that a job taken over after
-- a crash (or woken from a durable wait) resumes after them. Emptied when the job ends.
CREATE TABLE job_progress (
    job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    path   TEXT NOT NULL,
    record JSONB NOT NULL,
    PRIMARY KEY (job_id, path)
);

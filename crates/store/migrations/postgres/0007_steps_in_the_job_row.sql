-- A job's step records move into its own row, as one JSON array: one row and one index entry a
-- job instead of one a step. The queue's index keeps only unfinished jobs, and the history is
-- paged by its time-ordered ids instead of a second index on the creation time.
ALTER TABLE jobs ADD COLUMN steps JSONB;
UPDATE jobs SET steps = s.steps
    FROM (SELECT job_id, jsonb_agg(record ORDER BY seq) AS steps FROM job_steps GROUP BY job_id) s
    WHERE s.job_id = jobs.id;
DROP TABLE job_steps;
DROP INDEX jobs_by_time;
DROP INDEX jobs_ready;
CREATE INDEX jobs_ready ON jobs (status, run_after) WHERE status IN ('queued', 'waiting', 'running');

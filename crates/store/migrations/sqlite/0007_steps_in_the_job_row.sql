-- A job's step records move into its own row, as one JSON array: one row and one index entry a
-- job instead of one a step. The queue's index keeps only unfinished jobs, and the history is
-- paged by its time-ordered ids instead of a second index on the creation time.
ALTER TABLE jobs ADD COLUMN steps TEXT;
UPDATE jobs SET steps = (SELECT json_group_array(json(record) ORDER BY seq) FROM job_steps WHERE job_id = jobs.id)
    WHERE id IN (SELECT job_id FROM job_steps);
DROP TABLE job_steps;
DROP INDEX jobs_by_time;
DROP INDEX jobs_ready;
CREATE INDEX jobs_ready ON jobs (status, run_after) WHERE status IN ('queued', 'waiting', 'running');

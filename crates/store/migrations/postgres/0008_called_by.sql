-- A job run by another job's `call` step points at that job.
ALTER TABLE jobs ADD COLUMN called_by TEXT;

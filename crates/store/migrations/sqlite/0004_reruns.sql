-- A rerun points at the job it repeats.
ALTER TABLE jobs ADD COLUMN rerun_of TEXT;

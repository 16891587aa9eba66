-- Claims take the job that became due first. With a long queue, an index in that order finds
-- it at once; without it, every claim sorted the whole queue (1.5 s a claim with 1,000,000
-- queued jobs on PostgreSQL 15, against 0.2 ms with it: see bench/RESULTS.md).
-- Building it reads the whole job table and holds its writes meanwhile; an installation with a
-- long history builds it first without holding them, and this then finds it made:
--   CREATE INDEX CONCURRENTLY IF NOT EXISTS jobs_due ON jobs (run_after)
--     WHERE status IN ('queued', 'waiting', 'running');
CREATE INDEX IF NOT EXISTS jobs_due ON jobs (run_after) WHERE status IN ('queued', 'waiting', 'running');

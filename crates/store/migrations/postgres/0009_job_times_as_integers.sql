-- SQLite's job table keeps its times as integer microseconds from this version on.
-- PostgreSQL's `timestamptz` is 8 bytes of microseconds already: nothing changes here.
SELECT 1;

-- Work that one process of the platform does at a time (a subscription's consumer, say):
-- `holder` has it until `until_ms` (milliseconds since the Unix epoch) and renews it while it
-- runs; when its holder dies, another process takes it over once the time has passed.
CREATE TABLE leases (
    name     TEXT PRIMARY KEY,
    holder   TEXT NOT NULL,
    until_ms BIGINT NOT NULL
);

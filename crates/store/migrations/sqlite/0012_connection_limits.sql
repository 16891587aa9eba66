-- A connection's budget of calls, as JSON: { requests, per, concurrent }. NULL: none.
ALTER TABLE connections ADD COLUMN limits TEXT;

-- What each poll trigger has seen, keyed by its recipe (a stable identity: it survives edits
-- of the recipe, restarts and disable/enable). `polls` counts the polls committed, and
-- guards against two processes committing the same poll.
CREATE TABLE poll_state (
    recipe_id TEXT PRIMARY KEY REFERENCES recipes (id) ON DELETE CASCADE,
    cursor    TEXT,
    polls     BIGINT NOT NULL,
    polled_at TEXT NOT NULL
);

-- The keys of the items that made a job, newest last (`seen` is the poll that saw it).
CREATE TABLE poll_seen (
    recipe_id TEXT NOT NULL REFERENCES recipes (id) ON DELETE CASCADE,
    item_key  TEXT NOT NULL,
    seen      BIGINT NOT NULL,
    PRIMARY KEY (recipe_id, item_key)
);
CREATE INDEX poll_seen_by_age ON poll_seen (recipe_id, seen);

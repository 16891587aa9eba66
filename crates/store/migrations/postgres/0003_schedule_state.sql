-- When each schedule last fired: the scheduler fires every tick after it once, even across a
-- restart, and two schedulers cannot fire the same tick.
CREATE TABLE schedule_state (
    recipe_id     TEXT PRIMARY KEY REFERENCES recipes (id) ON DELETE CASCADE,
    last_fired_at TIMESTAMPTZ NOT NULL
);

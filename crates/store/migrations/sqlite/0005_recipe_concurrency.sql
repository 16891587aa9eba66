-- Most jobs of a recipe running at once (the recipe's `concurrency`); none when unbounded.
ALTER TABLE recipes ADD COLUMN max_running BIGINT;

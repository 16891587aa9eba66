-- Every recipe, connection, lookup table and job belongs to one workspace; what was here
-- before belongs to `default`. Names and webhook paths are unique within a workspace, not
-- across the installation.
ALTER TABLE jobs ADD COLUMN workspace_id TEXT NOT NULL DEFAULT 'default';

ALTER TABLE recipes ADD COLUMN workspace_id TEXT NOT NULL DEFAULT 'default' REFERENCES workspaces (id) ON DELETE CASCADE;
ALTER TABLE recipes DROP CONSTRAINT recipes_name_key;
ALTER TABLE recipes DROP CONSTRAINT recipes_webhook_path_key;
ALTER TABLE recipes ADD CONSTRAINT recipes_name_in_workspace UNIQUE (workspace_id, name);
ALTER TABLE recipes ADD CONSTRAINT recipes_webhook_path_in_workspace UNIQUE (workspace_id, webhook_path);

ALTER TABLE connections ADD COLUMN workspace_id TEXT NOT NULL DEFAULT 'default' REFERENCES workspaces (id) ON DELETE CASCADE;
ALTER TABLE connections DROP CONSTRAINT connections_name_key;
ALTER TABLE connections ADD CONSTRAINT connections_name_in_workspace UNIQUE (workspace_id, name);

ALTER TABLE lookup_tables ADD COLUMN workspace_id TEXT NOT NULL DEFAULT 'default' REFERENCES workspaces (id) ON DELETE CASCADE;
ALTER TABLE lookup_tables DROP CONSTRAINT lookup_tables_name_key;
ALTER TABLE lookup_tables ADD CONSTRAINT lookup_tables_name_in_workspace UNIQUE (workspace_id, name);

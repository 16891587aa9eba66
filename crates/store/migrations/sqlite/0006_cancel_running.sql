-- Why a running job was asked to stop, and by whom; its process stops it before its next step.
ALTER TABLE jobs ADD COLUMN cancel_reason TEXT;

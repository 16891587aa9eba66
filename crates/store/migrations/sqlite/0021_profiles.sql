-- Optional profile fields of a person, and their photo (checked for size and type before it
-- is stored). `notification_emails` is a JSON list of extra addresses.
ALTER TABLE users ADD COLUMN phone TEXT;
ALTER TABLE users ADD COLUMN title TEXT;
ALTER TABLE users ADD COLUMN company TEXT;
ALTER TABLE users ADD COLUMN company_size TEXT;
ALTER TABLE users ADD COLUMN username TEXT;
ALTER TABLE users ADD COLUMN notification_emails TEXT;
ALTER TABLE users ADD COLUMN photo BLOB;
ALTER TABLE users ADD COLUMN photo_type TEXT;
CREATE UNIQUE INDEX users_by_username ON users (username);

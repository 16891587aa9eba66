-- What a person agreed to be mailed about besides service notices (NULL: not agreed, the
-- default), since when, and when their account is to be deleted, if they asked.
ALTER TABLE users ADD COLUMN marketing_consent_at TIMESTAMPTZ;
ALTER TABLE users ADD COLUMN product_news_consent_at TIMESTAMPTZ;
ALTER TABLE users ADD COLUMN deletion_due_at TIMESTAMPTZ;

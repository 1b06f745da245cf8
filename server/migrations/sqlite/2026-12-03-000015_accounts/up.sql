-- Accounts: an email (from the directory, or set by an admin) that a provider's verified email
-- claim may be matched against when the admin allows it; the kind of account (a person, or a
-- service account: no password, no personal data, keys made by admins); and when it last
-- signed in, so accounts a provider no longer vouches for can be disabled.
ALTER TABLE users ADD COLUMN email TEXT;
ALTER TABLE users ADD COLUMN kind TEXT NOT NULL DEFAULT 'person';
ALTER TABLE users ADD COLUMN last_sign_in_at BIGINT;
UPDATE users SET last_sign_in_at = updated_at;
CREATE INDEX users_identity ON users(auth_source, external_id);

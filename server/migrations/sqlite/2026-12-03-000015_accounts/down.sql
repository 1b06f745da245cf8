DROP INDEX users_identity;
ALTER TABLE users DROP COLUMN last_sign_in_at;
ALTER TABLE users DROP COLUMN kind;
ALTER TABLE users DROP COLUMN email;

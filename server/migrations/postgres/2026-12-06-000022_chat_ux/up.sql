-- When a reply's first text came, for the footer under each answer.
ALTER TABLE messages ADD COLUMN ttft_ms BIGINT;
-- Pinned conversations stay at the top of the list, most recently pinned first.
ALTER TABLE conversations ADD COLUMN pinned_at BIGINT;
-- A person's own choice of light or dark (NULL: the theme's mode, or the system's).
ALTER TABLE users ADD COLUMN color_mode TEXT;

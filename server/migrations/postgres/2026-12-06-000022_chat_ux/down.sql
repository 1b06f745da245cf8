ALTER TABLE users DROP COLUMN color_mode;
ALTER TABLE conversations DROP COLUMN pinned_at;
ALTER TABLE messages DROP COLUMN ttft_ms;

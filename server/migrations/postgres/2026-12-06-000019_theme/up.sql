-- The white-label theme admins set from the console or `ayushctl theme`: one row, laid over
-- the [theme] section of the config file (a NULL column keeps the file's value). Every
-- replica reloads it when `revision` moves.
CREATE TABLE theme (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    product_name TEXT,
    primary_color TEXT,
    accent_color TEXT,
    -- light, dark or auto (the visitor's system setting).
    mode TEXT,
    logo BYTEA,
    logo_type TEXT,
    favicon BYTEA,
    favicon_type TEXT,
    -- The notice people acknowledge after signing in, and its number: a new text is a new
    -- number, which everyone acknowledges again.
    banner TEXT,
    banner_revision BIGINT NOT NULL DEFAULT 0,
    -- JSON: [{"label": ..., "url": ...}].
    footer_links TEXT,
    css TEXT,
    revision BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Who acknowledged which notice, and when (the audit log holds each acknowledgement too).
CREATE TABLE notice_acknowledgements (
    user_id BIGINT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    banner_revision BIGINT NOT NULL,
    acknowledged_at BIGINT NOT NULL
);

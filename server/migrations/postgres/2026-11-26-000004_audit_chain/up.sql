-- The hash chain: every event gets a gap-free sequence number, the MAC of the event before it
-- (prev_hash) and its own MAC (hash), an HMAC-SHA256 under a key kept outside the database.
-- Events written before the chain existed are numbered here in id order and sealed at start-up.
ALTER TABLE audit_events ADD COLUMN seq BIGINT;
ALTER TABLE audit_events ADD COLUMN prev_hash TEXT;
ALTER TABLE audit_events ADD COLUMN hash TEXT;
ALTER TABLE audit_events ADD COLUMN api_key_id BIGINT;
UPDATE audit_events SET seq = r.n
    FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM audit_events) r
    WHERE r.id = audit_events.id;
CREATE UNIQUE INDEX audit_events_seq ON audit_events(seq);
CREATE INDEX audit_events_actor ON audit_events(actor_id, seq);
CREATE INDEX audit_events_action ON audit_events(action, seq);

-- The chain head: one row, locked by every writer, so events are numbered and linked in the
-- order their transactions commit.
CREATE TABLE audit_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
    SELECT 1, COALESCE(MAX(seq), 0), '' FROM audit_events;

-- Signed statements "the chain reached seq with this head at this time".
CREATE TABLE audit_checkpoints (
    id BIGSERIAL PRIMARY KEY,
    seq BIGINT NOT NULL,
    head TEXT NOT NULL,
    at BIGINT NOT NULL,
    reason TEXT NOT NULL,
    key_id TEXT NOT NULL,
    signature TEXT NOT NULL
);
CREATE INDEX audit_checkpoints_seq ON audit_checkpoints(seq);

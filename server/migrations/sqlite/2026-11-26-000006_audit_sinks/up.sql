-- Where each SIEM sink has got to: the last seq it was sent, and which replica forwards it
-- (a lease, so that in a scale-out install one replica sends each event once).
CREATE TABLE audit_sinks (
    name TEXT PRIMARY KEY,
    delivered_seq BIGINT NOT NULL,
    owner TEXT,
    lease_until BIGINT NOT NULL DEFAULT 0
);

-- Work that must run once for the whole installation, however many replicas share this
-- database (audit checkpoints, verification and retention; directory sync; purges), is done by
-- the replica holding the lease; a lease its holder stops renewing lapses, and another takes it.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until BIGINT NOT NULL
);

-- Which replica runs a running ingestion job, and its heartbeat: a job whose heartbeat stops
-- (its replica died) goes back to the queue within seconds, not minutes.
CREATE TABLE ingest_claims (
    job_id BIGINT PRIMARY KEY REFERENCES ingest_jobs(id) ON DELETE CASCADE,
    replica TEXT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);

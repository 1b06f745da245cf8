-- Files waiting to be added to a collection, and what became of them. Workers in any replica
-- claim queued jobs; the uploaded bytes wait in ingest_uploads until their job ends.
CREATE TABLE ingest_jobs (
    id BIGSERIAL PRIMARY KEY,
    collection_id BIGINT NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    source TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    -- queued, running, done, failed or cancelled
    status TEXT NOT NULL,
    -- added, replaced or unchanged, once done
    outcome TEXT,
    error TEXT,
    document_id BIGINT,
    cancel_requested BOOLEAN NOT NULL,
    -- Who asked, as the audit log records them (JSON).
    actor TEXT NOT NULL,
    user_id BIGINT REFERENCES users(id) ON DELETE SET NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT
);
CREATE INDEX ingest_jobs_status ON ingest_jobs(status, id);
CREATE INDEX ingest_jobs_collection ON ingest_jobs(collection_id, id);

CREATE TABLE ingest_uploads (
    job_id BIGINT PRIMARY KEY REFERENCES ingest_jobs(id) ON DELETE CASCADE,
    content BYTEA NOT NULL
);

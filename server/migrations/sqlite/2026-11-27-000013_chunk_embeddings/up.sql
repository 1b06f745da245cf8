-- Dense vectors of passages, filled in behind ingestion by the embedding model. `seq` lets each
-- replica load the vectors it has not seen; `vector` is little-endian f32.
CREATE TABLE chunk_embeddings (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    chunk_id BIGINT NOT NULL REFERENCES chunks(id) ON DELETE CASCADE,
    model TEXT NOT NULL,
    vector BLOB NOT NULL,
    UNIQUE (chunk_id, model)
);

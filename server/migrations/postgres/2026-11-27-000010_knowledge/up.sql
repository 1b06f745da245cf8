-- Document collections and who may read them. A personal collection (owner_id set) is read by
-- its owner alone; a shared one (owner_id NULL, made by an admin) by the members of its reader
-- groups, and by nobody while it has none.
CREATE TABLE collections (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    owner_id BIGINT REFERENCES users(id) ON DELETE CASCADE,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX collections_owner ON collections(owner_id);

CREATE TABLE collection_readers (
    collection_id BIGINT NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    group_id BIGINT NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (collection_id, group_id)
);
CREATE INDEX collection_readers_group ON collection_readers(group_id);

-- One row per source file in a collection; `source` is its name (or path under the folder
-- ingested) and `sha256` the hash of its bytes, so re-ingesting the same file changes nothing.
CREATE TABLE documents (
    id BIGSERIAL PRIMARY KEY,
    collection_id BIGINT NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    source TEXT NOT NULL,
    title TEXT NOT NULL,
    format TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    pages BIGINT,
    chunks BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (collection_id, source)
);

-- The original bytes, so a reader can open what a citation points at.
CREATE TABLE document_files (
    document_id BIGINT PRIMARY KEY REFERENCES documents(id) ON DELETE CASCADE,
    content BYTEA NOT NULL
);

-- The passages retrieval works on. `chunk_key` is derived from the document's source and the
-- passage's text, so an unchanged passage keeps its id when its document is re-ingested.
CREATE TABLE chunks (
    id BIGSERIAL PRIMARY KEY,
    document_id BIGINT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    ordinal BIGINT NOT NULL,
    chunk_key TEXT NOT NULL,
    heading TEXT NOT NULL,
    page BIGINT,
    body TEXT NOT NULL,
    UNIQUE (document_id, ordinal)
);
CREATE INDEX chunks_key ON chunks(chunk_key);

-- The change feed each replica's full-text index follows: one row per document written or
-- removed, or per collection removed. An index remembers the last seq it applied.
CREATE TABLE index_changes (
    seq BIGSERIAL PRIMARY KEY,
    collection_id BIGINT NOT NULL,
    document_id BIGINT,
    created_at BIGINT NOT NULL
);

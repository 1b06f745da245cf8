-- The collections a conversation answers from. The reader's rights are checked again at every
-- turn: attaching a collection grants nothing.
CREATE TABLE conversation_collections (
    conversation_id BIGINT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    collection_id BIGINT NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    PRIMARY KEY (conversation_id, collection_id)
);

-- The passages a reply was given, numbered as the prompt numbered them, with their text as it
-- was then. Shown again only to someone who may still read the collection.
CREATE TABLE message_citations (
    message_id BIGINT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    number BIGINT NOT NULL,
    collection_id BIGINT NOT NULL,
    document_id BIGINT NOT NULL,
    chunk_id BIGINT NOT NULL,
    title TEXT NOT NULL,
    source TEXT NOT NULL,
    heading TEXT NOT NULL,
    page BIGINT,
    body TEXT NOT NULL,
    PRIMARY KEY (message_id, number)
);

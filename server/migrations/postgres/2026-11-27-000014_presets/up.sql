-- Assistants an admin prepares: a model, standing instructions and the collections its answers
-- draw on ("HR assistant"). Whoever chats with one reads its collections with their own rights.
CREATE TABLE presets (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    model TEXT NOT NULL,
    system_prompt TEXT NOT NULL,
    description TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE preset_collections (
    preset_id BIGINT NOT NULL REFERENCES presets(id) ON DELETE CASCADE,
    collection_id BIGINT NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    PRIMARY KEY (preset_id, collection_id)
);

ALTER TABLE conversations ADD COLUMN preset_id BIGINT REFERENCES presets(id) ON DELETE SET NULL;

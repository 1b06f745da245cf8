-- Remote model providers an admin configured. The API key is sealed with AES-256-GCM under
-- secrets/provider-keys.key (outside the database), bound to the provider's name.
CREATE TABLE providers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    base_url TEXT NOT NULL,
    api_key_sealed TEXT,
    -- A JSON array of the upstream's model ids that Ayush offers as "name/model".
    models TEXT NOT NULL,
    timeout_secs BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- One row per answer asked of a model (a web chat turn, a /v1 call), for usage reports,
-- chargeback and quotas. The user's name and groups are kept as they were at the time, so a
-- report by group stays right after people move. Pruned after usage.retention_days.
CREATE TABLE usage_records (
    id BIGSERIAL PRIMARY KEY,
    at BIGINT NOT NULL,
    user_id BIGINT,
    username TEXT NOT NULL,
    -- A JSON array of group names.
    groups TEXT NOT NULL DEFAULT '[]',
    api_key_id BIGINT,
    -- chat, v1.chat or v1.embeddings.
    source TEXT NOT NULL,
    model TEXT NOT NULL,
    -- local, or the remote provider's name.
    provider TEXT NOT NULL,
    prompt_tokens BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    ttft_ms BIGINT,
    duration_ms BIGINT NOT NULL,
    -- ok, cancelled, error or refused.
    outcome TEXT NOT NULL
);
CREATE INDEX usage_records_at ON usage_records (at);
CREATE INDEX usage_records_user_at ON usage_records (user_id, at);

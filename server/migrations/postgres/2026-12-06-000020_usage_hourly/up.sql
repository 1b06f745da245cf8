-- Each hour's answers of one user, key and model, rolled up from usage_records as usage_daily
-- is, when the records are pruned: the dashboard's hourly charts keep their bars after the
-- records are gone. Kept for 400 days (usage::HOURLY_KEEP_DAYS); the daily rollup for good.
CREATE TABLE usage_hourly (
    hour BIGINT NOT NULL,
    username TEXT NOT NULL,
    groups TEXT NOT NULL,
    api_key_id BIGINT NOT NULL,
    model TEXT NOT NULL,
    provider TEXT NOT NULL,
    requests BIGINT NOT NULL,
    prompt_tokens BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    errors BIGINT NOT NULL,
    cancelled BIGINT NOT NULL,
    refused BIGINT NOT NULL,
    cost_nanos BIGINT NOT NULL,
    ttft_sum BIGINT NOT NULL,
    ttft_count BIGINT NOT NULL,
    duration_sum BIGINT NOT NULL,
    PRIMARY KEY (hour, username, groups, api_key_id, model)
);

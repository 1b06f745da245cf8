DROP TABLE usage_daily;
DROP TABLE quota_refusals;
DROP TABLE generation_slots;
DROP TABLE request_windows;
DROP TABLE quotas;
CREATE TABLE usage_totals (
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    day BIGINT NOT NULL,
    requests BIGINT NOT NULL DEFAULT 0,
    prompt_tokens BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, day)
);
INSERT INTO usage_totals (user_id, day, requests, prompt_tokens, completion_tokens)
    SELECT user_id, day, CAST(SUM(requests) AS BIGINT), CAST(SUM(tokens) AS BIGINT), 0
    FROM usage_counters GROUP BY user_id, day;
DROP TABLE usage_counters;
ALTER TABLE usage_records DROP COLUMN cost_nanos;
DROP TABLE model_prices;

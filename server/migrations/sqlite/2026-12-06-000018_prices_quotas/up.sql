-- What admins charge for a model, per million tokens, in millionths of the installation's
-- currency (usage.currency), so sums stay exact. Remote models are priced under their
-- provider's name and the provider's own model name; provider 'local' gives a local model a
-- notional price for chargeback.
CREATE TABLE model_prices (
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    input_micros_per_mtok BIGINT NOT NULL,
    output_micros_per_mtok BIGINT NOT NULL,
    set_at BIGINT NOT NULL,
    PRIMARY KEY (provider, model)
);

-- An answer's cost at the price of its day, in billionths of the currency.
ALTER TABLE usage_records ADD COLUMN cost_nanos BIGINT NOT NULL DEFAULT 0;

-- Each person's tokens and cost per UTC day, local and remote apart: what quotas are checked
-- against (a day is one row, a month at most 31) and what their account page shows.
-- Replaces usage_totals, whose counts carry over (as local: before this, there were no
-- prices, and the usage records since 000017 say which were remote).
CREATE TABLE usage_counters (
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- local or remote.
    pool TEXT NOT NULL,
    day BIGINT NOT NULL,
    requests BIGINT NOT NULL DEFAULT 0,
    tokens BIGINT NOT NULL DEFAULT 0,
    cost_nanos BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, pool, day)
);
INSERT INTO usage_counters (user_id, pool, day, requests, tokens, cost_nanos)
    SELECT r.user_id, CASE WHEN r.provider = 'local' THEN 'local' ELSE 'remote' END, r.at / 86400,
           COUNT(*), CAST(SUM(r.prompt_tokens + r.completion_tokens) AS BIGINT), 0
    FROM usage_records r JOIN users u ON u.id = r.user_id
    WHERE r.outcome <> 'refused'
    GROUP BY r.user_id, CASE WHEN r.provider = 'local' THEN 'local' ELSE 'remote' END, r.at / 86400;
INSERT INTO usage_counters (user_id, pool, day, requests, tokens, cost_nanos)
    SELECT t.user_id, 'local', t.day, t.requests, t.prompt_tokens + t.completion_tokens, 0
    FROM usage_totals t
    WHERE NOT EXISTS (SELECT 1 FROM usage_counters c WHERE c.user_id = t.user_id AND c.day = t.day);
DROP TABLE usage_totals;

-- Limits per person or per group. pool says what a row limits: all answers, or only local or
-- only remote ones. A missing limit is no limit.
CREATE TABLE quotas (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT REFERENCES users(id) ON DELETE CASCADE,
    group_id BIGINT REFERENCES groups(id) ON DELETE CASCADE,
    pool TEXT NOT NULL,
    tokens_per_day BIGINT,
    tokens_per_month BIGINT,
    requests_per_minute BIGINT,
    concurrent BIGINT,
    -- Remote models only, in millionths of the currency.
    spend_micros_per_month BIGINT,
    set_at BIGINT NOT NULL,
    CHECK ((user_id IS NULL) <> (group_id IS NULL))
);
CREATE UNIQUE INDEX quotas_user_pool ON quotas (user_id, pool) WHERE user_id IS NOT NULL;
CREATE UNIQUE INDEX quotas_group_pool ON quotas (group_id, pool) WHERE group_id IS NOT NULL;

-- Requests started per person per minute, for requests_per_minute: counted in the database so
-- the limit holds across replicas.
CREATE TABLE request_windows (
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    pool TEXT NOT NULL,
    minute BIGINT NOT NULL,
    requests BIGINT NOT NULL,
    PRIMARY KEY (user_id, pool, minute)
);

-- Answers being generated, for the concurrent limit across replicas. A row is deleted when its
-- answer ends; one whose replica died lapses at until.
CREATE TABLE generation_slots (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    pool TEXT NOT NULL,
    until BIGINT NOT NULL
);
CREATE INDEX generation_slots_user ON generation_slots (user_id, until);

-- Requests a limit refused, per person, hour and limit: summed into one audit event per person
-- per hour (summarized), not one per request.
CREATE TABLE quota_refusals (
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    hour BIGINT NOT NULL,
    limit_name TEXT NOT NULL,
    refusals BIGINT NOT NULL,
    summarized BOOLEAN NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, hour, limit_name)
);

-- Usage records rolled up by UTC day once usage.retention_days prunes them, so reports and the
-- console's charts keep their history: one row per day, user (with their groups), key and
-- model. Times keep their sums (means), not their percentiles.
CREATE TABLE usage_daily (
    day BIGINT NOT NULL,
    username TEXT NOT NULL,
    groups TEXT NOT NULL,
    -- 0: no key (the web chat, a signed-in session).
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
    -- Over the requests not refused.
    duration_sum BIGINT NOT NULL,
    PRIMARY KEY (day, username, groups, api_key_id, model)
);

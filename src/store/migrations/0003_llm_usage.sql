-- 0003_llm_usage: one row per model call through the router, for metering,
-- budgets and explanation.  cost_usd is NULL when the model has no price:
-- such usage is unpriced, never free.
CREATE TABLE llm_usage (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    key_id            TEXT,
    agent_id          TEXT,
    task_id           TEXT,
    provider          TEXT NOT NULL,
    model             TEXT NOT NULL,
    prompt_tokens     BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    cached_tokens     BIGINT NOT NULL DEFAULT 0,
    cost_usd          DOUBLE PRECISION,
    priced            INTEGER NOT NULL,
    latency_ms        DOUBLE PRECISION NOT NULL,
    ttft_ms           DOUBLE PRECISION,
    stream            INTEGER NOT NULL,
    outcome           TEXT NOT NULL,
    error_kind        TEXT,
    route             TEXT,
    request_id        TEXT,
    created_at        TEXT NOT NULL
);
CREATE INDEX llm_usage_tenant_time ON llm_usage (tenant_id, created_at);

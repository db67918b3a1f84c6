-- 0004_llm_config: budget threshold events, one row per tenant, budget,
-- period and threshold, so the 80% / 100% audit entries are written once.
CREATE TABLE llm_budget_events (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    budget     TEXT NOT NULL,
    period     TEXT NOT NULL,
    threshold  INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, budget, period, threshold)
);

-- Usage per tenant and UTC day, kept by the usage writer in the same
-- transaction as the llm_usage rows: budget checks read at most a month
-- of these instead of every call.  cost_usd sums priced calls only.
CREATE TABLE llm_usage_daily (
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    day       TEXT NOT NULL,
    calls     BIGINT NOT NULL DEFAULT 0,
    tokens    BIGINT NOT NULL DEFAULT 0,
    cost_usd  DOUBLE PRECISION NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, day)
);
INSERT INTO llm_usage_daily (tenant_id, day, calls, tokens, cost_usd)
    SELECT tenant_id, substr(created_at, 1, 10), COUNT(*),
           SUM(prompt_tokens + completion_tokens), COALESCE(SUM(cost_usd), 0)
    FROM llm_usage GROUP BY tenant_id, substr(created_at, 1, 10);

-- Tenants' LLM configurations (src/llm/config.h): a name unique in the
-- tenant, at most one tenant default, models, defaults, USD budgets and
-- a sealed BYOK key.  routing_rules is JSON text.
CREATE TABLE llm_configs (
    id                   TEXT PRIMARY KEY,
    tenant_id            TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name                 TEXT NOT NULL,
    is_tenant_default    INTEGER NOT NULL DEFAULT 0,
    primary_model        TEXT,
    fallback_model       TEXT,
    temperature          DOUBLE PRECISION,
    max_tokens           INTEGER,
    routing_rules        TEXT,
    budget_limit_daily   DOUBLE PRECISION,
    budget_limit_monthly DOUBLE PRECISION,
    use_platform_key     INTEGER NOT NULL DEFAULT 1,
    -- BYOK: the tenant's provider key, sealed (src/core/secret.h), hex text
    byok_provider         TEXT,
    byok_key_ciphertext   TEXT,
    byok_nonce            TEXT,
    byok_data_key_wrapped TEXT,
    byok_key_last4        TEXT,
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL,
    UNIQUE (tenant_id, name)
);
CREATE UNIQUE INDEX llm_configs_one_default ON llm_configs (tenant_id) WHERE is_tenant_default = 1;

-- 0004_llm_config, PostgreSQL part: tenant isolation.
ALTER TABLE llm_budget_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE llm_budget_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON llm_budget_events
    USING (current_setting('app.platform', true) = 'on'
           OR tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (current_setting('app.platform', true) = 'on'
           OR tenant_id = current_setting('app.tenant_id', true));

ALTER TABLE llm_usage_daily ENABLE ROW LEVEL SECURITY;
ALTER TABLE llm_usage_daily FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON llm_usage_daily
    USING (current_setting('app.platform', true) = 'on'
           OR tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (current_setting('app.platform', true) = 'on'
           OR tenant_id = current_setting('app.tenant_id', true));

ALTER TABLE llm_configs ENABLE ROW LEVEL SECURITY;
ALTER TABLE llm_configs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON llm_configs
    USING (current_setting('app.platform', true) = 'on'
           OR tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (current_setting('app.platform', true) = 'on'
           OR tenant_id = current_setting('app.tenant_id', true));

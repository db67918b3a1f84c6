-- 0003_llm_usage, PostgreSQL part: tenant isolation.
ALTER TABLE llm_usage ENABLE ROW LEVEL SECURITY;
ALTER TABLE llm_usage FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON llm_usage
    USING (current_setting('app.platform', true) = 'on'
           OR tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (current_setting('app.platform', true) = 'on'
           OR tenant_id = current_setting('app.tenant_id', true));

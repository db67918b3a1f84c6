-- 0009_memory_sync, PostgreSQL part: tenant isolation.

ALTER TABLE agent_memory_seq ENABLE ROW LEVEL SECURITY;
ALTER TABLE agent_memory_seq FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON agent_memory_seq
    USING (current_setting('app.platform', true) = 'on'
           OR tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (current_setting('app.platform', true) = 'on'
           OR tenant_id = current_setting('app.tenant_id', true));

ALTER TABLE agent_memory_tombstones ENABLE ROW LEVEL SECURITY;
ALTER TABLE agent_memory_tombstones FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON agent_memory_tombstones
    USING (current_setting('app.platform', true) = 'on'
           OR tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (current_setting('app.platform', true) = 'on'
           OR tenant_id = current_setting('app.tenant_id', true));

-- 0002_llm_catalog, PostgreSQL part: row-level security on the catalog.
--
-- Platform rows (tenant_id NULL) are the shared catalog: every tenant reads
-- them, only the platform scope writes them.  A tenant's rows (its private
-- providers and their models) are read and written by that tenant or the
-- platform scope.  Policies of the same command are OR-ed, so:
--   SELECT                 platform scope, own rows, or tenant_id NULL
--   INSERT/UPDATE/DELETE   platform scope, or own rows (WITH CHECK: a tenant
--                          can only write rows carrying its own tenant_id)
-- As in 0001, FORCE makes the policies apply to the owner the server
-- connects as.

ALTER TABLE llm_providers ENABLE ROW LEVEL SECURITY;
ALTER TABLE llm_providers FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON llm_providers
    USING (current_setting('app.platform', true) = 'on'
           OR tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (current_setting('app.platform', true) = 'on'
           OR tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY shared_read ON llm_providers FOR SELECT
    USING (tenant_id IS NULL);

ALTER TABLE llm_models ENABLE ROW LEVEL SECURITY;
ALTER TABLE llm_models FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON llm_models
    USING (current_setting('app.platform', true) = 'on'
           OR tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (current_setting('app.platform', true) = 'on'
           OR tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY shared_read ON llm_models FOR SELECT
    USING (tenant_id IS NULL);

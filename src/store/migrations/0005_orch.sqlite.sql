-- 0005_orch, SQLite part: an agent version is immutable once
-- written; only its state may move (draft → validated).  A version row is
-- removed only with its agent (foreign key cascade).
CREATE TRIGGER agent_versions_immutable BEFORE UPDATE OF tenant_id, agent_id, version, spec,
    created_at ON agent_versions
BEGIN
    SELECT RAISE(ABORT, 'agent versions are immutable: only state may change');
END;

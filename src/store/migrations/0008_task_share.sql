-- 0008_task_share: each tenant's share of the task runners (src/orch/runner.c),
-- and an index for the agents' running status.
-- max_concurrent_tasks: tasks of the tenant running at once; 0 uses the
-- platform's --task-tenant-quota, which is also the ceiling.  task_weight:
-- the tenant's weight in the fair scheduler (stride 1/weight), 1..100.
ALTER TABLE tenants ADD COLUMN max_concurrent_tasks INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tenants ADD COLUMN task_weight INTEGER NOT NULL DEFAULT 1;

-- The runner counts an agent's unfinished tasks when one starts or ends
-- (deployed ⇄ running); finished tasks, the bulk, stay out of this index.
CREATE INDEX agent_tasks_agent_open ON agent_tasks (tenant_id, assigned_agent_id)
    WHERE completed_at IS NULL;

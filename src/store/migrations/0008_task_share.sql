-- 0008_task_share: each tenant's share of the task runners (src/orch/runner.c),
-- and an index for the agents' running status.
-- max_concurrent_tasks: tasks of the tenant running at once; 0 uses the
-- platform's --task-tenant-quota, which is also the ceiling.  task_weight:
-- the tenant's weight in the fair scheduler (stride 1/weight), 1..100.
ALTER TABLE tenants ADD COLUMN max_concurrent_tasks INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tenants ADD COLUMN task_weight INTEGER NOT NULL DEFAULT 1;

-- An agent's tasks in flight (started, not finished): looked up when one
-- ends, to move the agent from running back to deployed.  Queued tasks not
-- yet started and finished ones, the bulk, stay out of this index; the
-- query repeats its WHERE so both backends use it.
CREATE INDEX agent_tasks_in_flight ON agent_tasks (tenant_id, assigned_agent_id)
    WHERE completed_at IS NULL AND (status <> 'queued' OR started_at IS NOT NULL);

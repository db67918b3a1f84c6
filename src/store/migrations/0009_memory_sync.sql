-- 0009_memory_sync: change sequences of agent memory, so every node's
-- index sees what another node remembered, forgot or updated
-- (src/memory/sync.c, docs/memory.md "The index").
--
-- Every transaction that writes an agent's memories takes the agent's next
-- sequence from agent_memory_seq (the row stays locked until the commit,
-- so one agent's writers commit in sequence order) and stamps the rows it
-- writes with it, or records a tombstone for each row it deletes: the id
-- and the sequence only, never the content.  A node compares the counter
-- with the sequence its partition reflects and applies only what changed.
-- Tombstones older than a few days are pruned; pruned_seq is the largest
-- sequence pruned, and a partition behind it is read again from the rows.
ALTER TABLE agent_memories ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;
CREATE INDEX agent_memories_changes ON agent_memories (tenant_id, agent_id, change_seq);

CREATE TABLE agent_memory_seq (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    agent_id   TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    seq        BIGINT NOT NULL DEFAULT 0,
    pruned_seq BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, agent_id)
);

CREATE TABLE agent_memory_tombstones (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    agent_id   TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    memory_id  TEXT NOT NULL,
    change_seq BIGINT NOT NULL,
    deleted_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, agent_id, change_seq, memory_id)
);
CREATE INDEX agent_memory_tombstones_age ON agent_memory_tombstones (deleted_at);

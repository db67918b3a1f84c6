-- 0005_orch: agents and their immutable versions, groups (teams), typed
-- relationships, durable tasks with their persisted steps, messages,
-- skills and the tenant event log (src/orch/, src/events/).
-- JSON columns hold JSON text; times are RFC 3339 UTC text like the rest.

-- An agent: its identity and lifecycle.  The fields of the agent's
-- latest version are copied here for listing; every version's full
-- specification is in agent_versions and never changes once written.
CREATE TABLE agents (
    id                   TEXT PRIMARY KEY,
    tenant_id            TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name                 TEXT NOT NULL,
    description          TEXT NOT NULL DEFAULT '',
    role                 TEXT NOT NULL,
    capabilities         TEXT NOT NULL DEFAULT '[]',
    personality          TEXT NOT NULL DEFAULT '{}',
    llm_config_id        TEXT,
    memory_config        TEXT NOT NULL DEFAULT '{}',
    autonomy_level       TEXT NOT NULL DEFAULT 'full'
                         CHECK (autonomy_level IN ('full', 'supervised', 'approval_required')),
    max_delegation_depth INTEGER NOT NULL DEFAULT 2
                         CHECK (max_delegation_depth BETWEEN 0 AND 10),
    tools                TEXT NOT NULL DEFAULT '[]',
    status               TEXT NOT NULL DEFAULT 'draft'
                         CHECK (status IN ('draft', 'validated', 'deployed', 'running',
                                           'paused', 'retired')),
    version              INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),  -- latest version
    deployed_version     INTEGER,                     -- the version tasks run
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL,
    UNIQUE (tenant_id, name)
);
CREATE INDEX agents_tenant_status ON agents (tenant_id, status);

CREATE TABLE agent_versions (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    agent_id   TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    version    INTEGER NOT NULL,
    spec       TEXT NOT NULL,               -- every configurable field, JSON
    state      TEXT NOT NULL DEFAULT 'draft' CHECK (state IN ('draft', 'validated')),
    created_at TEXT NOT NULL,
    PRIMARY KEY (agent_id, version)
);

-- A team: goal, strategy, shared context and escalation rules.
CREATE TABLE agent_groups (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    description      TEXT NOT NULL DEFAULT '',
    goal             TEXT NOT NULL DEFAULT '',
    strategy         TEXT NOT NULL DEFAULT '{}',
    shared_context   TEXT NOT NULL DEFAULT '{}',
    escalation_rules TEXT NOT NULL DEFAULT '{}',
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    UNIQUE (tenant_id, name)
);

-- Members of a team.
CREATE TABLE agent_group_members (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    group_id   TEXT NOT NULL REFERENCES agent_groups (id) ON DELETE CASCADE,
    agent_id   TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    PRIMARY KEY (group_id, agent_id)
);
CREATE INDEX agent_group_members_agent ON agent_group_members (agent_id);

-- supervises | delegates_to | collaborates_with | reports_to | consults
CREATE TABLE agent_relationships (
    id                  TEXT PRIMARY KEY,
    tenant_id           TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    group_id            TEXT REFERENCES agent_groups (id) ON DELETE CASCADE,
    from_agent_id       TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    to_agent_id         TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    relationship_type   TEXT NOT NULL
                        CHECK (relationship_type IN ('supervises', 'delegates_to',
                               'collaborates_with', 'reports_to', 'consults')),
    trust_level         DOUBLE PRECISION NOT NULL DEFAULT 0.5
                        CHECK (trust_level >= 0 AND trust_level <= 1),
    communication_style TEXT NOT NULL DEFAULT 'sync'
                        CHECK (communication_style IN ('sync', 'async', 'broadcast')),
    handoff_rules       TEXT NOT NULL DEFAULT '{}',
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    CHECK (from_agent_id <> to_agent_id),
    UNIQUE (from_agent_id, to_agent_id, relationship_type)
);
CREATE INDEX agent_relationships_from ON agent_relationships (tenant_id, from_agent_id);
CREATE INDEX agent_relationships_to ON agent_relationships (tenant_id, to_agent_id);
CREATE INDEX agent_relationships_group ON agent_relationships (tenant_id, group_id);

-- A task.  status: queued | thinking | executing | waiting_input |
-- delegated | reviewing | completed | failed | cancelled.
-- priority: critical | high | normal | low | background; priority_rank is
-- 0 (critical) … 4 (background) for the scheduler's ordering.
-- The runner owns a task while its lease is valid (lease_owner,
-- lease_expires_at, renewed by heartbeats); next_run_at delays a retry.
CREATE TABLE agent_tasks (
    id                  TEXT PRIMARY KEY,
    tenant_id           TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    group_id            TEXT REFERENCES agent_groups (id) ON DELETE SET NULL,
    assigned_agent_id   TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    agent_version       INTEGER NOT NULL,
    created_by_agent_id TEXT REFERENCES agents (id) ON DELETE SET NULL,
    created_by          TEXT,                 -- user or API key id for human requests
    human_requested     INTEGER NOT NULL DEFAULT 0,
    status              TEXT NOT NULL DEFAULT 'queued',
    priority            TEXT NOT NULL DEFAULT 'normal',
    priority_rank       INTEGER NOT NULL DEFAULT 2,
    task_type           TEXT NOT NULL DEFAULT 'general',
    objective           TEXT NOT NULL,
    context             TEXT NOT NULL DEFAULT '{}',
    reasoning           TEXT NOT NULL DEFAULT '[]',
    output              TEXT,
    confidence          DOUBLE PRECISION,
    parent_task_id      TEXT REFERENCES agent_tasks (id) ON DELETE CASCADE,
    root_task_id        TEXT,
    depth               INTEGER NOT NULL DEFAULT 0,
    requires_approval   INTEGER NOT NULL DEFAULT 0,
    approval_state      TEXT,                 -- NULL | pending | approved | rejected
    approval_comment    TEXT,
    tokens_used         BIGINT NOT NULL DEFAULT 0,   -- this task's own model calls
    cost                DOUBLE PRECISION NOT NULL DEFAULT 0,
    tokens_total        BIGINT NOT NULL DEFAULT 0,   -- the task and its subtree
    cost_total          DOUBLE PRECISION NOT NULL DEFAULT 0,
    error               TEXT,                 -- JSON {code, detail} when failed/cancelled
    cancel_requested    INTEGER NOT NULL DEFAULT 0,
    steps               INTEGER NOT NULL DEFAULT 0,  -- steps written so far
    max_steps           INTEGER NOT NULL DEFAULT 32,
    max_tokens          BIGINT NOT NULL DEFAULT 200000,
    deadline_at         TEXT,                 -- wall-clock limit
    attempts            INTEGER NOT NULL DEFAULT 0,  -- transient-failure retries
    next_run_at         TEXT,
    lease_owner         TEXT,
    lease_expires_at    TEXT,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    started_at          TEXT,
    completed_at        TEXT
);
CREATE INDEX agent_tasks_runnable ON agent_tasks (status, priority_rank, created_at);
CREATE INDEX agent_tasks_board ON agent_tasks (tenant_id, status, priority_rank, created_at);
CREATE INDEX agent_tasks_agent ON agent_tasks (tenant_id, assigned_agent_id, created_at);
CREATE INDEX agent_tasks_parent ON agent_tasks (parent_task_id);
CREATE INDEX agent_tasks_group ON agent_tasks (tenant_id, group_id, created_at);

-- The persisted state machine: one row per step, written (state
-- 'started') before its effect and completed (state 'done', with its
-- result) before the next step.  kind: context | model_call | tool_call |
-- tool_result | status | approval | note.  A resumed task replays 'done'
-- steps from here and redoes only a 'started' one.
CREATE TABLE agent_task_steps (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    task_id      TEXT NOT NULL REFERENCES agent_tasks (id) ON DELETE CASCADE,
    seq          INTEGER NOT NULL,
    kind         TEXT NOT NULL,
    name         TEXT,                 -- tool name, model id …
    state        TEXT NOT NULL DEFAULT 'started',
    input        TEXT,
    result       TEXT,
    tokens       BIGINT NOT NULL DEFAULT 0,
    cost         DOUBLE PRECISION NOT NULL DEFAULT 0,
    created_at   TEXT NOT NULL,
    completed_at TEXT,
    PRIMARY KEY (task_id, seq)
);

-- request | response | handoff | escalation | update | question |
-- approval_request; to_agent_id NULL is a broadcast to the group.
CREATE TABLE agent_messages (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    group_id          TEXT REFERENCES agent_groups (id) ON DELETE SET NULL,
    task_id           TEXT REFERENCES agent_tasks (id) ON DELETE CASCADE,
    from_agent_id     TEXT REFERENCES agents (id) ON DELETE SET NULL,
    to_agent_id       TEXT REFERENCES agents (id) ON DELETE SET NULL,
    message_type      TEXT NOT NULL,
    content           TEXT NOT NULL DEFAULT '{}',
    reasoning         TEXT,
    requires_response INTEGER NOT NULL DEFAULT 0,
    response_deadline TEXT,
    created_at        TEXT NOT NULL
);
CREATE INDEX agent_messages_task ON agent_messages (task_id, created_at);
CREATE INDEX agent_messages_tenant ON agent_messages (tenant_id, created_at);
CREATE INDEX agent_messages_to ON agent_messages (tenant_id, to_agent_id, created_at);

-- learned_from: training | observation | practice | feedback
CREATE TABLE agent_skills (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    agent_id     TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    skill_name   TEXT NOT NULL,
    proficiency  DOUBLE PRECISION NOT NULL DEFAULT 0.5
                 CHECK (proficiency >= 0 AND proficiency <= 1),
    times_used   INTEGER NOT NULL DEFAULT 0 CHECK (times_used >= 0),
    success_rate DOUBLE PRECISION NOT NULL DEFAULT 0
                 CHECK (success_rate >= 0 AND success_rate <= 1),
    learned_from TEXT NOT NULL DEFAULT 'training'
                 CHECK (learned_from IN ('training', 'observation', 'practice', 'feedback')),
    examples     TEXT NOT NULL DEFAULT '[]',
    last_used_at TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    UNIQUE (agent_id, skill_name)
);

-- The tenant's event log: every task status change, message and tool
-- call.  seq is per tenant, dense and increasing (the SSE event id);
-- tenant_event_seq holds the next one.
CREATE TABLE tenant_event_seq (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    next_seq  BIGINT NOT NULL
);
CREATE TABLE events (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    seq        BIGINT NOT NULL,
    type       TEXT NOT NULL,          -- task.status, task.step, message.created …
    task_id    TEXT,
    agent_id   TEXT,
    group_id   TEXT,
    data       TEXT NOT NULL,          -- JSON
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);
CREATE INDEX events_task ON events (task_id, seq);

-- 0006_memory: agents' memories (semantic tier) and the tenant's
-- knowledge graph with temporal facts (src/memory/, docs/memory.md).
-- Times are RFC 3339 UTC text (they sort as text); JSON columns hold JSON
-- text; embeddings are base64 of little-endian float32 (the same text on
-- both backends).

-- One memory of one agent.  status: active | superseded (a newer fact
-- contradicted it: superseded_by names the newer one).  A shared memory
-- is a copy in the receiving agent's store with its provenance.
CREATE TABLE agent_memories (
    id                    TEXT PRIMARY KEY,
    tenant_id             TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    agent_id              TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    -- fact | experience | skill | preference | relationship | procedure
    memory_type           TEXT NOT NULL,
    content               TEXT NOT NULL,
    subject               TEXT,            -- normalised subject of a fact, or NULL
    importance            DOUBLE PRECISION NOT NULL DEFAULT 0.5,
    -- conversation | training | observation | inference | user_feedback
    source                TEXT NOT NULL DEFAULT 'observation',
    source_task_id        TEXT,
    embedder              TEXT NOT NULL,   -- "builtin/hash-embed-384" or a provider model id
    dim                   INTEGER NOT NULL,
    embedding             TEXT NOT NULL,
    access_count          BIGINT NOT NULL DEFAULT 0,
    last_accessed_at      TEXT,
    shared_from_memory_id TEXT,
    shared_from_agent_id  TEXT,
    status                TEXT NOT NULL DEFAULT 'active',
    superseded_by         TEXT,
    expires_at            TEXT,
    created_at            TEXT NOT NULL,
    updated_at            TEXT NOT NULL
);
CREATE INDEX agent_memories_agent ON agent_memories (tenant_id, agent_id, id);
CREATE INDEX agent_memories_subject ON agent_memories (tenant_id, agent_id, subject);

-- An entity of the tenant's knowledge graph, unique by type and
-- normalised name.  attributes is the current value of every attribute
-- (the open facts); knowledge_facts keeps their history.
CREATE TABLE knowledge_entities (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    entity_type     TEXT NOT NULL,
    name            TEXT NOT NULL,
    norm_name       TEXT NOT NULL,
    attributes      TEXT NOT NULL DEFAULT '{}',
    confidence      DOUBLE PRECISION NOT NULL DEFAULT 0.5,
    evidence_count  INTEGER NOT NULL DEFAULT 1,
    source_agent_id TEXT REFERENCES agents (id) ON DELETE SET NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    UNIQUE (tenant_id, entity_type, norm_name)
);
CREATE INDEX knowledge_entities_name ON knowledge_entities (tenant_id, norm_name);

-- One value of one attribute over a time span [valid_from, valid_to);
-- valid_to NULL is the current value.  A contradicting value closes the
-- open fact instead of deleting it.
CREATE TABLE knowledge_facts (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    entity_id       TEXT NOT NULL REFERENCES knowledge_entities (id) ON DELETE CASCADE,
    attribute       TEXT NOT NULL,
    value           TEXT NOT NULL,   -- JSON
    confidence      DOUBLE PRECISION NOT NULL DEFAULT 0.5,
    source_agent_id TEXT REFERENCES agents (id) ON DELETE SET NULL,
    valid_from      TEXT NOT NULL,
    valid_to        TEXT,
    created_at      TEXT NOT NULL
);
CREATE INDEX knowledge_facts_entity ON knowledge_facts (entity_id, attribute, valid_from);

-- A typed edge over a time span, like facts.  evidence is a JSON array of
-- strings.
CREATE TABLE knowledge_relations (
    id                     TEXT PRIMARY KEY,
    tenant_id              TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    from_entity_id         TEXT NOT NULL REFERENCES knowledge_entities (id) ON DELETE CASCADE,
    to_entity_id           TEXT NOT NULL REFERENCES knowledge_entities (id) ON DELETE CASCADE,
    relation_type          TEXT NOT NULL,
    strength               DOUBLE PRECISION NOT NULL DEFAULT 0.5,
    evidence               TEXT NOT NULL DEFAULT '[]',
    discovered_by_agent_id TEXT REFERENCES agents (id) ON DELETE SET NULL,
    valid_from             TEXT NOT NULL,
    valid_to               TEXT,
    created_at             TEXT NOT NULL,
    updated_at             TEXT NOT NULL
);
CREATE INDEX knowledge_relations_from ON knowledge_relations (tenant_id, from_entity_id, relation_type);
CREATE INDEX knowledge_relations_to ON knowledge_relations (tenant_id, to_entity_id);

-- 0001_init: tenants, users, API keys, the audit log, idempotency records.
-- Runs unchanged on SQLite and PostgreSQL.  Timestamps are RFC 3339 UTC text
-- with milliseconds; ids are UUIDv7 text; JSON is text.

CREATE TABLE tenants (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL,
    slug                TEXT NOT NULL UNIQUE,
    plan                TEXT NOT NULL DEFAULT 'free',
    status              TEXT NOT NULL DEFAULT 'active',
    max_agents          INTEGER NOT NULL DEFAULT 10,
    max_agent_groups    INTEGER NOT NULL DEFAULT 5,
    monthly_token_limit BIGINT NOT NULL DEFAULT 1000000,
    storage_limit_gb    INTEGER NOT NULL DEFAULT 10,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    suspended_at        TEXT,
    deleted_at          TEXT
);

-- The platform itself is tenant 0: platform keys and platform-level audit
-- entries belong to it.  It is never listed, suspended or deleted.
INSERT INTO tenants (id, name, slug, plan, status, created_at, updated_at)
VALUES ('00000000-0000-0000-0000-000000000000', 'Platform', 'platform', 'platform', 'active',
        '1970-01-01T00:00:00.000Z', '1970-01-01T00:00:00.000Z');

CREATE TABLE users (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email        TEXT NOT NULL,
    display_name TEXT NOT NULL,
    role         TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'active',
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    UNIQUE (tenant_id, email)
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id      TEXT REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL,
    prefix       TEXT NOT NULL UNIQUE,
    key_hash     TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    created_by   TEXT,
    expires_at   TEXT,
    revoked_at   TEXT,
    last_used_at TEXT
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id, id);

-- Hash-chained per tenant: hash = SHA-256(prev_hash || canonical JSON of
-- the entry).  No foreign key to tenants: the log outlives a purged tenant.
CREATE TABLE audit_log (
    tenant_id     TEXT NOT NULL,
    seq           BIGINT NOT NULL,
    id            TEXT NOT NULL UNIQUE,
    time          TEXT NOT NULL,
    actor_type    TEXT NOT NULL,
    actor_id      TEXT,
    actor_role    TEXT,
    action        TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id   TEXT,
    outcome       TEXT NOT NULL,
    request_id    TEXT,
    client_addr   TEXT,
    changes       TEXT,
    prev_hash     TEXT NOT NULL,
    hash          TEXT NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);
CREATE INDEX audit_log_time ON audit_log (tenant_id, time);

CREATE TABLE idempotency_keys (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    actor_id     TEXT NOT NULL,
    idem_key     TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       INTEGER,
    response     TEXT,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (tenant_id, actor_id, idem_key)
);

-- 0007_mcp: MCP sessions of the platform's own MCP endpoint, and the
-- external MCP servers tenants register for their agents (src/mcp/).
-- JSON columns hold JSON text; times are RFC 3339 UTC text like the rest.

-- A session of /mcp (Streamable HTTP), created by initialize.  It belongs
-- to the API key that opened it: another key presenting its id is told it
-- does not exist.  Sessions live in the store, so any node of a cluster
-- serves any session.  expires_at moves forward while the session is used.
CREATE TABLE mcp_sessions (
    id               TEXT PRIMARY KEY,       -- 32 hex digits, random
    tenant_id        TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    key_id           TEXT NOT NULL,
    protocol_version TEXT NOT NULL,
    client_name      TEXT,
    client_version   TEXT,
    initialized      INTEGER NOT NULL DEFAULT 0, -- notifications/initialized seen
    created_at       TEXT NOT NULL,
    last_seen_at     TEXT NOT NULL,
    expires_at       TEXT NOT NULL
);
CREATE INDEX mcp_sessions_tenant ON mcp_sessions (tenant_id, expires_at);

-- An external MCP server: Streamable HTTP (url, optional sealed
-- Authorization header value) or stdio (command: the name of an entry of
-- the platform administrator's allowlist, never a command line).
-- tools is the cached tools/list answer (JSON array), refreshed by
-- :discover.
CREATE TABLE mcp_servers (
    id                      TEXT PRIMARY KEY,
    tenant_id               TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name                    TEXT NOT NULL,
    transport               TEXT NOT NULL,   -- http | stdio
    url                     TEXT,
    command                 TEXT,
    auth_ciphertext         TEXT,            -- src/core/secret.h, hex text
    auth_nonce              TEXT,
    auth_data_key_wrapped   TEXT,
    tools                   TEXT,            -- JSON array, or NULL before discovery
    server_info             TEXT,            -- serverInfo of the last initialize, JSON
    protocol_version        TEXT,
    discovered_at           TEXT,
    created_at              TEXT NOT NULL,
    updated_at              TEXT NOT NULL,
    UNIQUE (tenant_id, name)
);

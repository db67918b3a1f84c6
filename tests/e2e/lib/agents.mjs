// Agents for tests of the features that hang off them (memory, …).
//
// makeAgent() creates an agent through the agents API when the server has
// one, and otherwise inserts the row straight into the store (SQLite through
// the sqlite3 shell, PostgreSQL as the superuser), so memory tests do not
// wait for the agents API.  It needs a server this process started.
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import assert from 'node:assert/strict';

function sql(dbUrl, statements) {
  const opts = { encoding: 'utf8', input: statements };
  if (dbUrl.startsWith('sqlite:')) return spawnSync('sqlite3', ['-bail', '-cmd', '.timeout 10000', dbUrl.slice(7)], opts);
  const u = new URL(process.env.AP_TEST_PG_ADMIN_URL);
  u.pathname = new URL(dbUrl).pathname;
  return spawnSync('psql', [u.toString(), '-v', 'ON_ERROR_STOP=1', '-qAt'], opts);
}

const q = (s) => `'${String(s).replace(/'/g, "''")}'`;

export async function makeAgent(srv, tenantId, name, memoryConfig = {}) {
  const viaApi = await srv.request('POST', `/api/v1/tenants/${tenantId}/agents`, {
    body: { name, role: 'worker', memory_config: memoryConfig },
  });
  if (viaApi.status === 201) return viaApi.body.id;
  assert.ok(srv.databaseUrl, 'makeAgent needs a server started by the test');
  const id = randomUUID();
  const now = new Date().toISOString();
  const r = sql(srv.databaseUrl,
    `INSERT INTO agents (id, tenant_id, name, role, memory_config, created_at, updated_at) VALUES (${q(id)}, ${q(tenantId)}, ${q(name)}, 'worker', ${q(JSON.stringify(memoryConfig))}, ${q(now)}, ${q(now)});`);
  assert.equal(r.status, 0, `insert agent: ${r.stderr}`);
  return id;
}

// Changes an agent's memory_config (through the store, like makeAgent).
export function setMemoryConfig(srv, agentId, memoryConfig) {
  const r = sql(srv.databaseUrl,
    `UPDATE agents SET memory_config = ${q(JSON.stringify(memoryConfig))} WHERE id = ${q(agentId)};`);
  assert.equal(r.status, 0, `update agent: ${r.stderr}`);
}

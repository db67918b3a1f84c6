// Seeds agents, a group and relationships straight into the store of a
// test server (sqlite3 or psql), for task tests that must not depend on the
// agents API.  Rows follow src/store/migrations/0005_orch.sql.
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';

const q = (v) => (v === null || v === undefined ? 'NULL'
  : typeof v === 'number' ? String(v) : `'${String(v).replace(/'/g, "''")}'`);

export function sql(srv, text) {
  if (srv.db) {
    const u = new URL(process.env.AP_TEST_PG_ADMIN_URL);
    u.pathname = '/' + srv.db;
    return execFileSync('psql', [u.toString(), '-qAtc', text], { encoding: 'utf8' });
  }
  return execFileSync('sqlite3', ['-cmd', '.timeout 5000', join(srv.dataDir, 'agentprov.db'), text],
    { encoding: 'utf8' });
}

const now = () => new Date().toISOString();

export function addAgent(srv, tenantId, a) {
  const id = randomUUID();
  const t = now();
  sql(srv, `INSERT INTO agents (id, tenant_id, name, description, role, capabilities, personality,
    autonomy_level, max_delegation_depth, status, version, deployed_version, created_at, updated_at)
    VALUES (${q(id)}, ${q(tenantId)}, ${q(a.name)}, ${q(a.description || '')}, ${q(a.role)},
    ${q(JSON.stringify(a.capabilities || []))}, ${q(JSON.stringify(a.personality || {}))},
    ${q(a.autonomy || 'full')}, ${a.depth ?? 2}, ${q(a.status || 'deployed')}, 1, 1, ${q(t)}, ${q(t)})`);
  return id;
}

export function addGroup(srv, tenantId, g, members) {
  const id = randomUUID();
  const t = now();
  sql(srv, `INSERT INTO agent_groups (id, tenant_id, name, goal, strategy, shared_context,
    escalation_rules, created_at, updated_at) VALUES (${q(id)}, ${q(tenantId)}, ${q(g.name)},
    ${q(g.goal || '')}, ${q(JSON.stringify(g.strategy || {}))}, ${q(JSON.stringify(g.shared_context || {}))},
    ${q(JSON.stringify(g.escalation_rules || {}))}, ${q(t)}, ${q(t)})`);
  for (const m of members)
    sql(srv, `INSERT INTO agent_group_members (tenant_id, group_id, agent_id, created_at)
      VALUES (${q(tenantId)}, ${q(id)}, ${q(m)}, ${q(now())})`);
  return id;
}

export function relate(srv, tenantId, from, to, type, groupId = null) {
  const t = now();
  sql(srv, `INSERT INTO agent_relationships (id, tenant_id, group_id, from_agent_id, to_agent_id,
    relationship_type, created_at, updated_at) VALUES (${q(randomUUID())}, ${q(tenantId)},
    ${q(groupId)}, ${q(from)}, ${q(to)}, ${q(type)}, ${q(t)}, ${q(t)})`);
}

// A Manager supervising a Researcher and a Writer, in one group whose shared
// context holds what the researcher can answer from.
export function researchTeam(srv, tenantId, { managerDepth = 2, escalation = {}, autonomy = 'full', suffix = '' } = {}) {
  const manager = addAgent(srv, tenantId, { name: 'Manager' + suffix, role: 'manager', capabilities: ['planning', 'coordination'], depth: managerDepth, autonomy });
  const researcher = addAgent(srv, tenantId, { name: 'Researcher' + suffix, role: 'researcher', capabilities: ['research', 'market analysis'] });
  const writer = addAgent(srv, tenantId, { name: 'Writer' + suffix, role: 'writer', capabilities: ['writing', 'editing'] });
  const group = addGroup(srv, tenantId, {
    name: 'Research team ' + randomUUID().slice(0, 8),
    goal: 'Deliver market insight to the board.',
    shared_context: {
      market: 'The EV battery market grew 40% in 2024 and reached 120 billion dollars.',
      brief: 'A one-page brief states the market size, the growth and one risk.',
    },
    escalation_rules: escalation,
  }, [manager, researcher, writer]);
  relate(srv, tenantId, manager, researcher, 'supervises', group);
  relate(srv, tenantId, manager, writer, 'supervises', group);
  return { manager, researcher, writer, group };
}

export async function waitTask(srv, path, pred = (t) => ['completed', 'failed', 'cancelled'].includes(t.status), ms = 20000, key) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    const r = await srv.request('GET', path, key ? { key } : {});
    last = r;
    if (r.status === 200 && pred(r.body)) return r.body;
    await new Promise((res) => setTimeout(res, 50));
  }
  throw new Error(`task did not reach the expected state: ${last && last.text}`);
}

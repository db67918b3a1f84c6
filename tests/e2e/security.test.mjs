// Tenant isolation and authorisation, route by route.
//
// 1. The route table and the role → permission matrix are read from the
//    binary (`admin routes`, `admin permissions`), so a new route or a
//    changed matrix is covered without editing this file; a few
//    hand-written expectations guard against the matrix itself drifting.
// 2. Cross-tenant: every canonical route under /api/v1/tenants/{tenant_id}
//    is called by every role key of tenant A with tenant B's id and B's
//    real user and key ids, and a valid body: 404, nothing of B in the
//    answer (beyond the path the caller sent, echoed in `instance`), and
//    nothing in B changed.  The short aliases take the tenant from the
//    credential, so B's ids there must answer exactly as ids that do not
//    exist.
// 3. Own tenant: every route × every role of A answers 403 exactly when the
//    matrix withholds the route's permission, 2xx otherwise, never 404/500.
// 4. Every refusal (403, and 404 for another tenant's path) leaves one
//    auth.denied entry in the caller's own audit chain.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { startServer, tenantWithKeys, BIN } from './lib/server.mjs';
import { addAgent, waitTask } from './lib/team.mjs';
import { makeAgent } from './lib/agents.mjs';

const ROLES = ['tenant_admin', 'project_admin', 'operator', 'viewer', 'auditor'];
const PROBLEM = 'application/problem+json';

const ROUTES = execFileSync(BIN, ['admin', 'routes'], { encoding: 'utf8' })
  .trim().split('\n').map((l) => JSON.parse(l));
const MATRIX = parsePermissions(execFileSync(BIN, ['admin', 'permissions'], { encoding: 'utf8' }));

// `admin permissions` prints a Markdown table: | `perm` | what | yes | - | …
function parsePermissions(md) {
  const rows = md.trim().split('\n').filter((l) => l.startsWith('|'));
  const cells = (l) => l.split('|').slice(1, -1).map((s) => s.trim());
  const roles = cells(rows[0]).slice(2);
  const m = { public: Object.fromEntries(roles.map((r) => [r, true])) };
  for (const row of rows.slice(2)) {
    const c = cells(row);
    const perm = c[0].replace(/`/g, '');
    m[perm] = Object.fromEntries(roles.map((r, i) => [r, c[i + 2] === 'yes']));
  }
  return m;
}

function allows(role, perm) {
  assert.ok(MATRIX[perm], `permission ${perm} is not in the matrix`);
  assert.equal(typeof MATRIX[perm][role], 'boolean', `role ${role} is not in the matrix`);
  return MATRIX[perm][role];
}

let srv;
let A; // { id, keys, keyIds, user }
let B; // { id, name, slug, keys, keyIds, user, key }
let seq = 0;
// request ids of every refusal A's keys got; each must be in A's audit chain
const denied = [];

async function keyIds(t) {
  const l = await srv.request('GET', `/api/v1/tenants/${t.id}/api-keys?limit=500`);
  assert.equal(l.status, 200, l.text);
  return Object.fromEntries(l.body.data.map((k) => [k.name, k.id]));
}

async function mkUser(tid, email, name, role = 'operator') {
  const u = await srv.request('POST', `/api/v1/tenants/${tid}/users`, {
    body: { email, display_name: name, role },
  });
  assert.equal(u.status, 201, u.text);
  return u.body;
}

async function mkKey(tid, name, userId) {
  const k = await srv.request('POST', `/api/v1/tenants/${tid}/api-keys`, {
    body: userId ? { name, user_id: userId } : { name, role: 'viewer' },
  });
  assert.equal(k.status, 201, k.text);
  return k.body;
}

before(async () => {
  srv = await startServer();
  A = await tenantWithKeys(srv, 'Alpha Isolation');
  B = await tenantWithKeys(srv, 'Bravo Isolation');
  B.name = 'Bravo Isolation';
  B.slug = 'bravo-isolation';
  B.user = await mkUser(B.id, 'bob.bravo@bravo-iso.example', 'Bob Bravo');
  B.key = await mkKey(B.id, 'bravo-laptop-key', B.user.id);
  B.keyIds = await keyIds(B);
  const bp = await srv.request('POST', `/api/v1/tenants/${B.id}/llm/providers`, {
    body: { name: 'bravo-llm', base_url: 'http://10.20.30.40/v1', models: ['bravo-model'] },
  });
  assert.equal(bp.status, 201, bp.text);
  B.provider = bp.body;
  const bc = await srv.request('POST', `/api/v1/tenants/${B.id}/llm/configs`, {
    body: { name: 'bravo-config', primary_model: 'builtin/agentprov-mini', budget_limit_daily: 7 },
  });
  assert.equal(bc.status, 201, bc.text);
  B.config = bc.body;
  const bs = await srv.request('POST', `/api/v1/tenants/${B.id}/mcp-servers`, {
    body: { name: 'bravo-mcp', url: 'http://10.20.30.40/mcp', auth_header: 'Bearer bravo-secret' },
  });
  assert.equal(bs.status, 201, bs.text);
  B.server = bs.body;
  B.agent = await mkAgent(B.id, 'deploy', 'Bravo Secret Agent');
  B.agent2 = await mkAgent(B.id, 'create', 'Bravo Second Agent');
  B.group = await mkGroup(B.id, [B.agent.id, B.agent2.id], 'Bravo Secret Team');
  B.rel = await mkRel(B.id, B.agent.id, B.agent2.id, 'supervises');
  B.skill = await mkSkill(B.id, B.agent.id, 'bravo-secret-skill');
  // every mutating agent route gets agents and groups of its own: room for them
  const ent = await srv.request('PATCH', `/api/v1/tenants/${A.id}`, { body: { max_agents: 100000, max_agent_groups: 100000 } });
  assert.equal(ent.status, 200, ent.text);
  A.agent = await mkAgent(A.id, 'create');
  A.group = await mkGroup(A.id, [A.agent.id]);
  A.pool = [];
  for (let i = 0; i < 12; i++) A.pool.push((await mkAgent(A.id, 'create')).id);
  A.rel = await mkRel(A.id, A.pool[0], A.agent.id, 'supervises');
  A.skill = await mkSkill(A.id, A.agent.id);
  // tasks: an agent of each tenant (seeded in the store), one finished task of B
  A.taskAgent = addAgent(srv, A.id, { name: 'alpha-worker', role: 'analyst', capabilities: ['analysis'] });
  A.gate = addAgent(srv, A.id, { name: 'alpha-gated', role: 'analyst', autonomy: 'approval_required' });
  B.taskAgent = addAgent(srv, B.id, { name: 'bravo-worker', role: 'bravo analyst', capabilities: ['bravo'] });
  const bt = await srv.request('POST', `/api/v1/tenants/${B.id}/tasks`, {
    body: { assigned_agent_id: B.taskAgent, objective: 'Bravo confidential objective' },
  });
  assert.equal(bt.status, 201, bt.text);
  B.task = await waitTask(srv, `/api/v1/tenants/${B.id}/tasks/${bt.body.id}`);
  A.task = await mkTask(A.id);
  A.user = await mkUser(A.id, 'ann.alpha@alpha-iso.example', 'Ann Alpha');
  A.key = await mkKey(A.id, 'alpha-laptop-key', A.user.id);
  A.keyIds = await keyIds(A);
  // agents with a memory, a hot context and knowledge, for the memory routes
  for (const T of [A, B]) {
    T.memAgent = await makeAgent(srv, T.id, `${T === A ? 'alpha' : 'bravo'}-agent`);
    T.memAgent2 = await makeAgent(srv, T.id, `${T === A ? 'alpha' : 'bravo'}-agent-2`);
    T.memory = await mkMemory(T.id, T.memAgent, T === A ? 'alpha remembers the lake' : 'bravo-secret-memory harbour');
    T.entity = await mkEntity(T.id, T === A ? 'alpha-entity' : 'bravo-secret-entity');
    const c = await srv.request('POST', `/api/v1/tenants/${T.id}/agents/${T.memAgent}/context`, {
      body: { conversation_id: 'sec-conv', content: T === A ? 'alpha says hi' : 'bravo-secret-context' },
    });
    assert.equal(c.status, 200, c.text);
  }
});

async function mkMemory(tid, agent, content) {
  const m = await srv.request('POST', `/api/v1/tenants/${tid}/agents/${agent}/memory`, {
    body: { content, memory_type: 'fact' },
  });
  assert.equal(m.status, 201, m.text);
  return m.body;
}

async function mkEntity(tid, name) {
  const e = await srv.request('POST', `/api/v1/tenants/${tid}/knowledge/entities`, {
    body: { entity_type: 'probe', name, attributes: { note: `${name} note` } },
  });
  assert.equal(e.status, 201, e.text);
  return e.body;
}
after(async () => { await srv.stop(); });

// Everything of B that must never show in an answer to A.
function bSecrets() {
  return [B.id, B.name, B.slug, B.user.id, B.user.email, B.user.display_name, B.key.id,
    B.key.name, B.key.prefix, B.key.key, ...Object.values(B.keyIds), ...Object.values(B.keys),
    B.provider.id, B.provider.name, B.config.id, B.config.name, B.server.id, B.server.name, 'bravo-secret',
    B.agent.id, B.agent.name, B.agent2.id, B.group.id, B.group.name, B.rel.id, B.skill.id, B.skill.skill_name,
    B.taskAgent, B.task.id, 'bravo-worker', 'Bravo confidential objective', B.memAgent, B.memAgent2, B.memory.id,
    B.memory.content, B.entity.id, B.entity.name, 'bravo-secret-context']
    .filter(Boolean);
}

// A task of tid; gated: one waiting for approval (its agent's autonomy).
async function mkTask(tid, gated = false) {
  const c = await srv.request('POST', `/api/v1/tenants/${tid}/tasks`, {
    body: { assigned_agent_id: gated ? A.gate : A.taskAgent, objective: `own task ${++seq}` },
  });
  assert.equal(c.status, 201, c.text);
  return waitTask(srv, `/api/v1/tenants/${tid}/tasks/${c.body.id}`,
    (t) => (gated ? t.status === 'waiting_input' && t.approval_state === 'pending'
      : ['completed', 'failed', 'cancelled'].includes(t.status)));
}

async function mkConfig(tid) {
  const c = await srv.request('POST', `/api/v1/tenants/${tid}/llm/configs`, { body: { name: `own-cfg-${++seq}` } });
  assert.equal(c.status, 201, c.text);
  return c.body;
}

async function mkProvider(tid) {
  const p = await srv.request('POST', `/api/v1/tenants/${tid}/llm/providers`, {
    body: { name: `own-${++seq}`, base_url: 'http://10.0.0.1/v1' },
  });
  assert.equal(p.status, 201, p.text);
  return p.body;
}

// An MCP server of the tenant that answers: the platform's own /mcp, as the
// tenant's operator, with its tools discovered.
async function mkServer(tid, key) {
  const c = await srv.request('POST', `/api/v1/tenants/${tid}/mcp-servers`, {
    body: { name: `own-mcp-${++seq}`, url: `${srv.url}/mcp`, auth_header: `Bearer ${key}` },
  });
  assert.equal(c.status, 201, c.text);
  const d = await srv.request('POST', `/api/v1/tenants/${tid}/mcp-servers/${c.body.id}:discover`);
  assert.equal(d.status, 200, d.text);
  return d.body;
}

// An agent of tenant tid in the state the route `action` starts from:
// draft (created), validated (for deploy), deployed (pause), paused (resume).
async function mkAgent(tid, action, name) {
  const a = await srv.request('POST', `/api/v1/tenants/${tid}/agents`, {
    body: { name: name || `own-agent-${++seq}`, role: 'Researcher', capabilities: ['research'] },
  });
  assert.equal(a.status, 201, a.text);
  const steps = { 'agent.deploy': ['validate'], 'agent.pause': ['validate', 'deploy'],
    'agent.resume': ['validate', 'deploy', 'pause'], deploy: ['validate', 'deploy'] }[action] || [];
  let body = a.body;
  for (const step of steps) {
    const r = await srv.request('POST', `/api/v1/tenants/${tid}/agents/${a.body.id}:${step}`);
    assert.equal(r.status, 200, r.text);
    body = r.body;
  }
  return body;
}

async function mkGroup(tid, members, name) {
  const g = await srv.request('POST', `/api/v1/tenants/${tid}/agent-groups`, {
    body: { name: name || `own-group-${++seq}`, goal: 'probe', members },
  });
  assert.equal(g.status, 201, g.text);
  return g.body;
}

async function mkRel(tid, from, to, type = 'collaborates_with') {
  const r = await srv.request('POST', `/api/v1/tenants/${tid}/agent-relationships`, {
    body: { from_agent_id: from, to_agent_id: to, relationship_type: type },
  });
  assert.equal(r.status, 201, r.text);
  return r.body;
}

async function mkSkill(tid, agentId, name) {
  const r = await srv.request('POST', `/api/v1/tenants/${tid}/agents/${agentId}/skills`, {
    body: { skill_name: name || `own-skill-${++seq}`, proficiency: 0.4 },
  });
  assert.equal(r.status, 201, r.text);
  return r.body;
}

function fill(path, ids) {
  return path.replace(/\{(\w+)\}/g, (_, name) => {
    assert.ok(ids[name], `no id for {${name}} in ${path}`);
    return ids[name];
  });
}

// Headers a route needs besides the credential: DELETE /mcp names a session
// of the calling key (opened here when the key may open one).
async function validHeaders(route, key) {
  if (route.action !== 'mcp.session.delete') return {};
  const init = await srv.request('POST', '/mcp', { key, body: validBody({ action: 'mcp.call' }, {}) });
  return { 'mcp-session-id': init.headers.get('mcp-session-id') || '0'.repeat(32) };
}

// The next unused pair of A's pool of agents.
let pairs = 0;
function poolPair() {
  let k = pairs++, i = 0;
  while (i < A.pool.length - 1 && k >= A.pool.length - 1 - i) { k -= A.pool.length - 1 - i; i++; }
  assert.ok(i < A.pool.length - 1, 'A.pool is too small for the relationship probes');
  return { from_agent_id: A.pool[i], to_agent_id: A.pool[i + 1 + k] };
}

// A valid body for a mutating route (a stronger probe than {}).
function validBody(route, ctx) {
  const n = ++seq;
  switch (route.action) {
    case 'tenant.create': return { name: `Sec Probe ${n}` };
    case 'tenant.update': return { name: `Renamed ${n}`, plan: 'enterprise', max_agents: 100000 };
    case 'user.create': return { email: `probe${n}@alpha-iso.example`, role: 'viewer' };
    case 'user.update': return { display_name: `Changed ${n}`, status: 'disabled' };
    case 'api_key.create': return ctx.userId ? { name: `probe ${n}`, user_id: ctx.userId }
      : { name: `probe ${n}`, role: 'viewer' };
    case 'llm.chat': return { model: 'builtin/agentprov-mini', messages: [{ role: 'user', content: `probe ${n}` }] };
    case 'llm.messages': return { model: 'builtin/agentprov-mini', max_tokens: 20, messages: [{ role: 'user', content: `probe ${n}` }] };
    case 'llm.embeddings': return { model: 'builtin/hash-embed-384', input: `probe ${n}` };
    case 'llm.config.create': return { name: `probe-cfg-${n}`, temperature: 0.5 };
    case 'llm.config.update': return { temperature: 1.5 };
    case 'mcp.call':
      return { jsonrpc: '2.0', id: n, method: 'initialize',
        params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'probe', version: '1' } } };
    case 'mcp.server.create': return { name: `probe-mcp-${n}`, url: 'http://10.0.0.1/mcp' };
    case 'mcp.server.call': return { arguments: {}, timeout_ms: 20000 };
    case 'task.create': return { assigned_agent_id: A.taskAgent, objective: `probe ${n}` };
    case 'task.cancel': return { reason: `probe ${n}` };
    case 'task.approve': case 'task.reject': return { comment: `probe ${n}` };
    case 'message.create': return { message_type: 'update', content: { text: `probe ${n}` } };
    case 'agent.create': return { name: `probe-agent-${n}`, role: 'Analyst', capabilities: ['numbers'] };
    case 'agent.update': return { description: `probe ${n}`, tools: ['recall'] };
    case 'memory.remember': return { agent_id: A.memAgent, content: `probe memory ${n}`, memory_type: 'fact' };
    case 'memory.recall': return { agent_id: A.memAgent, query: 'probe memory' };
    case 'memory.consolidate': return { agent_id: A.memAgent, dry_run: n % 2 === 0 };
    case 'memory.share': return { agent_id: A.memAgent, to_agent_id: A.memAgent2, memory_ids: [A.memory.id] };
    case 'memory.context.push': return { conversation_id: 'sec-conv', content: `probe ${n}` };
    case 'knowledge.learn': return { entity_type: 'probe', name: `probe ${n}`, attributes: { n } };
    case 'knowledge.relate':
      return { from: { entity_type: 'probe', name: `from ${n}` }, to: { entity_type: 'probe', name: `to ${n}` }, relation_type: 'related_to' };
    case 'agent.skill.create': return { skill_name: `probe-skill-${n}`, learned_from: 'observation' };
    case 'agent.skill.update': return { proficiency: 0.8 };
    case 'agent_group.create': return { name: `probe-group-${n}`, goal: 'probe', escalation_rules: { min_confidence: 0.6, on_failure: true } };
    case 'agent_group.update': return { goal: `probe ${n}` };
    case 'agent.relationship.create': // pairs of A's pool, each used once
      return A.pool ? { ...poolPair(), relationship_type: 'collaborates_with' } : {};
    case 'agent.relationship.update': return { trust_level: 0.9, communication_style: 'async' };
    case 'llm.private_provider.create':
      return { name: `probe-${n}`, base_url: 'http://10.0.0.1/v1', models: ['probe-model'] };
    default: return route.method === 'POST' || route.method === 'PATCH' ? {} : undefined;
  }
}

function assertProblem(r, status, what) {
  assert.equal(r.status, status, `${what}: ${r.text}`);
  assert.equal(r.headers.get('content-type'), PROBLEM, what);
  assert.ok(r.body && r.body.type && r.body.title && r.body.detail, `${what}: ${r.text}`);
  assert.equal(r.body.status, status, what);
  assert.equal(r.body.request_id, r.headers.get('x-request-id'), what);
}

// The answer carries nothing of B except the path A sent, in `instance`
// (and, where given, `echoed`: ids the request itself carried).
function assertNoLeak(r, sentPath, what, echoed = []) {
  const { instance, ...rest } = r.body || {};
  if (instance !== undefined) assert.equal(instance, sentPath.toLowerCase(), what);
  let text = JSON.stringify(rest) + [...r.headers].map(([k, v]) => `${k}: ${v}`).join('\n');
  for (const e of echoed) text = text.split(e).join('<echoed>');
  for (const s of bSecrets())
    assert.ok(!text.toLowerCase().includes(String(s).toLowerCase()), `${what} leaks "${s}": ${r.text}`);
}

async function snapshotB() {
  const get = async (path, key) => {
    const r = await srv.request('GET', path, { key });
    assert.equal(r.status, 200, `${path}: ${r.text}`);
    return r.body;
  };
  const keys = (await get(`/api/v1/tenants/${B.id}/api-keys?limit=500`, B.keys.tenant_admin)).data;
  // the keys this snapshot itself uses may have last_used_at bumped
  const readers = new Set([B.keyIds.tenant_admin, B.keyIds.auditor]);
  return {
    tenant: await get(`/api/v1/tenants/${B.id}`, undefined),
    users: (await get(`/api/v1/tenants/${B.id}/users?limit=500`, B.keys.tenant_admin)).data,
    keys: keys.map((k) => (readers.has(k.id) ? { ...k, last_used_at: 'ignored' } : k)),
    audit: (await get(`/api/v1/tenants/${B.id}/audit?limit=500`, B.keys.auditor)).data,
    providers: (await get(`/api/v1/tenants/${B.id}/llm/providers?limit=500`, B.keys.tenant_admin)).data,
    configs: (await get(`/api/v1/tenants/${B.id}/llm/configs?limit=500`, B.keys.tenant_admin)).data,
    mcpServers: (await get(`/api/v1/tenants/${B.id}/mcp-servers?limit=500`, B.keys.tenant_admin)).data,
    tasks: (await get(`/api/v1/tenants/${B.id}/tasks?limit=500`, B.keys.tenant_admin)).data,
    messages: (await get(`/api/v1/tenants/${B.id}/messages?limit=500`, B.keys.tenant_admin)).data,
    agents: (await get(`/api/v1/tenants/${B.id}/agents?limit=500`, B.keys.tenant_admin)).data,
    versions: (await get(`/api/v1/tenants/${B.id}/agents/${B.agent.id}/versions`, B.keys.tenant_admin)).data,
    memories: (await get(`/api/v1/tenants/${B.id}/agents/${B.memAgent}/memory?limit=500`, B.keys.tenant_admin)).data
      .map((m) => ({ ...m, access_count: 'ignored', last_accessed_at: 'ignored' })),
    graph: await get(`/api/v1/tenants/${B.id}/knowledge/graph?as_of=2999-01-01T00:00:00Z`, B.keys.tenant_admin),
    groups: (await get(`/api/v1/tenants/${B.id}/agent-groups?limit=500`, B.keys.tenant_admin)).data,
    relationships: (await get(`/api/v1/tenants/${B.id}/agent-relationships?limit=500`, B.keys.tenant_admin)).data,
    skills: (await get(`/api/v1/tenants/${B.id}/agents/${B.agent.id}/skills`, B.keys.tenant_admin)).data,
  };
}

test('the matrix the binary prints covers every role and every route permission', () => {
  for (const role of [...ROLES, 'platform_admin'])
    for (const perm of Object.keys(MATRIX)) assert.equal(typeof MATRIX[perm][role], 'boolean');
  for (const r of ROUTES) assert.ok(MATRIX[r.permission], `${r.method} ${r.path}: ${r.permission}`);
  assert.ok(ROUTES.filter((r) => r.path.includes('{tenant_id}')).length >= 15);
  // the matrix agrees with what the design promises
  assert.equal(MATRIX['user.write'].viewer, false);
  assert.equal(MATRIX['audit.read'].auditor, true);
  assert.equal(MATRIX['key.read'].auditor, false);
  assert.equal(MATRIX['audit.read'].operator, false);
  assert.equal(MATRIX['tenant.admin'].tenant_admin, false);
});

test('hand-written expectations hold against the server', async () => {
  const u = await srv.request('POST', '/api/v1/users', {
    key: A.keys.viewer, body: { email: 'nope@alpha-iso.example', role: 'viewer' },
  });
  assertProblem(u, 403, 'viewer creates a user');
  assert.match(u.body.detail, /viewer.*user\.write/);
  denied.push({ rid: u.body.request_id, role: 'viewer' });
  const au = await srv.request('GET', '/api/v1/audit', { key: A.keys.auditor });
  assert.equal(au.status, 200, au.text);
  assert.ok(Array.isArray(au.body.data));
  const kl = await srv.request('GET', '/api/v1/api-keys', { key: A.keys.auditor });
  assertProblem(kl, 403, 'auditor lists keys');
  denied.push({ rid: kl.body.request_id, role: 'auditor' });
  const op = await srv.request('GET', `/api/v1/tenants/${A.id}/audit`, { key: A.keys.operator });
  assertProblem(op, 403, 'operator reads audit');
  denied.push({ rid: op.body.request_id, role: 'operator' });
  const tc = await srv.request('POST', '/api/v1/tenants', {
    key: A.keys.tenant_admin, body: { name: 'Should Not Exist' },
  });
  assertProblem(tc, 403, 'tenant_admin creates a tenant');
  denied.push({ rid: tc.body.request_id, role: 'tenant_admin' });
  const l = await srv.request('GET', '/api/v1/tenants?limit=500');
  assert.ok(!l.body.data.some((t) => t.name === 'Should Not Exist'));
});

test('cross-tenant: every canonical route with B\'s ids answers 404 to every role of A, and B is untouched', async () => {
  const beforeB = await snapshotB();
  const canonical = ROUTES.filter((r) => r.path.includes('{tenant_id}'));
  const ids = { tenant_id: B.id, user_id: B.user.id, key_id: B.key.id, provider_id: B.provider.id, config_id: B.config.id,
    agent_id: B.agent.id, version: '1', group_id: B.group.id, relationship_id: B.rel.id, skill_id: B.skill.id, task_id: B.task.id,
    server_id: B.server.id, tool: 'list_agents', memory_id: B.memory.id, entity_id: B.entity.id, conversation_id: 'sec-conv' };
  let calls = 0;
  for (const route of canonical) {
    for (const role of ROLES) {
      const path = fill(route.path, ids);
      const what = `${role} ${route.method} ${route.path}`;
      const r = await srv.request(route.method, path, {
        key: A.keys[role], body: validBody(route, { userId: B.user.id }),
      });
      assertProblem(r, 404, what);
      assert.equal(r.body.type, 'urn:agentprov:problem:not-found', what);
      assertNoLeak(r, path, what);
      denied.push({ rid: r.body.request_id, role, path, reason: 'another tenant' });
      calls++;
      // exactly the answer for a tenant that does not exist
      const ghost = fill(route.path, {
        tenant_id: randomUUID(), user_id: randomUUID(), key_id: randomUUID(), provider_id: randomUUID(),
        config_id: randomUUID(), agent_id: randomUUID(), version: '1', group_id: randomUUID(),
        relationship_id: randomUUID(), skill_id: randomUUID(), task_id: randomUUID(),
        server_id: randomUUID(), tool: 'list_agents', memory_id: randomUUID(), entity_id: randomUUID(),
        conversation_id: 'sec-conv',
      });
      const g = await srv.request(route.method, ghost, { key: A.keys[role], body: validBody(route, {}) });
      const { request_id: _r, instance: _i, ...rb } = r.body;
      const { request_id: _g, instance: _j, ...gb } = g.body;
      assert.deepEqual(rb, gb, `${what}: B's id answers unlike an unknown id`);
      assert.equal(g.status, 404);
      denied.push({ rid: g.body.request_id, role, path: ghost, reason: 'another tenant' });
    }
  }
  assert.equal(calls, canonical.length * ROLES.length);
  // an uppercase spelling of B's id reaches the same check
  const up = await srv.request('GET', `/api/v1/tenants/${B.id.toUpperCase()}/users`, { key: A.keys.tenant_admin });
  assertProblem(up, 404, 'uppercase B id');
  assertNoLeak(up, `/api/v1/tenants/${B.id}/users`, 'uppercase B id');
  denied.push({ rid: up.body.request_id, role: 'tenant_admin', reason: 'another tenant' });

  const afterB = await snapshotB();
  assert.deepEqual(afterB, beforeB, 'a cross-tenant call changed something in B');
  // B's keys still work, B's user still active, and B's chain is intact
  for (const k of [B.keys.viewer, B.key.key]) {
    const me = await srv.request('GET', '/api/v1/tenant', { key: k });
    assert.equal(me.status, 200, me.text);
    assert.equal(me.body.id, B.id);
    assert.equal(me.body.status, 'active');
  }
  const v = await srv.request('GET', '/api/v1/audit:verify', { key: B.keys.auditor });
  assert.equal(v.status, 200, v.text);
  assert.equal(v.body.ok, true);
  assert.ok(!afterB.audit.some((e) => e.action === 'auth.denied'), 'A\'s refusals went to B\'s chain');
});

test('aliases: B\'s resource ids answer A exactly as ids that do not exist', async () => {
  const aliases = ROUTES.filter((r) => r.scope === 'tenant-credential' && /\{(user_id|key_id|provider_id|config_id|agent_id|group_id|relationship_id|skill_id|task_id|server_id)\}/.test(r.path));
  assert.ok(aliases.length >= 5, 'user and key alias routes');
  const beforeB = await snapshotB();
  for (const route of aliases) {
    for (const role of ROLES) {
      const what = `${role} ${route.method} ${route.path}`;
      const path = fill(route.path, { user_id: B.user.id, key_id: B.key.id, provider_id: B.provider.id, config_id: B.config.id, agent_id: B.agent.id, version: '1', group_id: B.group.id, relationship_id: B.rel.id, skill_id: B.skill.id, task_id: B.task.id, server_id: B.server.id, tool: 'list_agents' });
      const ghost = fill(route.path, { user_id: randomUUID(), key_id: randomUUID(), provider_id: randomUUID(), config_id: randomUUID(), agent_id: randomUUID(), version: '1',
        group_id: randomUUID(), relationship_id: randomUUID(), skill_id: randomUUID(), task_id: randomUUID(), server_id: randomUUID(), tool: 'list_agents' });
      const body = validBody(route, {});
      const r = await srv.request(route.method, path, { key: A.keys[role], body });
      const g = await srv.request(route.method, ghost, { key: A.keys[role], body });
      const want = allows(role, route.permission) ? 404 : 403;
      assertProblem(r, want, what);
      assertProblem(g, want, `${what} (unknown id)`);
      // same answer as for a made-up id, once the id the caller sent is masked
      const mask = (x, p) => {
        const { request_id: _, ...rest } = x.body;
        let t = JSON.stringify(rest);
        for (const id of p.match(/[0-9a-f]{8}-[0-9a-f-]{27}/g)) t = t.split(id).join('<id>');
        return JSON.parse(t);
      };
      assert.deepEqual(mask(r, path), mask(g, ghost), what);
      assertNoLeak(r, path, what, [B.user.id, B.key.id, B.provider.id, B.config.id, B.agent.id, B.group.id, B.rel.id, B.skill.id, B.task.id, B.server.id].filter((id) => path.includes(id)));
      if (want === 403) {
        denied.push({ rid: r.body.request_id, role }, { rid: g.body.request_id, role });
      }
    }
  }
  // B's user id in a body is as unknown as a made-up one
  const mk = await srv.request('POST', '/api/v1/api-keys', {
    key: A.keys.tenant_admin, body: { name: 'steal', user_id: B.user.id },
  });
  const mk2 = await srv.request('POST', '/api/v1/api-keys', {
    key: A.keys.tenant_admin, body: { name: 'steal', user_id: randomUUID() },
  });
  assertProblem(mk, mk2.status, 'key for B\'s user');
  assert.equal(mk.body.type, mk2.body.type);
  assert.equal(mk.body.detail.replace(B.user.id, 'X'), mk2.body.detail.replace(/[0-9a-f-]{36}/, 'X'));
  assert.deepEqual(await snapshotB(), beforeB, 'an alias call changed something in B');
});

test('own tenant: every route × every role of A is 403 exactly when the matrix says so', async () => {
  // Routes that would end A's tenant run last, so a matrix that allowed them
  // would fail loudly rather than confuse the calls after it.
  const last = new Set(['tenant.suspend', 'tenant.resume', 'tenant.delete']);
  const routes = [...ROUTES.filter((r) => !last.has(r.action)), ...ROUTES.filter((r) => last.has(r.action))];
  const counts = { allowed: 0, refused: 0 };
  for (const route of routes) {
    for (const role of ROLES) {
      const what = `${role} ${route.method} ${route.path}`;
      const mutating = route.method !== 'GET';
      // a call that may delete or revoke gets resources of its own
      const user = mutating && route.path.includes('{user_id}')
        ? await mkUser(A.id, `own${++seq}@alpha-iso.example`, 'Own') : A.user;
      const key = mutating && route.path.includes('{key_id}') ? await mkKey(A.id, `own ${++seq}`) : A.key;
      const provider = route.path.includes('{provider_id}') ? await mkProvider(A.id) : null;
      const config = route.path.includes('{config_id}') ? await mkConfig(A.id) : null;
      const server = route.path.includes('{server_id}') ? await mkServer(A.id, A.keys.operator) : null;
      const task = !route.path.includes('{task_id}') ? null
        : ['task.approve', 'task.reject'].includes(route.action) ? await mkTask(A.id, true) : A.task;
      // memory and context routes act on the agent that has the memories
      const memRoute = /\/agents\/\{agent_id\}\/(memory|context)/.test(route.path);
      const agent = memRoute ? { id: A.memAgent }
        : mutating && route.path.includes('{agent_id}') ? await mkAgent(A.id, route.action) : A.agent;
      const group = mutating && route.path.includes('{group_id}') ? await mkGroup(A.id, [agent.id]) : A.group;
      const rel = mutating && route.path.includes('{relationship_id}')
        ? await mkRel(A.id, (await mkAgent(A.id, 'create')).id, agent.id) : A.rel;
      const skill = mutating && route.path.includes('{skill_id}') ? await mkSkill(A.id, agent.id) : A.skill;
      // a forget or delete gets a memory or entity of its own
      const memory = mutating && route.path.includes('{memory_id}') ? await mkMemory(A.id, A.memAgent, `own ${++seq}`) : A.memory;
      const entity = mutating && route.path.includes('{entity_id}') ? await mkEntity(A.id, `own ${++seq}`) : A.entity;
      const path = fill(route.path, { tenant_id: A.id, user_id: user.id, key_id: key.id, provider_id: provider?.id, config_id: config?.id,
        agent_id: agent.id, version: '1', group_id: group.id, relationship_id: rel.id, skill_id: skill.id, task_id: task?.id,
        server_id: server?.id, tool: 'list_agents', memory_id: memory.id, entity_id: entity.id, conversation_id: 'sec-conv' });
      const r = await srv.request(route.method, path, {
        key: A.keys[role], body: validBody(route, {}), headers: await validHeaders(route, A.keys[role]),
      });
      assert.ok(r.status !== 404 && r.status < 500, `${what}: ${r.status} ${r.text}`);
      if (allows(role, route.permission)) {
        assert.ok(r.status >= 200 && r.status < 300, `${what} should be allowed: ${r.status} ${r.text}`);
        counts.allowed++;
      } else if (route.errors && route.errors !== 'problem') {
        // the LLM gateway answers in its client protocol's error shape
        assert.equal(r.status, 403, `${what}: ${r.text}`);
        const msg = r.body?.error?.message || '';
        assert.ok(msg.includes(role) && msg.includes(route.permission),
          `${what}: the error names role and permission: ${r.text}`);
        denied.push({ rid: r.headers.get('x-request-id'), role, reason: 'role lacks permission' });
        counts.refused++;
      } else {
        assertProblem(r, 403, what);
        assert.equal(r.body.type, 'urn:agentprov:problem:forbidden', what);
        assert.ok(r.body.detail.includes(role) && r.body.detail.includes(route.permission),
          `${what}: the detail names role and permission: ${r.body.detail}`);
        denied.push({ rid: r.body.request_id, role, reason: 'role lacks permission' });
        counts.refused++;
      }
    }
  }
  assert.ok(counts.allowed > 30 && counts.refused > 30, JSON.stringify(counts));
  // A is still there and active
  const me = await srv.request('GET', '/api/v1/tenant', { key: A.keys.viewer });
  assert.equal(me.status, 200);
  assert.equal(me.body.status, 'active');
});

test('every refusal is one auth.denied entry in the caller\'s own audit chain', async () => {
  assert.ok(denied.length > 100, `refusals collected: ${denied.length}`);
  const entries = [];
  let cursor = null;
  do {
    const r = await srv.request('GET',
      `/api/v1/audit?action=auth.denied&limit=500${cursor ? `&cursor=${cursor}` : ''}`, { key: A.keys.auditor });
    assert.equal(r.status, 200, r.text);
    entries.push(...r.body.data);
    cursor = r.body.next_cursor;
  } while (cursor);
  const byRid = new Map();
  for (const e of entries) {
    assert.equal(e.action, 'auth.denied');
    assert.equal(e.tenant_id, A.id);
    assert.ok(!byRid.has(e.request_id), `two entries for request ${e.request_id}`);
    byRid.set(e.request_id, e);
  }
  for (const d of denied) {
    const e = byRid.get(d.rid);
    assert.ok(e, `no auth.denied entry for ${JSON.stringify(d)}`);
    assert.equal(e.outcome, 'denied');
    assert.equal(e.actor_type, 'key');
    assert.equal(e.actor_id, A.keyIds[d.role]);
    assert.equal(e.actor_role, d.role);
    if (d.reason) assert.equal(e.changes.reason, d.reason);
    if (d.path) assert.equal(e.changes.path, d.path);
  }
  // … and nothing of it reached B's chain
  const b = await srv.request('GET', '/api/v1/audit?action=auth.denied', { key: B.keys.auditor });
  assert.equal(b.status, 200);
  assert.equal(b.body.data.length, 0, JSON.stringify(b.body.data[0]));
  const v = await srv.request('GET', '/api/v1/audit:verify', { key: A.keys.auditor });
  assert.equal(v.body.ok, true, v.text);
});

test('regression: a call refused because the caller\'s tenant is suspended was not audited', async () => {
  const C = await tenantWithKeys(srv, 'Charlie Suspended');
  const ids = await keyIds(C);
  assert.equal((await srv.request('POST', `/api/v1/tenants/${C.id}:suspend`)).status, 200);
  const r = await srv.request('GET', '/api/v1/users', { key: C.keys.viewer });
  assert.equal(r.status, 403);
  assert.equal(r.body.type, 'urn:agentprov:problem:tenant-suspended');
  // a refused call of another tenant's path is audited the same way
  const x = await srv.request('GET', `/api/v1/tenants/${A.id}/users`, { key: C.keys.tenant_admin });
  assert.equal(x.status, 403);
  assert.equal((await srv.request('POST', `/api/v1/tenants/${C.id}:resume`)).status, 200);
  const l = await srv.request('GET', '/api/v1/audit?action=auth.denied', { key: C.keys.auditor });
  assert.equal(l.status, 200, l.text);
  const got = Object.fromEntries(l.body.data.map((e) => [e.request_id, e]));
  for (const [res, role] of [[r, 'viewer'], [x, 'tenant_admin']]) {
    const e = got[res.headers.get('x-request-id')];
    assert.ok(e, `no auth.denied for the ${role}'s refused call`);
    assert.equal(e.changes.reason, 'tenant suspended');
    assert.equal(e.actor_id, ids[role]);
  }
  // nothing reached A's chain
  const a = await srv.request('GET', `/api/v1/audit?action=auth.denied&actor=${ids.tenant_admin}`, { key: A.keys.auditor });
  assert.equal(a.status, 200, a.text);
  assert.deepEqual(a.body.data, []);
});

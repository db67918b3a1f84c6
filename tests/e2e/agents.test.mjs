// Agents, versions and lifecycle; groups, members and hierarchy;
// relationships and the supervision cycle check; skills; limits; both path
// shapes; the problems bad input gets; the demo team and the CLI.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, tenantWithKeys, BIN } from './lib/server.mjs';

let srv;
let t; // { id, keys }
let base; // canonical prefix of t

before(async () => {
  srv = await startServer();
  t = await tenantWithKeys(srv, 'Agents Co');
  base = `/api/v1/tenants/${t.id}`;
  const e = await srv.request('PATCH', base, { body: { max_agents: 1000, max_agent_groups: 100 } });
  assert.equal(e.status, 200, e.text);
});
after(async () => { await srv?.stop(); });

const admin = () => t.keys.tenant_admin;

async function call(method, path, body, key = admin()) {
  return srv.request(method, path, { key, body });
}

function problem(r, status, type, ...words) {
  assert.equal(r.status, status, r.text);
  assert.equal(r.headers.get('content-type'), 'application/problem+json');
  if (type) assert.equal(r.body.type, `urn:agentprov:problem:${type}`, r.text);
  for (const w of words) assert.ok(r.body.detail.includes(w), `detail lacks "${w}": ${r.body.detail}`);
}

async function mkAgent(name, extra = {}, prefix = base) {
  const r = await call('POST', `${prefix}/agents`, { name, role: 'Worker', ...extra });
  assert.equal(r.status, 201, r.text);
  return r.body;
}

test('create, read, list: both path shapes answer the same agent', async () => {
  const a = await mkAgent('Rita', {
    role: 'Researcher', capabilities: ['research', 'sources'], personality: { tone: 'curious' },
    tools: ['recall', 'remember', 'mcp:web/search'], autonomy_level: 'supervised', max_delegation_depth: 0,
    memory_config: { embedder: 'builtin', share_with: ['group'], allow_share: true, ttl_days: 30, recall_limit: 8 },
  });
  assert.equal(a.status, 'draft');
  assert.equal(a.version, 1);
  assert.equal(a.deployed_version, null);
  assert.equal(a.llm_config_id, null);
  assert.deepEqual(a.capabilities, ['research', 'sources']);
  const viaAlias = await call('GET', `/api/v1/agents/${a.id}`);
  const viaPath = await call('GET', `${base}/agents/${a.id}`);
  assert.deepEqual(viaAlias.body, viaPath.body);
  assert.deepEqual(viaPath.body, a);
  // created through the alias, listed through the canonical path
  const b = await mkAgent('Alias Made', {}, '/api/v1');
  const l = await call('GET', `${base}/agents?limit=500`);
  assert.ok(l.body.data.some((x) => x.id === b.id));
  // paging: limit 1 walks every agent once
  const seen = [];
  let cursor = '';
  do {
    const p = await call('GET', `/api/v1/agents?limit=1${cursor ? `&cursor=${cursor}` : ''}`);
    assert.equal(p.status, 200, p.text);
    seen.push(...p.body.data.map((x) => x.id));
    cursor = p.body.next_cursor;
  } while (cursor);
  assert.equal(new Set(seen).size, seen.length);
  assert.ok(seen.includes(a.id) && seen.includes(b.id));
  // the status filter
  const drafts = await call('GET', '/api/v1/agents?status=deployed');
  assert.deepEqual(drafts.body.data, []);
  // a viewer reads, cannot write
  assert.equal((await call('GET', `/api/v1/agents/${a.id}`, undefined, t.keys.viewer)).status, 200);
  problem(await call('POST', '/api/v1/agents', { name: 'V', role: 'R' }, t.keys.viewer), 403, 'forbidden', 'agent.write');
});

test('versions are immutable: PATCH writes a new draft version, old versions stay as they were', async () => {
  const a = await mkAgent('Versioned', { capabilities: ['a'] });
  const v1 = (await call('GET', `${base}/agents/${a.id}/versions/1`)).body;
  const p = await call('PATCH', `/api/v1/agents/${a.id}`, { capabilities: ['a', 'b'], description: 'second' });
  assert.equal(p.status, 200, p.text);
  assert.equal(p.body.version, 2);
  assert.equal(p.body.status, 'draft');
  assert.deepEqual(p.body.capabilities, ['a', 'b']);
  assert.deepEqual((await call('GET', `${base}/agents/${a.id}/versions/1`)).body, v1);
  const v2 = (await call('GET', `/api/v1/agents/${a.id}/versions/2`)).body;
  assert.equal(v2.spec.description, 'second');
  assert.equal(v2.spec.name, 'Versioned');
  assert.equal(v2.state, 'draft');
  const list = await call('GET', `${base}/agents/${a.id}/versions?limit=1`);
  assert.deepEqual(list.body.data.map((v) => v.version), [2]);
  assert.equal(list.body.next_cursor, '2');
  const rest = await call('GET', `${base}/agents/${a.id}/versions?limit=1&cursor=2`);
  assert.deepEqual(rest.body.data.map((v) => v.version), [1]);
  assert.equal(rest.body.next_cursor, null);
  // a refused change writes no version
  problem(await call('PATCH', `/api/v1/agents/${a.id}`, { tools: ['shell'] }), 400, 'invalid-field', 'tools[0]', 'shell');
  assert.equal((await call('GET', `/api/v1/agents/${a.id}`)).body.version, 2);
  problem(await call('GET', `/api/v1/agents/${a.id}/versions/3`), 404, 'not-found', 'no version 3');
  problem(await call('GET', `/api/v1/agents/${a.id}/versions/x1`), 404, 'not-found');
  problem(await call('GET', `/api/v1/agents/${a.id}/versions?cursor=abc`), 400, 'invalid-parameter');
  // every change is in the audit log
  const au = await call('GET', `/api/v1/audit?resource_id=${a.id}`);
  assert.deepEqual(au.body.data.map((e) => e.action), ['agent.create', 'agent.update']);
});

test('lifecycle: draft → validated → deployed → running/paused → retired, illegal steps name the allowed ones', async () => {
  const a = await mkAgent('Cycler');
  const step = (op, body, prefix = '/api/v1') => call('POST', `${prefix}/agents/${a.id}:${op}`, body);
  problem(await step('deploy'), 409, 'invalid-transition', 'is draft', 'allowed from draft: :validate, :retire');
  problem(await step('pause'), 409, 'invalid-transition', ':pause is not allowed');
  let r = await step('validate', undefined, base);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.status, 'validated');
  r = await step('deploy', { version: 1 });
  assert.equal(r.body.status, 'deployed');
  assert.equal(r.body.deployed_version, 1);
  problem(await step('resume'), 409, 'invalid-transition', 'allowed from deployed: :validate, :deploy, :pause, :retire');
  // a new draft does not disturb the deployed version
  r = await call('PATCH', `/api/v1/agents/${a.id}`, { role: 'Senior Worker' });
  assert.equal(r.body.status, 'deployed');
  assert.equal(r.body.deployed_version, 1);
  problem(await step('deploy', { version: 2 }), 409, 'not-validated', 'version 2', 'draft');
  problem(await step('deploy', { version: 9 }), 404, 'not-found');
  problem(await step('deploy', { version: 'two' }), 400, 'invalid-field', 'version');
  problem(await step('deploy', { versoin: 2 }), 400, 'unknown-field', 'versoin');
  assert.equal((await step('validate')).body.status, 'deployed');
  r = await step('deploy');
  assert.equal(r.body.deployed_version, 2, 'default: the latest validated version');
  assert.equal((await step('pause')).body.status, 'paused');
  problem(await step('pause'), 409, 'invalid-transition', 'allowed from paused: :validate, :deploy, :resume, :retire');
  assert.equal((await step('resume', undefined, base)).body.status, 'deployed');
  assert.equal((await step('retire')).body.status, 'retired');
  for (const op of ['validate', 'deploy', 'pause', 'resume', 'retire'])
    problem(await step(op), 409, 'invalid-transition', 'allowed from retired: none');
  problem(await call('PATCH', `/api/v1/agents/${a.id}`, { role: 'x' }), 409, 'invalid-transition', 'retired');
  const au = await call('GET', `/api/v1/audit?resource_id=${a.id}&action=agent.*&limit=100`);
  assert.deepEqual(au.body.data.map((e) => e.action), ['agent.create', 'agent.validate', 'agent.deploy',
    'agent.update', 'agent.validate', 'agent.deploy', 'agent.pause', 'agent.resume', 'agent.retire']);
});

test('validation names every problem: a deleted LLM configuration, delegation without depth', async () => {
  const cfg = await call('POST', '/api/v1/llm/configs', { name: 'agent-cfg', primary_model: 'builtin/agentprov-mini' });
  assert.equal(cfg.status, 201, cfg.text);
  const a = await mkAgent('Configured', { llm_config_id: cfg.body.id, tools: ['delegate_to_agent'], max_delegation_depth: 0 });
  assert.equal((await call('DELETE', `/api/v1/llm/configs/${cfg.body.id}`)).status, 204);
  problem(await call('POST', `/api/v1/agents/${a.id}:validate`), 400, 'agent-invalid', cfg.body.id, 'max_delegation_depth is 0');
  assert.equal((await call('GET', `/api/v1/agents/${a.id}`)).body.status, 'draft');
  const fixed = await call('PATCH', `/api/v1/agents/${a.id}`, { llm_config_id: null, max_delegation_depth: 3 });
  assert.equal(fixed.status, 200, fixed.text);
  assert.equal((await call('POST', `/api/v1/agents/${a.id}:validate`)).body.status, 'validated');
});

test('bad input gets problems naming the field', async () => {
  const cases = [
    [{ name: 'X' }, 'missing-field', 'role'],
    [{ name: 'X', role: 'R', nmae: 1 }, 'unknown-field', 'nmae'],
    [{ name: 'X', role: 'R', tools: ['mcp:server'] }, 'invalid-field', 'mcp:server'],
    [{ name: 'X', role: 'R', tools: 'recall' }, 'invalid-field', 'tools'],
    [{ name: 'X', role: 'R', capabilities: ['a', 'a'] }, 'invalid-field', 'repeats'],
    [{ name: 'X', role: 'R', autonomy_level: 'total' }, 'invalid-field', 'autonomy_level'],
    [{ name: 'X', role: 'R', max_delegation_depth: 11 }, 'invalid-field', 'max_delegation_depth'],
    [{ name: 'X', role: 'R', memory_config: { ttl: 5 } }, 'invalid-field', 'memory_config.ttl'],
    [{ name: 'X', role: 'R', memory_config: { embedder: 'openai/gpt-4o' } }, 'invalid-field', 'embedder'],
    [{ name: 'X', role: 'R', llm_config_id: '01a1fdbf-3d89-76ec-bead-48a9d4821d0f' }, 'invalid-field', 'llm_config_id'],
    [{ name: 'X', role: 'R', personality: 'nice' }, 'invalid-field', 'personality'],
    [{ name: '   ', role: 'R' }, 'invalid-field', 'name'],
  ];
  for (const [body, type, word] of cases)
    problem(await call('POST', '/api/v1/agents', body), 400, type, word);
  await mkAgent('Unique');
  problem(await call('POST', '/api/v1/agents', { name: 'Unique', role: 'R' }), 409, 'conflict', 'Unique');
  problem(await call('GET', '/api/v1/agents?status=sleeping'), 400, 'invalid-parameter', 'sleeping');
  problem(await call('GET', '/api/v1/agents?cursor=zzz'), 400, 'invalid-parameter');
  problem(await call('GET', '/api/v1/agents/not-a-uuid'), 404, 'not-found');
  problem(await call('GET', '/api/v1/agents/01a1fdbf-3d89-76ec-bead-48a9d4821d0f'), 404, 'not-found');
  problem(await call('POST', '/api/v1/agent-relationships', { from_agent_id: 'x', to_agent_id: 'y', relationship_type: 'loves' }),
    400, 'invalid-field', 'relationship_type');
  problem(await call('GET', '/api/v1/agent-relationships?type=loves'), 400, 'invalid-parameter', 'type');
  problem(await call('POST', '/api/v1/agent-groups', { name: 'G', escalation_rules: { min_confidence: 5 } }), 400, 'invalid-field', 'min_confidence');
  problem(await call('POST', '/api/v1/agent-groups', { name: 'G', escalation_rules: { notify: true } }), 400, 'invalid-field', 'notify');
});

test('limits: max_agents counts agents that are not retired; max_agent_groups', async () => {
  const c = await call('POST', '/api/v1/tenants', { name: 'Small Co', max_agents: 2, max_agent_groups: 1 }, srv.adminKey);
  assert.equal(c.status, 201, c.text);
  const p = `/api/v1/tenants/${c.body.id}`;
  const key = srv.adminKey;
  const a1 = await srv.request('POST', `${p}/agents`, { key, body: { name: 'one', role: 'R' } });
  assert.equal(a1.status, 201);
  assert.equal((await srv.request('POST', `${p}/agents`, { key, body: { name: 'two', role: 'R' } })).status, 201);
  problem(await srv.request('POST', `${p}/agents`, { key, body: { name: 'three', role: 'R' } }), 403, 'limit-exceeded',
    'max_agents is 2', 'has 2 agents');
  assert.equal((await srv.request('POST', `${p}/agents/${a1.body.id}:retire`, { key })).status, 200);
  assert.equal((await srv.request('POST', `${p}/agents`, { key, body: { name: 'three', role: 'R' } })).status, 201);
  assert.equal((await srv.request('POST', `${p}/agent-groups`, { key, body: { name: 'g1' } })).status, 201);
  problem(await srv.request('POST', `${p}/agent-groups`, { key, body: { name: 'g2' } }), 403, 'limit-exceeded',
    'max_agent_groups is 1', 'has 1 groups');
});

test('relationships: a supervision cycle is refused with its agents named; reports_to is the inverse edge', async () => {
  const [m, r, n] = [await mkAgent('Mona'), await mkAgent('Remy'), await mkAgent('Nico')];
  const rel = (from, to, type, extra = {}, prefix = '/api/v1') =>
    call('POST', `${prefix}/agent-relationships`, { from_agent_id: from.id, to_agent_id: to.id, relationship_type: type, ...extra });
  const s1 = await rel(m, r, 'supervises', { trust_level: 0.9, communication_style: 'async', handoff_rules: { include: 'sources' } }, base);
  assert.equal(s1.status, 201, s1.text);
  assert.equal(s1.body.trust_level, 0.9);
  assert.equal((await rel(n, r, 'reports_to')).status, 201); // r supervises n
  problem(await rel(n, m, 'supervises'), 409, 'supervision-cycle', 'Nico supervises Mona supervises Remy supervises Nico');
  problem(await rel(m, n, 'reports_to'), 409, 'supervision-cycle', 'Nico supervises Mona');
  problem(await rel(r, m, 'supervises'), 409, 'supervision-cycle', 'Remy supervises Mona supervises Remy');
  problem(await rel(m, r, 'supervises'), 409, 'conflict', 'Mona already supervises Remy');
  problem(await rel(m, m, 'consults'), 400, 'invalid-field', 'both');
  problem(await rel(m, r, 'consults', { trust_level: 1.5 }), 400, 'invalid-field', 'trust_level');
  assert.equal((await rel(r, m, 'consults')).status, 201);
  // filters and update/delete
  const byAgent = await call('GET', `/api/v1/agent-relationships?agent_id=${n.id}`);
  assert.deepEqual(byAgent.body.data.map((x) => x.relationship_type), ['reports_to']);
  const up = await call('PATCH', `${base}/agent-relationships/${s1.body.id}`, { trust_level: 0.4 });
  assert.equal(up.body.trust_level, 0.4);
  assert.equal(up.body.relationship_type, 'supervises');
  problem(await call('PATCH', `/api/v1/agent-relationships/${s1.body.id}`, { relationship_type: 'consults' }), 400, 'unknown-field');
  assert.equal((await call('DELETE', `/api/v1/agent-relationships/${s1.body.id}`)).status, 204);
  problem(await call('GET', `/api/v1/agent-relationships/${s1.body.id}`), 404, 'not-found');
  // now r supervises m is no cycle
  assert.equal((await rel(r, m, 'supervises')).status, 201);
  // a retired agent takes no new relationships
  assert.equal((await call('POST', `/api/v1/agents/${n.id}:retire`)).status, 200);
  problem(await rel(m, n, 'consults'), 409, 'agent-retired', 'retired');
});

test('groups: members, escalation rules, hierarchy by supervision with the other edges listed', async () => {
  const boss = await mkAgent('Boss', { capabilities: ['planning'] });
  const res = await mkAgent('Researcher G', { capabilities: ['research'] });
  const ana = await mkAgent('Analyst G', { capabilities: ['numbers'] });
  const out = await mkAgent('Outsider G');
  const g = await call('POST', `${base}/agent-groups`, {
    name: 'Team G', goal: 'find answers', strategy: { mode: 'manager_delegates' }, shared_context: { client: 'ACME' },
    escalation_rules: { min_confidence: 0.6, on_failure: true, max_attempts: 2, escalate_to: boss.id },
    members: [boss.id, res.id],
  });
  assert.equal(g.status, 201, g.text);
  assert.deepEqual(g.body.members.map((x) => x.name).sort(), ['Boss', 'Researcher G']);
  assert.deepEqual(g.body.escalation_rules, { min_confidence: 0.6, on_failure: true, max_attempts: 2, escalate_to: boss.id });
  problem(await call('PATCH', `/api/v1/agent-groups/${g.body.id}`, { escalation_rules: { escalate_to: out.id } }), 400, 'invalid-field', 'escalate_to');
  const add = await call('PUT', `/api/v1/agent-groups/${g.body.id}/members/${ana.id}`);
  assert.equal(add.status, 200, add.text);
  assert.equal(add.body.members.length, 3);
  assert.equal((await call('PUT', `${base}/agent-groups/${g.body.id}/members/${ana.id}`)).body.members.length, 3);
  const rel = (from, to, type) => call('POST', '/api/v1/agent-relationships',
    { from_agent_id: from.id, to_agent_id: to.id, relationship_type: type, group_id: g.body.id });
  assert.equal((await rel(boss, res, 'supervises')).status, 201);
  assert.equal((await rel(ana, boss, 'reports_to')).status, 201);
  assert.equal((await rel(res, ana, 'collaborates_with')).status, 201);
  assert.equal((await rel(boss, out, 'supervises')).status, 201); // not a member: left out
  const h = await call('GET', `/api/v1/agent-groups/${g.body.id}/hierarchy`);
  assert.equal(h.status, 200, h.text);
  assert.equal(h.body.roots.length, 1);
  assert.equal(h.body.roots[0].name, 'Boss');
  assert.deepEqual(h.body.roots[0].children.map((c) => c.name), ['Analyst G', 'Researcher G']);
  assert.deepEqual(h.body.roots[0].children[1].capabilities, ['research']);
  assert.deepEqual(h.body.edges.map((e) => e.relationship_type), ['collaborates_with']);
  assert.deepEqual(h.body, (await call('GET', `${base}/agent-groups/${g.body.id}/hierarchy`)).body);
  // members: remove, remove again (404), replace the set with PATCH
  assert.equal((await call('DELETE', `/api/v1/agent-groups/${g.body.id}/members/${ana.id}`)).status, 204);
  problem(await call('DELETE', `/api/v1/agent-groups/${g.body.id}/members/${ana.id}`), 404, 'not-found', 'not a member');
  const p = await call('PATCH', `/api/v1/agent-groups/${g.body.id}`, { members: [boss.id], goal: 'narrower' });
  assert.deepEqual(p.body.members.map((x) => x.name), ['Boss']);
  assert.equal(p.body.goal, 'narrower');
  problem(await call('POST', '/api/v1/agent-groups', { name: 'Team G' }), 409, 'conflict', 'Team G');
  problem(await call('POST', '/api/v1/agent-groups', { name: 'Bad', members: ['01a1fdbf-3d89-76ec-bead-48a9d4821d0f'] }), 400, 'invalid-field', 'members[0]');
  assert.equal((await call('DELETE', `${base}/agent-groups/${g.body.id}`)).status, 204);
  problem(await call('GET', `/api/v1/agent-groups/${g.body.id}`), 404, 'not-found');
  const au = await call('GET', `/api/v1/audit?resource_id=${g.body.id}&limit=100`);
  assert.deepEqual(au.body.data.map((e) => e.action), ['agent_group.create', 'agent_group.member.add',
    'agent_group.member.remove', 'agent_group.update', 'agent_group.delete']);
});

test('skills: CRUD under the agent; counters are not writable', async () => {
  const a = await mkAgent('Skilled');
  const s = await call('POST', `/api/v1/agents/${a.id}/skills`, { skill_name: 'summarise', proficiency: 0.3, learned_from: 'training', examples: ['a memo'] });
  assert.equal(s.status, 201, s.text);
  assert.equal(s.body.times_used, 0);
  assert.equal(s.body.success_rate, 0);
  assert.equal(s.body.last_used_at, null);
  problem(await call('POST', `/api/v1/agents/${a.id}/skills`, { skill_name: 'summarise' }), 409, 'conflict', 'summarise');
  problem(await call('PATCH', `${base}/agents/${a.id}/skills/${s.body.id}`, { times_used: 9 }), 400, 'unknown-field', 'times_used');
  problem(await call('POST', `/api/v1/agents/${a.id}/skills`, { skill_name: 'x', learned_from: 'osmosis' }), 400, 'invalid-field', 'learned_from');
  const u = await call('PATCH', `${base}/agents/${a.id}/skills/${s.body.id}`, { proficiency: 0.9, learned_from: 'feedback' });
  assert.equal(u.body.proficiency, 0.9);
  assert.equal(u.body.learned_from, 'feedback');
  const other = await mkAgent('Unskilled');
  problem(await call('GET', `/api/v1/agents/${other.id}/skills/${s.body.id}`), 404, 'not-found');
  const l = await call('GET', `/api/v1/agents/${a.id}/skills`);
  assert.deepEqual(l.body.data.map((x) => x.skill_name), ['summarise']);
  assert.equal((await call('DELETE', `/api/v1/agents/${a.id}/skills/${s.body.id}`)).status, 204);
  assert.deepEqual((await call('GET', `${base}/agents/${a.id}/skills`)).body.data, []);
});

test('another tenant sees none of it', async () => {
  const o = await tenantWithKeys(srv, 'Other Agents Co');
  const mine = await mkAgent('Private');
  problem(await srv.request('GET', `/api/v1/agents/${mine.id}`, { key: o.keys.tenant_admin }), 404, 'not-found');
  problem(await srv.request('POST', `/api/v1/agents/${mine.id}:retire`, { key: o.keys.tenant_admin }), 404, 'not-found');
  problem(await srv.request('GET', `${base}/agents`, { key: o.keys.tenant_admin }), 404, 'not-found');
  const theirs = await srv.request('POST', '/api/v1/agents', { key: o.keys.tenant_admin, body: { name: 'Theirs', role: 'R' } });
  problem(await call('POST', '/api/v1/agent-relationships', { from_agent_id: mine.id, to_agent_id: theirs.body.id, relationship_type: 'consults' }),
    400, 'invalid-field', 'to_agent_id');
  assert.equal((await srv.request('GET', '/api/v1/agents', { key: o.keys.viewer })).body.data.length, 1);
});

// The demo team: seeded on the first start unless AP_DEMO=0 / --no-demo
// (that a second seed changes nothing is tested in tests/unit/agent_test.c).
test('demo team: the first start seeds tenant demo with a deployed team and writes demo.key', async () => {
  const s = await startServer({ env: { AP_DEMO: '1' } });
  try {
    const logLine = s.logs.find((l) => l.msg === 'demo team created');
    assert.ok(logLine, 'no "demo team created" log line');
    const keyFile = join(s.dataDir, 'demo.key');
    assert.equal(logLine.key_file, keyFile);
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    const key = readFileSync(keyFile, 'utf8').trim();
    const me = await s.request('GET', '/api/v1/tenant', { key });
    assert.equal(me.body.slug, 'demo');
    const agents = (await s.request('GET', '/api/v1/agents', { key })).body.data;
    const by = Object.fromEntries(agents.map((a) => [a.role, a]));
    assert.deepEqual(Object.keys(by).sort(), ['Analyst', 'Manager', 'Researcher']);
    for (const a of agents) {
      assert.equal(a.status, 'deployed', a.name);
      assert.equal(a.deployed_version, 1);
      assert.equal(a.llm_config_id, null, 'the tenant default model');
    }
    assert.deepEqual(by.Manager.capabilities, ['planning', 'coordination']);
    assert.ok(by.Manager.tools.includes('delegate_to_agent'));
    const groups = (await s.request('GET', '/api/v1/agent-groups', { key })).body.data;
    assert.equal(groups.length, 1);
    assert.equal(groups[0].name, 'Research team');
    assert.ok(groups[0].goal.length > 0);
    assert.equal(groups[0].members.length, 3);
    const h = (await s.request('GET', `/api/v1/agent-groups/${groups[0].id}/hierarchy`, { key })).body;
    assert.equal(h.roots.length, 1);
    assert.equal(h.roots[0].name, 'Manager');
    assert.deepEqual(h.roots[0].children.map((c) => c.role).sort(), ['Analyst', 'Researcher']);
    assert.deepEqual(h.edges.map((e) => e.relationship_type), ['collaborates_with']);
    const v = await s.request('GET', '/api/v1/audit:verify', { key });
    assert.equal(v.body.ok, true);
    // the demo key is a tenant key: the platform is out of its reach
    assert.equal((await s.request('GET', '/api/v1/tenants', { key })).status, 403);
  } finally {
    await s.stop();
  }
  for (const opts of [{ env: { AP_DEMO: '1' }, args: ['--no-demo'] }, { env: { AP_DEMO: '0' } }]) {
    const r = await startServer(opts);
    try {
      assert.ok(!r.logs.some((l) => l.msg === 'demo team created'));
      assert.ok(!existsSync(join(r.dataDir, 'demo.key')));
      const l = await r.request('GET', '/api/v1/tenants');
      assert.ok(!l.body.data.some((x) => x.slug === 'demo'));
    } finally {
      await r.stop();
    }
  }
});

test('CLI: agents, groups, relationships and skills through the API', () => {
  const env = { ...process.env, AP_URL: srv.url, AP_API_KEY: admin() };
  const cli = (...args) => spawnSync(BIN, args, { env, encoding: 'utf8' });
  let r = cli('agents', 'create', '--name', 'Cli Agent', '--role', 'Writer', '--capabilities', 'writing,editing',
    '--tools', 'recall,complete_task', '--personality', '{"tone":"warm"}', '-o', 'json');
  assert.equal(r.status, 0, r.stderr);
  const a = JSON.parse(r.stdout);
  assert.deepEqual(a.capabilities, ['writing', 'editing']);
  assert.deepEqual(a.personality, { tone: 'warm' });
  r = cli('agents', 'validate', a.id);
  assert.equal(r.status, 0, r.stderr);
  r = cli('agents', 'deploy', a.id, '--version', '1', '-o', 'json');
  assert.equal(JSON.parse(r.stdout).status, 'deployed');
  r = cli('agents', 'resume', a.id);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /allowed from deployed/);
  r = cli('agents', 'list', '--status', 'deployed');
  assert.match(r.stdout, /Cli Agent/);
  r = cli('agents', 'versions', a.id);
  assert.match(r.stdout, /VERSION\s+STATE/);
  r = cli('groups', 'create', '--name', 'Cli Team', '--goal', 'write', '--members', a.id, '-o', 'json');
  assert.equal(r.status, 0, r.stderr);
  const g = JSON.parse(r.stdout);
  const b = JSON.parse(cli('agents', 'create', '--name', 'Cli Boss', '--role', 'Manager', '-o', 'json').stdout);
  assert.equal(cli('groups', 'add-member', g.id, b.id).status, 0);
  r = cli('relationships', 'create', '--from', b.id, '--to', a.id, '--type', 'supervises', '--trust', '0.7', '--group', g.id);
  assert.equal(r.status, 0, r.stderr);
  r = cli('relationships', 'create', '--from', a.id, '--to', b.id, '--type', 'supervises');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /supervision cycle/);
  r = cli('groups', 'hierarchy', g.id);
  assert.equal(JSON.parse(r.stdout).roots[0].name, 'Cli Boss');
  r = cli('skills', 'create', a.id, '--name', 'drafting', '--proficiency', '0.5');
  assert.equal(r.status, 0, r.stderr);
  r = cli('skills', 'list', a.id);
  assert.match(r.stdout, /drafting\s+0\.5/);
  r = cli('agents', 'create', '--name', 'X', '--role', 'Y', '--max-delegation-depth', 'many');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /needs an integer/);
  assert.equal(cli('agents', 'bogus').status, 2);
});

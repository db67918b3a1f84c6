// Agent memory through the API: remember / recall / inspect / forget /
// consolidate / share on canonical and alias paths, the hot context, the
// knowledge graph with as_of and paths, the isolation matrix (2 tenants × 2
// agents, every read path), and a restart that keeps everything.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { startServer, tenantWithKeys, BACKEND, BIN } from './lib/server.mjs';
import { makeAgent, setMemoryConfig } from './lib/agents.mjs';

let srv;
const T = []; // [{ id, keys, agents: [id, id], mem: {agentId: [ids]} }]

async function remember(t, agent, content, extra = {}) {
  const r = await srv.request('POST', `/api/v1/tenants/${t.id}/agents/${agent}/memory`, {
    key: t.keys.operator, body: { content, memory_type: 'fact', importance: 0.6, ...extra },
  });
  assert.equal(r.status, 201, r.text);
  return r.body;
}

async function recall(t, agent, query, extra = {}, key = t.keys.viewer) {
  return srv.request('POST', `/api/v1/tenants/${t.id}/agents/${agent}/memory:recall`, {
    key, body: { query, ...extra },
  });
}

before(async () => {
  srv = await startServer();
  for (const name of ['Mem Alpha', 'Mem Bravo']) {
    const t = await tenantWithKeys(srv, name);
    t.agents = [await makeAgent(srv, t.id, `${name} one`), await makeAgent(srv, t.id, `${name} two`)];
    t.mem = {};
    for (const [i, a] of t.agents.entries()) {
      const m = await remember(t, a, `the vault code of ${name} agent ${i} is ${1000 + i}`);
      t.mem[a] = [m.id];
    }
    T.push(t);
  }
});
after(async () => {
  await srv?.stop();
  // the database of the server before the restart (stop() drops only its own)
  if (srv?.firstDb) execFileSync('psql', [process.env.AP_TEST_PG_ADMIN_URL, '-qAtc', `DROP DATABASE IF EXISTS ${srv.firstDb}`]);
});

test('remember answers the memory; recall ranks with documented scores and bumps counters', async () => {
  const [a] = T;
  const agent = a.agents[0];
  const m = await remember(a, agent, 'The deploy window is Tuesday at noon', { importance: 0.9, source: 'user_feedback' });
  assert.equal(m.memory_type, 'fact');
  assert.equal(m.subject, 'deploy window');
  assert.equal(m.embedder, 'builtin/hash-embed-384');
  assert.equal(m.access_count, 0);
  assert.ok(!('embedding' in m));
  const r = await recall(a, agent, 'when is the deploy window');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.data[0].id, m.id);
  const top = r.body.data[0];
  const p = top.score_parts;
  const w = r.body.ranking.weights;
  assert.ok(Math.abs(top.score - (w.similarity * p.similarity + w.importance * p.importance + w.recency * p.recency + w.access * p.access)) < 1e-6);
  assert.ok(top.similarity > 0.3);
  assert.equal(top.access_count, 1);
  const g = await srv.request('GET', `/api/v1/tenants/${a.id}/agents/${agent}/memory/${m.id}?query=deploy%20window`, { key: a.keys.viewer });
  assert.equal(g.status, 200, g.text);
  assert.equal(g.body.access_count, 1);
  assert.ok(g.body.similarity > 0.3 && typeof g.body.score === 'number');
  // bad input names the field
  const bad = await recall(a, agent, 'x', { types: ['nope'] });
  assert.equal(bad.status, 400);
  assert.match(bad.body.detail, /types\[0\]/);
  const unknown = await srv.request('POST', `/api/v1/tenants/${a.id}/agents/${agent}/memory`, {
    key: a.keys.operator, body: { content: 'x', memory_type: 'fact', importanse: 1 },
  });
  assert.equal(unknown.status, 400);
  assert.match(unknown.body.detail, /importanse/);
  const viewer = await srv.request('POST', `/api/v1/tenants/${a.id}/agents/${agent}/memory`, {
    key: a.keys.viewer, body: { content: 'x', memory_type: 'fact' },
  });
  assert.equal(viewer.status, 403);
  assert.match(viewer.body.detail, /memory\.write/);
});

test('isolation matrix: 2 tenants × 2 agents, every read path', async () => {
  for (const [ti, t] of T.entries()) {
    const other = T[1 - ti];
    for (const [ai, agent] of t.agents.entries()) {
      const sibling = t.agents[1 - ai];
      const own = t.mem[agent][0];
      const theirs = t.mem[sibling][0];
      const foreign = other.mem[other.agents[ai]][0];
      // recall: only its own memories
      const r = await recall(t, agent, 'vault code agent', { limit: 100, min_similarity: 0 });
      assert.equal(r.status, 200, r.text);
      const ids = r.body.data.map((m) => m.id);
      assert.ok(ids.includes(own));
      assert.ok(!ids.includes(theirs), 'a sibling agent\'s memory was recalled');
      assert.ok(!ids.includes(foreign), 'another tenant\'s memory was recalled');
      assert.ok(r.body.data.every((m) => m.agent_id === agent && m.tenant_id === t.id));
      // alias recall, same answer set
      const ra = await srv.request('POST', '/api/v1/memory:recall', {
        key: t.keys.viewer, body: { agent_id: agent, query: 'vault code agent', limit: 100, min_similarity: 0 },
      });
      assert.equal(ra.status, 200, ra.text);
      assert.ok(ra.body.data.every((m) => m.agent_id === agent));
      // list: own agent only; the tenant-wide alias list: only this tenant
      const l = await srv.request('GET', `/api/v1/tenants/${t.id}/agents/${agent}/memory?limit=500`, { key: t.keys.viewer });
      assert.equal(l.status, 200, l.text);
      assert.ok(l.body.data.every((m) => m.agent_id === agent));
      const la = await srv.request('GET', '/api/v1/memory?limit=500', { key: t.keys.viewer });
      assert.ok(la.body.data.every((m) => m.tenant_id === t.id));
      assert.ok(!la.body.data.some((m) => m.id === foreign));
      // get / inspect: a sibling's memory through this agent, another tenant's anywhere
      for (const path of [
        `/api/v1/tenants/${t.id}/agents/${agent}/memory/${theirs}`,
        `/api/v1/tenants/${t.id}/agents/${agent}/memory/${foreign}`,
        `/api/v1/memory/${foreign}`,
        `/api/v1/memory/${foreign}?query=vault`,
      ]) {
        const g = await srv.request('GET', path, { key: t.keys.viewer });
        assert.equal(g.status, 404, `${path}: ${g.text}`);
      }
      // another tenant's agent, through every path of this tenant
      const oa = other.agents[ai];
      for (const [method, path, body] of [
        ['POST', `/api/v1/tenants/${t.id}/agents/${oa}/memory:recall`, { query: 'vault' }],
        ['GET', `/api/v1/tenants/${t.id}/agents/${oa}/memory`, undefined],
        ['GET', `/api/v1/tenants/${t.id}/agents/${oa}/memory/${foreign}`, undefined],
        ['GET', `/api/v1/memory?agent_id=${oa}`, undefined],
        ['POST', '/api/v1/memory:recall', { agent_id: oa, query: 'vault' }],
        ['POST', `/api/v1/tenants/${t.id}/agents/${oa}/memory`, { content: 'plant', memory_type: 'fact' }],
        ['POST', `/api/v1/tenants/${t.id}/agents/${oa}/memory:consolidate`, {}],
        ['POST', `/api/v1/tenants/${t.id}/agents/${agent}/memory:share`, { to_agent_id: oa, memory_ids: [own] }],
        ['POST', `/api/v1/tenants/${t.id}/agents/${oa}/context`, { conversation_id: 'c', content: 'x' }],
        ['GET', `/api/v1/tenants/${t.id}/agents/${oa}/context/c`, undefined],
        ['DELETE', `/api/v1/memory/${foreign}`, undefined],
        // the other tenant's path with this tenant's key
        ['POST', `/api/v1/tenants/${other.id}/agents/${oa}/memory:recall`, { query: 'vault' }],
      ]) {
        const x = await srv.request(method, path, { key: t.keys.tenant_admin, body });
        assert.equal(x.status, 404, `${method} ${path}: ${x.text}`);
        assert.ok(!x.text.includes('vault code'), `${method} ${path} leaks content`);
      }
    }
  }
  // nothing of the other tenant changed
  for (const t of T)
    for (const a of t.agents) {
      const l = await srv.request('GET', `/api/v1/tenants/${t.id}/agents/${a}/memory?limit=500`, { key: t.keys.viewer });
      assert.ok(l.body.data.some((m) => m.id === t.mem[a][0]));
      assert.ok(!l.body.data.some((m) => m.content === 'plant'));
    }
});

test('share copies with provenance within the tenant, as memory_config allows', async () => {
  const [a] = T;
  const [x, y] = a.agents;
  const m = await remember(a, x, 'Rotate the signing keys every ninety days', { memory_type: 'procedure' });
  const s = await srv.request('POST', `/api/v1/tenants/${a.id}/agents/${x}/memory:share`, {
    key: a.keys.operator, body: { to_agent_id: y, memory_ids: [m.id] },
  });
  assert.equal(s.status, 200, s.text);
  const copy = s.body.shared[0].id;
  const r = await recall(a, y, 'rotate signing keys');
  const got = r.body.data.find((d) => d.id === copy);
  assert.ok(got, r.text);
  assert.equal(got.shared_from_memory_id, m.id);
  assert.equal(got.shared_from_agent_id, x);
  const r2 = await recall(a, y, 'rotate signing keys', { include_shared: false });
  assert.ok(!r2.body.data.some((d) => d.id === copy));
  setMemoryConfig(srv, y, { accept_shared: false });
  const denied = await srv.request('POST', '/api/v1/memory:share', {
    key: a.keys.operator, body: { agent_id: x, to_agent_id: y, memory_ids: [a.mem[x][0]] },
  });
  assert.equal(denied.status, 403, denied.text);
  assert.match(denied.body.detail, /does not accept/);
  setMemoryConfig(srv, y, {});
});

test('forget removes a memory from every read path; consolidate merges and supersedes', async () => {
  const [a] = T;
  const agent = a.agents[1];
  const gone = await remember(a, agent, 'The staging password is hunter2');
  const f = await srv.request('DELETE', `/api/v1/memory/${gone.id}`, { key: a.keys.operator });
  assert.equal(f.status, 204, f.text);
  const r = await recall(a, agent, 'staging password', { min_similarity: 0, limit: 100 });
  assert.ok(!r.body.data.some((d) => d.id === gone.id));
  const g = await srv.request('GET', `/api/v1/memory/${gone.id}`, { key: a.keys.viewer });
  assert.equal(g.status, 404);
  const audit = await srv.request('GET', `/api/v1/audit?action=memory.*&limit=500`, { key: a.keys.auditor });
  assert.ok(audit.body.data.some((e) => e.action === 'memory.forget' && e.resource_id === gone.id));

  const d1 = await remember(a, agent, 'The build server ran out of memory', { memory_type: 'experience', importance: 0.3 });
  const d2 = await remember(a, agent, 'the build server ran out of memory.', { memory_type: 'experience', importance: 0.7 });
  const old = await remember(a, agent, 'The team lead is Alice');
  const neu = await remember(a, agent, 'The team lead is Bob');
  const dry = await srv.request('POST', `/api/v1/tenants/${a.id}/agents/${agent}/memory:consolidate`, {
    key: a.keys.operator, body: { dry_run: true },
  });
  assert.equal(dry.status, 200, dry.text);
  assert.equal(dry.body.dry_run, true);
  const c = await srv.request('POST', '/api/v1/memory:consolidate', { key: a.keys.operator, body: { agent_id: agent } });
  assert.equal(c.status, 200, c.text);
  assert.deepEqual(c.body.merged, [{ kept: d1.id, removed: d2.id }]);
  assert.deepEqual(c.body.superseded, [{ old: old.id, new: neu.id }]);
  assert.deepEqual(dry.body.counts, c.body.counts);
  const lead = await recall(a, agent, 'who is the team lead');
  assert.equal(lead.body.data[0].id, neu.id);
  assert.ok(!lead.body.data.some((d) => d.id === old.id));
  const o = await srv.request('GET', `/api/v1/memory/${old.id}`, { key: a.keys.viewer });
  assert.equal(o.body.status, 'superseded');
  assert.equal(o.body.superseded_by, neu.id);
});

test('hot context: last messages and task context per agent and conversation', async () => {
  const [a, b] = T;
  const agent = a.agents[0];
  for (let i = 0; i < 12; i++) {
    const p = await srv.request('POST', `/api/v1/tenants/${a.id}/agents/${agent}/context`, {
      key: a.keys.operator, body: { conversation_id: 'conv-1', role: 'user', content: `message ${i}` },
    });
    assert.equal(p.status, 200, p.text);
  }
  await srv.request('POST', `/api/v1/tenants/${a.id}/agents/${agent}/context`, {
    key: a.keys.operator, body: { conversation_id: 'conv-1', task_context: { objective: 'ship it' } },
  });
  const g = await srv.request('GET', `/api/v1/tenants/${a.id}/agents/${agent}/context/conv-1`, { key: a.keys.viewer });
  assert.equal(g.status, 200, g.text);
  assert.equal(g.body.messages.length, 10);
  assert.equal(g.body.messages[0].content, 'message 2');
  assert.equal(g.body.task_context.objective, 'ship it');
  const none = await srv.request('GET', `/api/v1/tenants/${a.id}/agents/${a.agents[1]}/context/conv-1`, { key: a.keys.viewer });
  assert.equal(none.status, 404);
  const cross = await srv.request('GET', `/api/v1/tenants/${b.id}/agents/${agent}/context/conv-1`, { key: b.keys.viewer });
  assert.equal(cross.status, 404);
});

test('knowledge graph: upsert, temporal facts as_of, paths, export, isolation', async () => {
  const [a, b] = T;
  const base = `/api/v1/tenants/${a.id}/knowledge`;
  const e1 = await srv.request('POST', `${base}/entities`, {
    key: a.keys.operator,
    body: { entity_type: 'company', name: 'Initech', attributes: { ceo: 'Bill' }, observed_at: '2025-01-01T00:00:00Z',
      relations: [{ relation_type: 'located_in', to: { entity_type: 'city', name: 'Austin' } }] },
  });
  assert.equal(e1.status, 201, e1.text);
  const e2 = await srv.request('POST', '/api/v1/knowledge/entities', {
    key: a.keys.operator, body: { entity_type: 'company', name: '  INITECH ', attributes: { ceo: 'Peter' }, observed_at: '2026-01-01T00:00:00Z' },
  });
  assert.equal(e2.body.id, e1.body.id);
  assert.equal(e2.body.attributes.ceo, 'Peter');
  assert.ok(e2.body.confidence > e1.body.confidence);
  const then = await srv.request('GET', `${base}/entities?name=initech&as_of=2025-06-01T00:00:00Z`, { key: a.keys.viewer });
  assert.equal(then.body.data[0].attributes.ceo, 'Bill');
  const one = await srv.request('GET', `${base}/entities/${e1.body.id}`, { key: a.keys.viewer });
  assert.equal(one.body.facts.filter((f) => f.attribute === 'ceo').length, 2);
  const rel = await srv.request('POST', `${base}/relations`, {
    key: a.keys.operator, body: { from: { entity_type: 'city', name: 'Austin' }, to: { entity_type: 'state', name: 'Texas' }, relation_type: 'located_in' },
  });
  assert.equal(rel.status, 201, rel.text);
  const p = await srv.request('GET', `${base}/entities/${e1.body.id}/paths?to=${rel.body.to_entity_id}&max_hops=2`, { key: a.keys.viewer });
  assert.equal(p.status, 200, p.text);
  assert.equal(p.body.data[0].hops, 2);
  const n = await srv.request('GET', `${base}/entities/${e1.body.id}/neighbors`, { key: a.keys.viewer });
  assert.equal(n.body.data[0].entity.name, 'Austin');
  const g = await srv.request('GET', '/api/v1/knowledge/graph', { key: a.keys.viewer });
  assert.equal(g.body.nodes.length, 3);
  assert.equal(g.body.edges.length, 2);
  // the other tenant sees nothing of it
  const bg = await srv.request('GET', '/api/v1/knowledge/graph', { key: b.keys.viewer });
  assert.equal(bg.body.nodes.length, 0);
  for (const path of [`/api/v1/knowledge/entities/${e1.body.id}`, `/api/v1/knowledge/entities/${e1.body.id}/neighbors`,
    `/api/v1/tenants/${a.id}/knowledge/graph`]) {
    const x = await srv.request('GET', path, { key: b.keys.viewer });
    assert.equal(x.status, 404, `${path}: ${x.text}`);
  }
  const bad = await srv.request('GET', `${base}/entities?as_of=yesterday`, { key: a.keys.viewer });
  assert.equal(bad.status, 400);
  assert.match(bad.body.detail, /as_of/);
});

test('a restart keeps memories, the index and the graph', async () => {
  const [a] = T;
  const agent = a.agents[0];
  const m = await remember(a, agent, 'The quarterly report goes to the board on Fridays');
  const dataDir = srv.dataDir;
  const dbUrl = srv.databaseUrl;
  srv.child.kill('SIGTERM');
  const { code } = await srv.exited;
  assert.equal(code, 0, srv.raw.join('').slice(-3000));
  const first = srv;
  srv = await startServer({ dataDir, args: BACKEND === 'postgres' ? ['--database-url', dbUrl] : [] });
  srv.firstDb = first.db;
  const r = await recall(a, agent, 'quarterly report board');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.data[0].id, m.id);
  const g = await srv.request('GET', '/api/v1/knowledge/entities?name=initech', { key: a.keys.viewer });
  assert.equal(g.body.data.length, 1);
});

test('an unknown agent id and a malformed one answer 404', async () => {
  const [a] = T;
  for (const id of [randomUUID(), 'not-a-uuid']) {
    const r = await recall(a, id, 'x');
    assert.equal(r.status, 404, r.text);
  }
});

test('the CLI remembers, recalls, lists and learns through the API', () => {
  const [a] = T;
  const agent = a.agents[1];
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AP_')));
  const env = { ...base, AP_URL: srv.url, AP_API_KEY: a.keys.operator };
  const cli = (...args) => execFileSync(BIN, args, { env, encoding: 'utf8' });
  const m = JSON.parse(cli('memory', 'remember', '--agent', agent, '--type', 'skill', '--importance', '0.8',
    'Writes SQL that runs on SQLite and PostgreSQL', '-o', 'json'));
  assert.equal(m.memory_type, 'skill');
  const r = JSON.parse(cli('memory', 'recall', '--agent', agent, '--tenant', a.id, 'SQL on PostgreSQL', '-o', 'json'));
  assert.equal(r.data[0].id, m.id);
  assert.match(cli('memory', 'list', '--agent', agent), new RegExp(m.id));
  assert.match(cli('memory', 'get', m.id, '--query', 'sql'), /similarity/);
  const c = JSON.parse(cli('memory', 'consolidate', '--agent', agent, '--dry-run'));
  assert.equal(c.dry_run, true);
  const e = JSON.parse(cli('knowledge', 'learn', '--type', 'tool', '--name', 'psql', '--attr', 'kind=cli'));
  assert.equal(e.attributes.kind, 'cli');
  assert.match(cli('knowledge', 'query', '--name', 'psql'), /psql/);
  assert.match(cli('memory', 'forget', m.id), /done/);
  assert.throws(() => execFileSync(BIN, ['memory', 'recall', '--agnt', agent, 'x'], { env, stdio: 'pipe' }), /unknown option "--agnt"/);
});

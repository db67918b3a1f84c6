// Agent memory across processes: two servers on one database (two nodes,
// each with its own data directory and index files) see each other's
// remembers, forgets, consolidations and access counts at their next
// recall; and a restart loads the saved index partition at start instead
// of rebuilding it (docs/memory.md, "The index").
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { startServer, tenantWithKeys, BACKEND } from './lib/server.mjs';
import { makeAgent } from './lib/agents.mjs';

const skip = process.env.AP_TEST_EXTERNAL_URL ? 'starts its own servers' : false;
const toDrop = [];
after(() => {
  for (const db of toDrop) execFileSync('psql', [process.env.AP_TEST_PG_ADMIN_URL, '-qAtc', `DROP DATABASE IF EXISTS ${db}`]);
});

// A second node on the store of `a`: its own data directory (the admin and
// master keys copied, as an operator provisions them on every node).
async function secondNode(a, env = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'agentprov-e2e-'));
  for (const f of ['admin.key', 'master.key']) if (existsSync(join(a.dataDir, f))) copyFileSync(join(a.dataDir, f), join(dir, f));
  const b = await startServer({ dataDir: dir, db: a.db, env,
    args: BACKEND === 'postgres' ? [] : ['--database-url', a.databaseUrl] });
  b.db = null; // the first node's handle drops the database
  return b;
}

const base = (t, agent) => `/api/v1/tenants/${t.id}/agents/${agent}/memory`;

async function remember(srv, t, agent, content, extra = {}) {
  const r = await srv.request('POST', base(t, agent), { key: t.keys.operator, body: { content, memory_type: 'fact', importance: 0.5, ...extra } });
  assert.equal(r.status, 201, r.text);
  return r.body;
}

async function recall(srv, t, agent, query, limit = 1) {
  const r = await srv.request('POST', `${base(t, agent)}:recall`, { key: t.keys.viewer, body: { query, limit } });
  assert.equal(r.status, 200, r.text);
  return r.body.data;
}

async function until(what, fn, ms = 10000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('two nodes on one database: what one remembers, forgets or consolidates, the other recalls at once', { skip }, async () => {
  const a = await startServer();
  if (a.db) toDrop.push(a.db);
  let b;
  try {
    const t = await tenantWithKeys(a, 'Two nodes');
    const agent = await makeAgent(a, t.id, 'Shared memory agent');
    const keep = await remember(a, t, agent, 'The audit committee meets every second Tuesday');
    b = await secondNode(a);
    // b loads its partition with its first recall
    assert.equal((await recall(b, t, agent, 'audit committee'))[0].id, keep.id);

    // remembered on a: b's index has it (limit 1: a stale index would answer the old one)
    // (a query close to both, so the older one answers when the new one is gone)
    const m = await remember(a, t, agent, 'The audit fire drill is on Friday at ten', { importance: 0.9 });
    const r1 = await recall(b, t, agent, 'audit fire drill Friday');
    assert.equal(r1.length, 1);
    assert.equal(r1[0].id, m.id);

    // forgotten on a: gone from b's index (not an empty answer after re-reading a stale hit)
    const del = await a.request('DELETE', `${base(t, agent)}/${m.id}`, { key: t.keys.operator });
    assert.equal(del.status, 204, del.text);
    const r2 = await recall(b, t, agent, 'audit fire drill Friday');
    assert.equal(r2.length, 1);
    assert.equal(r2[0].id, keep.id);

    // consolidated on a: the duplicate merged away is gone on b, the kept one has the higher importance
    const d1 = await remember(a, t, agent, 'Parking passes are renewed in March', { importance: 0.2 });
    const d2 = await remember(a, t, agent, 'Parking passes are renewed in March!', { importance: 0.8 });
    assert.equal((await recall(b, t, agent, 'parking passes renewed', 5)).length >= 2, true);
    const c = await a.request('POST', `${base(t, agent)}:consolidate`, { key: t.keys.operator, body: {} });
    assert.equal(c.status, 200, c.text);
    assert.deepEqual(c.body.merged, [{ kept: d1.id, removed: d2.id }]);
    const r3 = await recall(b, t, agent, 'parking passes renewed', 5);
    assert.ok(r3.some((x) => x.id === d1.id && x.importance === 0.8 && Math.abs(x.score_parts.importance - 0.8) < 1e-6), JSON.stringify(r3));
    assert.ok(!r3.some((x) => x.id === d2.id));

    // access counts counted on b reach a (written in the background)
    // (b's view: the database plus what b has counted and not yet written)
    const before = (await b.request('GET', `${base(t, agent)}/${keep.id}`, { key: t.keys.viewer })).body.access_count;
    assert.ok(before >= 2); // b's earlier recalls
    const r4 = await recall(b, t, agent, 'audit committee');
    assert.equal(r4[0].id, keep.id);
    assert.equal(r4[0].access_count, before + 1);
    await until('the access count on the other node', async () => {
      const g = await a.request('GET', `${base(t, agent)}/${keep.id}`, { key: t.keys.viewer });
      return g.body.access_count === before + 1;
    });
  } finally {
    await b?.stop();
    await a.stop();
  }
});

test('a restart loads the saved index partition at start, without rebuilding its graph', { skip }, async () => {
  const env = { AP_MEMORY_HNSW_MIN: '40' };
  let s = await startServer({ env });
  if (s.db) toDrop.push(s.db);
  const dataDir = s.dataDir;
  const t = await tenantWithKeys(s, 'Saved index');
  const agent = await makeAgent(s, t.id, 'Many memories');
  const words = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india'];
  let target;
  for (let i = 0; i < 60; i++) {
    const m = await remember(s, t, agent, `${words[i % 9]} ${words[(i * 4 + 1) % 9]} report number ${i}`);
    if (i === 17) target = m;
  }
  // the first recall loads the partition; past 40 memories it gets a graph, built and saved in the background
  assert.equal((await recall(s, t, agent, 'report number 17', 3))[0].id, target.id);
  await until('the graph to be built and saved', () =>
    s.logs.some((l) => l.msg === 'memory index graphs built') && s.logs.some((l) => l.msg === 'memory index file saved'), 60000)
    .catch((e) => { throw new Error(e.message + '\n' + s.raw.join('').split('\n').filter((l) => !l.includes('"request"')).join('\n')); });
  const files = readdirSync(join(dataDir, 'memory-index', t.id));
  assert.equal(files.length, 1);
  assert.match(files[0], new RegExp(`^${agent}-[0-9a-f]{16}\\.idx$`));
  // a remember after the save: the file is stale by one change
  const late = await remember(s, t, agent, 'kilo lima report number 60');
  s.child.kill('SIGTERM');
  assert.equal((await s.exited).code, 0, s.raw.join('').slice(-3000));
  const first = s;
  s = await startServer({ dataDir, env, db: first.db });
  try {
    // loaded at start by the warm-up, from the file, graph included
    const loaded = await until('the partition file to load', () => s.logs.find((l) => l.msg === 'memory index file loaded'));
    assert.equal(loaded.entries, 61);
    assert.ok(!s.logs.some((l) => l.msg === 'memory index file not used'), JSON.stringify(s.logs.filter((l) => l.level !== 'info')));
    assert.equal((await recall(s, t, agent, 'report number 17', 3))[0].id, target.id);
    assert.equal((await recall(s, t, agent, 'kilo lima report number 60', 1))[0].id, late.id);
    assert.ok(!s.logs.some((l) => l.msg === 'memory index graphs built'), 'the graph was rebuilt');
  } finally {
    s.db = null;
    await s.stop();
  }
});

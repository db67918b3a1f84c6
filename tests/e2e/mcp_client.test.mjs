// External MCP servers as agents' tools: the official reference servers
// @modelcontextprotocol/server-memory and server-everything, run over
// stdio through the platform administrator's allowlist, and
// server-everything also over Streamable HTTP; discovery, calls, limits,
// the sealed Authorization header, and what a stdio server may see.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startServer, tenantWithKeys } from './lib/server.mjs';

const NODE = process.execPath;
const MEMORY = resolve('node_modules/@modelcontextprotocol/server-memory/dist/index.js');
const EVERYTHING = resolve('node_modules/@modelcontextprotocol/server-everything/dist/index.js');

let srv;
let T;
let dir;
let everythingHttp; // { child, url }

async function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => res(port)); });
    s.on('error', rej);
  });
}

async function startEverythingHttp() {
  const port = await freePort();
  const child = spawn(NODE, [EVERYTHING, 'streamableHttp'], {
    env: { PATH: process.env.PATH, PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  await new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`server-everything did not start: ${log}`)), 15000);
    const on = (c) => { log += c; if (/listening on port/.test(log)) { clearTimeout(timer); res(); } };
    child.stdout.on('data', on);
    child.stderr.on('data', on);
    child.on('exit', (code) => { clearTimeout(timer); rej(new Error(`server-everything exited ${code}: ${log}`)); });
  });
  child.removeAllListeners('exit');
  return { child, url: `http://127.0.0.1:${port}/mcp`, log: () => log };
}

// Processes whose parent is pid (children of the platform).
function childrenOf(pid) {
  const out = [];
  for (const p of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(p));
    } catch { /* gone */ }
  }
  return out;
}

const api = (method, path, opts = {}) => srv.request(method, `/api/v1/tenants/${T.id}${path}`, { key: T.keys.tenant_admin, ...opts });

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'agentprov-mcp-client-'));
  const allow = {
    memory: { argv: [NODE, MEMORY], env: { MEMORY_FILE_PATH: join(dir, 'memory.jsonl') } },
    everything: [NODE, EVERYTHING, 'stdio'],
    broken: ['/nonexistent/mcp-server'],
  };
  srv = await startServer({ env: { AP_MCP_STDIO_ALLOW: JSON.stringify(allow), AP_TEST_SECRET_MARKER: 'do-not-leak-42' } });
  T = await tenantWithKeys(srv, 'Mcp Client Tenant');
  everythingHttp = await startEverythingHttp();
});
after(async () => {
  everythingHttp?.child.kill('SIGTERM');
  await srv?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function register(body) {
  const r = await api('POST', '/mcp-servers', { body });
  assert.equal(r.status, 201, r.text);
  const d = await api('POST', `/mcp-servers/${r.body.id}:discover`);
  assert.equal(d.status, 200, d.text);
  return d.body;
}

async function call(server, tool, args, extra = {}) {
  return api('POST', `/mcp-servers/${server.id}/tools/${tool}:call`, { key: T.keys.operator, body: { arguments: args, ...extra } });
}

test('server-memory over stdio: discovered, and its tools keep a knowledge graph across calls', async () => {
  const s = await register({ name: 'memory', command: 'memory' });
  assert.equal(s.transport, 'stdio');
  assert.equal(s.server_info.name, 'memory-server');
  const names = s.tools.map((t) => t.name);
  for (const n of ['create_entities', 'create_relations', 'add_observations', 'read_graph', 'search_nodes', 'open_nodes'])
    assert.ok(names.includes(n), `${n} in ${names}`);
  assert.equal(s.tool_count, names.length);
  const ce = await call(s, 'create_entities', { entities: [
    { name: 'Ann', entityType: 'person', observations: ['likes green tea'] },
    { name: 'Acme', entityType: 'company', observations: ['makes anvils'] },
  ] });
  assert.equal(ce.status, 200, ce.text);
  assert.notEqual(ce.body.result.isError, true, ce.text);
  const cr = await call(s, 'create_relations', { relations: [{ from: 'Ann', to: 'Acme', relationType: 'works_at' }] });
  assert.equal(cr.status, 200, cr.text);
  const sn = await call(s, 'search_nodes', { query: 'tea' });
  assert.equal(sn.status, 200, sn.text);
  assert.deepEqual(sn.body.result.structuredContent.entities.map((e) => e.name), ['Ann']);
  const rg = await call(s, 'read_graph', {});
  assert.deepEqual(rg.body.result.structuredContent.relations, [{ from: 'Ann', to: 'Acme', relationType: 'works_at' }]);
  // the server's own file holds it: each call was a fresh process
  assert.match(readFileSync(join(dir, 'memory.jsonl'), 'utf8'), /works_at/);
  // a tool that says no is a 200 with isError
  const bad = await call(s, 'create_entities', { entities: 'not a list' });
  assert.equal(bad.status, 200, bad.text);
  assert.equal(bad.body.result.isError, true);
  // audited without arguments or results
  const a = await srv.request('GET', '/api/v1/audit?action=mcp.client.call&limit=500', { key: T.keys.auditor });
  const mine = a.body.data.filter((e) => e.resource_id === s.id);
  assert.equal(mine.length, 5);
  assert.ok(mine.every((e) => e.changes.server === 'memory' && typeof e.changes.duration_ms === 'number'));
  assert.ok(!JSON.stringify(mine).includes('green tea'));
  assert.equal(childrenOf(srv.child.pid).length, 0, 'every server process was reaped');
});

test('server-everything over stdio: tools, a clean environment, deadlines and output bounds', async () => {
  const s = await register({ name: 'everything', command: 'everything' });
  for (const n of ['echo', 'get-sum', 'get-env', 'trigger-long-running-operation', 'get-tiny-image'])
    assert.ok(s.tools.some((t) => t.name === n), n);
  const echo = await call(s, 'echo', { message: 'hello from an agent' });
  assert.equal(echo.status, 200, echo.text);
  assert.equal(echo.body.result.content[0].text, 'Echo: hello from an agent');
  const sum = await call(s, 'get-sum', { a: 19, b: 23 });
  assert.match(sum.body.result.content[0].text, /42/);
  // the child sees PATH, HOME, LANG and its entry's env: nothing of the platform's
  const env = await call(s, 'get-env', {});
  assert.equal(env.status, 200, env.text);
  const seen = env.body.result.content[0].text;
  assert.ok(!/AP_|do-not-leak-42|ASAN_OPTIONS/.test(seen), seen);
  assert.match(seen, /PATH/);
  // past the deadline: 504, quickly, and the process is gone
  const t0 = Date.now();
  const slow = await call(s, 'trigger-long-running-operation', { duration: 30, steps: 3 }, { timeout_ms: 1500 });
  assert.equal(slow.status, 504, slow.text);
  assert.equal(slow.body.type, 'urn:agentprov:problem:mcp-timeout');
  assert.ok(Date.now() - t0 < 8000, `took ${Date.now() - t0} ms`);
  // an answer past max_output_bytes: 502 naming the bound
  const big = await call(s, 'get-tiny-image', {}, { max_output_bytes: 300 });
  assert.equal(big.status, 502, big.text);
  assert.equal(big.body.type, 'urn:agentprov:problem:mcp-output-too-large');
  assert.match(big.body.detail, /more than 300 bytes/);
  const ok = await call(s, 'get-tiny-image', {});
  assert.equal(ok.body.result.content.some((c) => c.type === 'image'), true);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(childrenOf(srv.child.pid).length, 0, 'killed and reaped after the deadline');
});

test('server-everything over Streamable HTTP with a sealed Authorization header', async () => {
  const s = await register({ name: 'everything-http', url: everythingHttp.url, auth_header: 'Bearer sealed-token-7731' });
  assert.equal(s.transport, 'http');
  assert.equal(s.auth_header_set, true);
  assert.ok(s.tools.some((t) => t.name === 'echo'));
  assert.ok(['2025-06-18', '2025-03-26'].includes(s.protocol_version));
  const echo = await call(s, 'echo', { message: 'over http' });
  assert.equal(echo.status, 200, echo.text);
  assert.equal(echo.body.result.content[0].text, 'Echo: over http');
  const wrong = await call(s, 'get-sum', { a: 'x' });
  assert.equal(wrong.status, 200);
  assert.equal(wrong.body.result.isError, true);
  // sessions are ended after each call
  assert.match(everythingHttp.log(), /termination request/);
  // the header is never shown, logged or audited
  const g = await api('GET', `/mcp-servers/${s.id}`);
  const l = await api('GET', '/mcp-servers');
  const a = await srv.request('GET', '/api/v1/audit?limit=500', { key: T.keys.auditor });
  for (const text of [g.text, l.text, a.text, srv.raw.join('')]) assert.ok(!text.includes('sealed-token-7731'));
  // the platform's own key is not sent to the server either
  const unreachable = await register({ name: 'gone', url: 'http://127.0.0.1:9/mcp' }).catch((e) => e);
  assert.match(String(unreachable), /502/);
});

test('registration rules: allowlist, one transport, no credentials in urls, names', async () => {
  const bad = async (body, status, re) => {
    const r = await api('POST', '/mcp-servers', { body });
    assert.equal(r.status, status, r.text);
    assert.match(r.body.detail, re);
  };
  await bad({ name: 'x', command: 'bash -c id' }, 400, /command.*allowed: \["memory","everything","broken"\]/);
  await bad({ name: 'x', command: 'memory', url: 'http://h/mcp' }, 400, /exactly one of "url" and "command"/);
  await bad({ name: 'x' }, 400, /exactly one/);
  await bad({ name: 'x', url: 'http://user:pw@h/mcp' }, 400, /user information/);
  await bad({ name: 'x', url: 'ftp://h/mcp' }, 400, /http:\/\/ or https:\/\//);
  await bad({ name: 'x', url: 'http://h/mcp', auth_header: 'Bearer a\r\nX-Evil: 1' }, 400, /line break/);
  await bad({ name: 'x', command: 'memory', auth_header: 'Bearer a' }, 400, /url servers only/);
  await bad({ name: 'Has Space', url: 'http://h/mcp' }, 400, /\[a-z0-9_-\]/);
  await bad({ name: 'x', url: 'http://h/mcp', extra: 1 }, 400, /field "extra" is not accepted/);
  const r = await api('POST', '/mcp-servers', { body: { name: 'dup', url: 'http://h/mcp' } });
  assert.equal(r.status, 201);
  await bad({ name: 'dup', url: 'http://h/mcp' }, 409, /named "dup" exists/);
  // not discovered yet: calls say so
  const nd = await api('POST', `/mcp-servers/${r.body.id}/tools/echo:call`, { body: {} });
  assert.equal(nd.status, 404);
  assert.match(nd.body.detail, /no discovered tools/);
  // an allowlisted program that does not exist: 503 saying so
  const br = await api('POST', '/mcp-servers', { body: { name: 'broken', command: 'broken' } });
  const d = await api('POST', `/mcp-servers/${br.body.id}:discover`);
  assert.equal(d.status, 502, d.text);
  assert.match(d.body.detail, /not found/);
  // removal; a viewer may list but not register
  assert.equal((await api('DELETE', `/mcp-servers/${r.body.id}`)).status, 204);
  assert.equal((await api('GET', `/mcp-servers/${r.body.id}`)).status, 404);
  const v = await srv.request('GET', '/api/v1/mcp-servers', { key: T.keys.viewer });
  assert.equal(v.status, 200);
  assert.ok(v.body.data.some((s) => s.name === 'memory'));
  const vp = await srv.request('POST', '/api/v1/mcp-servers', { key: T.keys.operator, body: { name: 'op', url: 'http://h/mcp' } });
  assert.equal(vp.status, 403);
});

test('CLI: agentprov mcp servers create, discover, call, list, delete (header from the environment)', async () => {
  const { spawnSync } = await import('node:child_process');
  const { BIN } = await import('./lib/server.mjs');
  const run = (...args) => spawnSync(BIN, ['mcp', 'servers', ...args], {
    encoding: 'utf8', env: { ...process.env, AP_URL: srv.url, AP_API_KEY: T.keys.tenant_admin, CLI_MCP_AUTH: 'Bearer cli-secret-55' },
  });
  const c = run('create', '--name', 'cli-everything', '--command', 'everything', '-o', 'json');
  assert.equal(c.status, 0, c.stderr);
  const id = JSON.parse(c.stdout).id;
  const h = run('create', '--name', 'cli-http', '--url', everythingHttp.url, '--auth-header-env', 'CLI_MCP_AUTH', '-o', 'json');
  assert.equal(h.status, 0, h.stderr);
  assert.equal(JSON.parse(h.stdout).auth_header_set, true);
  assert.ok(!h.stdout.includes('cli-secret-55'));
  const d = run('discover', id);
  assert.equal(d.status, 0, d.stderr);
  assert.ok(JSON.parse(d.stdout).tools.some((t) => t.name === 'echo'));
  const call = run('call', id, 'echo', '--args', '{"message":"from the cli"}', '--timeout-ms', '20000');
  assert.equal(call.status, 0, call.stderr);
  assert.equal(JSON.parse(call.stdout).result.content[0].text, 'Echo: from the cli');
  const l = run('list');
  assert.equal(l.status, 0, l.stderr);
  assert.match(l.stdout, /cli-everything/);
  const missing = run('create', '--name', 'x', '--url', 'http://h/mcp', '--auth-header-env', 'NOT_SET_ANYWHERE');
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /NOT_SET_ANYWHERE is not set/);
  const bad = run('create', '--name', 'x', '--command', 'rm -rf /');
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /command not allowed/);
  assert.equal(run('delete', id).status, 0);
  assert.equal(run('get', id).status, 1);
});

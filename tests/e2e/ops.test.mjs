// Running the platform: Prometheus metrics (valid per promtool), structured
// request logs without secrets, configuration by flags and AP_* variables,
// graceful shutdown on SIGTERM/SIGINT (in-flight requests finish, new
// connections are refused), the first-start admin key, readiness, and the
// offline purge of deleted tenants.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { statSync, readFileSync, mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import http from 'node:http';
import { startServer, tenantWithKeys, BIN, BACKEND } from './lib/server.mjs';

const PLATFORM = '00000000-0000-0000-0000-000000000000';
const KEY = /apk_[A-Za-z0-9_-]{16}_[A-Za-z0-9_-]{43}/;
const sleep = (ms) => new Promise((res) => setTimeout(res, ms));
const cleanEnv = () => Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AP_')));

function cli(args, env = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, args, { env: { ...cleanEnv(), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout: out, stderr: err }));
  });
}

// A new empty database on the PostgreSQL test cluster; null on SQLite.
function newPgDb(password) {
  if (BACKEND !== 'postgres') return null;
  const name = 'ops_' + randomBytes(6).toString('hex');
  execFileSync('psql', [process.env.AP_TEST_PG_ADMIN_URL, '-qAtc', `CREATE DATABASE ${name} OWNER agentprov`]);
  const u = new URL(process.env.AP_TEST_PG_URL);
  u.pathname = '/' + name;
  if (password) u.password = password;
  return { name, url: u.toString(), drop: () => execFileSync('psql', [process.env.AP_TEST_PG_ADMIN_URL, '-qAtc', `DROP DATABASE IF EXISTS ${name}`]) };
}

// SQL on the store behind a server (superuser on PostgreSQL).
function sql(dbUrl, stmt) {
  let r;
  if (dbUrl.startsWith('sqlite:')) {
    r = spawnSync('sqlite3', [dbUrl.slice(7), stmt], { encoding: 'utf8' });
  } else {
    const u = new URL(process.env.AP_TEST_PG_ADMIN_URL);
    u.pathname = new URL(dbUrl).pathname;
    r = spawnSync('psql', [u.toString(), '-v', 'ON_ERROR_STOP=1', '-qAtc', stmt], { encoding: 'utf8' });
  }
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

// `serve` started by hand (for configuration through the environment).
function serve(args, env) {
  const child = spawn(BIN, ['serve', ...args], { env: { ...cleanEnv(), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs = [];
  let raw = '';
  let buf = '';
  const exited = new Promise((res) => child.on('exit', (code, signal) => res({ code, signal })));
  const ready = new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error('not ready:\n' + raw)), 20000);
    child.stderr.on('data', (d) => {
      raw += d;
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        let rec;
        try { rec = JSON.parse(line); } catch { rec = { unparsed: line }; }
        logs.push(rec);
        if (rec.msg === 'ready') { clearTimeout(timer); res(rec); }
      }
    });
    exited.then(({ code }) => { clearTimeout(timer); rej(new Error(`exited ${code}:\n${raw}`)); });
  });
  return { child, logs, ready, exited, raw: () => raw };
}

async function metrics(srv) {
  const r = await fetch(srv.url + '/metrics');
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  return r.text();
}
function sample(text, name, labels) {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/);
    if (!m || m[1] !== name) continue;
    const have = m[2] ? m[2].split(/,(?=[a-z_]+=")/) : [];
    if (want.every((w) => have.includes(w)) && have.length === want.length) return Number(m[3]);
  }
  return undefined;
}

async function waitFor(pred, ms = 10000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (pred()) return true;
    await sleep(20);
  }
  return false;
}

let srv;
before(async () => { srv = await startServer(); });
after(async () => { if (srv) await srv.stop(); });

test('/metrics passes promtool after traffic and counts requests by route and status', async () => {
  const t = await tenantWithKeys(srv, 'Metered');
  await srv.request('GET', '/api/v1/nowhere');
  await srv.request('DELETE', '/healthz');
  await srv.request('GET', '/api/v1/tenants', { key: null });
  await srv.request('POST', '/api/v1/users', { key: t.keys.viewer, body: { email: 'x@m.example', role: 'viewer' } });
  await srv.request('POST', '/api/v1/users', { key: t.keys.tenant_admin, body: { email: 'bad' } });
  const before1 = await metrics(srv);
  const route = { method: 'GET', route: '/api/v1/tenants/{tenant_id}/users' };
  const base = sample(before1, 'agentprov_http_requests_total', { ...route, status: '200' }) ?? 0;
  const hbase = sample(before1, 'agentprov_http_request_duration_seconds_count', route) ?? 0;
  for (let i = 0; i < 3; i++) assert.equal((await srv.request('GET', `/api/v1/tenants/${t.id}/users`)).status, 200);
  // a request is counted when it completes (after its answer is sent), so
  // the last one may land a moment after the client has read it
  let text = await metrics(srv);
  for (let i = 0; i < 100 && sample(text, 'agentprov_http_request_duration_seconds_count', route) !== hbase + 3; i++) {
    await sleep(20);
    text = await metrics(srv);
  }

  const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  assert.equal(check.status, 0, `promtool check metrics:\n${check.stdout}${check.stderr}`);

  assert.equal(sample(text, 'agentprov_http_requests_total', { ...route, status: '200' }), base + 3);
  assert.equal(sample(text, 'agentprov_http_request_duration_seconds_count', route), hbase + 3);
  assert.equal(sample(text, 'agentprov_http_requests_total', { method: 'POST', route: '/api/v1/tenants', status: '201' }) >= 1, true);
  assert.ok(sample(text, 'agentprov_http_requests_total', { method: 'POST', route: '/api/v1/users', status: '403' }) >= 1);
  assert.ok(sample(text, 'agentprov_http_requests_total', { method: 'POST', route: '/api/v1/users', status: '400' }) >= 1);
  assert.ok(sample(text, 'agentprov_http_requests_total', { method: 'GET', route: '/api/v1/tenants', status: '401' }) >= 1);
  assert.ok(sample(text, 'agentprov_http_requests_total', { method: '', route: 'unmatched', status: '404' }) >= 1);
  assert.match(text, /^# TYPE agentprov_http_requests_total counter$/m);
  // the latency histogram: cumulative buckets ending in +Inf = count
  assert.match(text, /^# TYPE agentprov_http_request_duration_seconds histogram$/m);
  const les = [...text.matchAll(/^agentprov_http_request_duration_seconds_bucket\{method="GET",route="\/api\/v1\/tenants\/\{tenant_id\}\/users",le="([^"]+)"\} (\d+)$/gm)];
  assert.ok(les.length >= 2);
  assert.equal(les.at(-1)[1], '+Inf');
  assert.equal(Number(les.at(-1)[2]), hbase + 3);
  for (let i = 1; i < les.length; i++) assert.ok(Number(les[i][2]) >= Number(les[i - 1][2]), 'buckets are cumulative');
  assert.ok(sample(text, 'agentprov_http_request_duration_seconds_sum', route) > 0);
  // store pool gauges and build info
  const kind = BACKEND === 'postgres' ? 'postgres' : 'sqlite';
  assert.match(text, /^# TYPE agentprov_store_pool_connections gauge$/m);
  assert.ok(sample(text, 'agentprov_store_pool_connections', { backend: kind }) >= 1);
  assert.ok(sample(text, 'agentprov_store_pool_in_use', { backend: kind }) >= 0);
  assert.ok(sample(text, 'agentprov_store_pool_waits_total', { backend: kind }) >= 0);
  const version = (await cli(['--version'])).stdout.trim().split(' ')[1];
  assert.equal(sample(text, 'agentprov_build_info', { version }), 1);
  const start = sample(text, 'agentprov_start_time_seconds', {});
  assert.ok(Math.abs(start - Date.now() / 1000) < 3600, `start time ${start}`);
});

// Histogram invariants of one scrape: per series, cumulative buckets never
// decrease, +Inf equals _count and no finite bucket exceeds it.
function checkHistograms(text) {
  const series = new Map();
  for (const m of text.matchAll(/^agentprov_http_request_duration_seconds_(bucket|count)\{(.*?)(?:,le="([^"]+)")?\} (\d+)$/gm)) {
    const s = series.get(m[2]) ?? { buckets: [], count: null };
    if (m[1] === 'bucket') s.buckets.push([m[3], Number(m[4])]);
    else s.count = Number(m[4]);
    series.set(m[2], s);
  }
  assert.ok(series.size > 0);
  for (const [labels, s] of series) {
    for (let i = 1; i < s.buckets.length; i++) assert.ok(s.buckets[i][1] >= s.buckets[i - 1][1], `${labels}: buckets decrease`);
    assert.equal(s.buckets.at(-1)[0], '+Inf');
    assert.equal(s.buckets.at(-1)[1], s.count, `${labels}: +Inf != _count`);
  }
}

test('a scrape racing with requests still shows consistent histograms', async () => {
  let stop = false;
  const load = Array.from({ length: 6 }, async () => {
    while (!stop) await srv.request('GET', '/healthz', { key: null });
  });
  try {
    for (let i = 0; i < 40; i++) checkHistograms(await metrics(srv));
  } finally {
    stop = true;
    await Promise.all(load);
  }
});

test('request logs are structured and carry no secret', async () => {
  const t = await tenantWithKeys(srv, 'Logged');
  const r = await srv.request('GET', `/api/v1/tenants/${t.id}/users`, { key: t.keys.viewer });
  const pub = await srv.request('GET', '/healthz', { key: null });
  const bad = await srv.request('POST', '/api/v1/users', { key: t.keys.viewer, body: {} });
  const ids = [r, pub, bad].map((x) => x.headers.get('x-request-id'));
  assert.ok(await waitFor(() => ids.every((id) => srv.logs.some((l) => l.request_id === id))), 'every request is logged');
  for (const rec of srv.logs) {
    assert.equal(rec.unparsed, undefined, `a log line is not JSON: ${rec.unparsed}`);
    assert.match(rec.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.ok(['debug', 'info', 'warn', 'error'].includes(rec.level));
    assert.equal(typeof rec.msg, 'string');
  }
  const reqs = srv.logs.filter((l) => l.msg === 'request');
  assert.ok(reqs.length > 5);
  for (const l of reqs) {
    for (const f of ['time', 'level', 'request_id', 'tenant_id', 'method', 'route', 'status', 'duration_ms']) {
      assert.ok(f in l, `request log line without ${f}: ${JSON.stringify(l)}`);
    }
    assert.equal(typeof l.status, 'number');
    assert.equal(typeof l.duration_ms, 'number');
    assert.ok(l.duration_ms >= 0);
  }
  const byId = (res) => reqs.find((l) => l.request_id === res.headers.get('x-request-id'));
  const lr = byId(r);
  assert.ok(lr, 'the request id in the log is the X-Request-Id header');
  assert.equal(lr.tenant_id, t.id);
  assert.equal(lr.route, '/api/v1/tenants/{tenant_id}/users');
  assert.equal(lr.status, 200);
  assert.equal(byId(pub).tenant_id, null);
  assert.equal(byId(pub).route, '/healthz');
  assert.equal(byId(bad).status, 403);
  const all = srv.raw.join('');
  for (const k of Object.values(t.keys)) {
    assert.ok(!all.includes(k), 'a key is in the logs');
    assert.ok(!all.includes(k.slice(21)), 'a key secret is in the logs');
  }
  assert.ok(!all.includes(srv.adminKey.slice(21)));
});

test('the database password never reaches the logs; the starting line masks it', { skip: BACKEND !== 'postgres' && 'PostgreSQL only' }, async () => {
  const pw = 'pw-' + randomBytes(12).toString('hex');
  const db = newPgDb(pw);
  let s;
  try {
    s = await startServer({ args: ['--database-url', db.url] });
    const t = await tenantWithKeys(s, 'Password Hygiene');
    await s.request('GET', `/api/v1/tenants/${t.id}/audit`);
    await s.request('GET', '/readyz', { key: null });
    await s.request('GET', '/metrics', { key: null });
    const starting = s.logs.find((l) => l.msg === 'starting');
    // masked: either whole ("***", database-url is a secret option) or
    // just the password (postgres://agentprov:***@host/db)
    assert.match(starting.config['database-url'], /^(\*\*\*|postgres:\/\/agentprov:\*\*\*@127\.0\.0\.1:\d+\/ops_\w+)$/);
    assert.equal(s.logs.find((l) => l.msg === 'ready').store, 'postgres');
    await s.stop();
    const all = s.raw.join('');
    assert.ok(!all.includes(pw), 'the database password is in the logs');
    s = null;
    // nor in the errors of a command that cannot connect
    const bad = new URL(db.url);
    bad.port = '1';
    const v = await cli(['audit', 'verify', '--database-url', bad.toString()]);
    assert.equal(v.code, 3);
    assert.ok(!v.stderr.includes(pw), v.stderr);
  } finally {
    if (s) await s.stop();
    db.drop();
  }
});

test('serve --help lists every option with its AP_ variable; bad options exit 2', async () => {
  const h = await cli(['serve', '--help']);
  assert.equal(h.code, 0);
  const opts = [...h.stdout.matchAll(/^\s+--([a-z-]+)(?: VALUE)?\s.*\n\s+env (\S+), default/gm)].map((m) => [m[1], m[2]]);
  const names = opts.map(([o]) => o);
  for (const o of ['listen', 'data-dir', 'database-url', 'log-level', 'threads', 'db-pool', 'max-body', 'shutdown-timeout', 'retention-days']) {
    assert.ok(names.includes(o), `--${o} is not in serve --help:\n${h.stdout}`);
  }
  for (const [o, env] of opts) assert.equal(env, 'AP_' + o.toUpperCase().replaceAll('-', '_'));
  assert.equal([...h.stdout.matchAll(/^\s+--/gm)].length, opts.length, 'every option has its variable');

  const cases = [
    [['--bogus'], {}, /unknown option/],
    [['--listen'], {}, /needs a value/],
    [['--listen', 'nowhere'], {}, /invalid --listen "nowhere"/],
    [['--listen', '127.0.0.1:70000'], {}, /invalid --listen/],
    [['--listen', 'localhost:8080', '--data-dir', join(tmpdir(), 'ap-never-' + randomBytes(4).toString('hex'))], {}, /invalid --listen "localhost:8080"/],
    [['--listen', '999.1.1.1:80'], {}, /invalid --listen/],
    [['--threads', '0'], {}, /invalid --threads "0"/],
    [['--threads', 'many'], {}, /invalid --threads/],
    [['--max-body', '12'], {}, /invalid --max-body/],
    [['--shutdown-timeout', '-1'], {}, /invalid --shutdown-timeout/],
    [['--retention-days', 'x'], {}, /invalid --retention-days/],
    [['--db-pool', '0'], {}, /invalid --db-pool/],
    [['--log-level', 'loud'], {}, /invalid --log-level "loud"/],
    [[], { AP_THREADS: 'lots' }, /invalid --threads "lots"/],
    [[], { AP_LISTEN: ':' }, /invalid --listen/],
    [['--data-dir', '/tmp/x', 'extra'], {}, /unexpected argument/],
  ];
  for (const [args, env, msg] of cases) {
    const r = await cli(['serve', ...args], env);
    assert.equal(r.code, 2, `serve ${args.join(' ')} ${JSON.stringify(env)}: ${r.stderr}`);
    assert.match(r.stderr, msg);
    assert.match(r.stderr, /hint|--help/, 'says what to do');
    assert.doesNotMatch(r.stderr, /"msg":"ready"/);
    // refused before any start-up work: no data dir, no migration
    assert.doesNotMatch(r.stderr, /migration applied|admin key created/);
    const dd = args[args.indexOf('--data-dir') + 1];
    if (args.includes('--data-dir') && dd.includes('ap-never-')) assert.ok(!existsSync(dd), `${dd} was created`);
  }
});

test('a port in use: serve exits 1 with a clear message', async () => {
  const blocker = net.createServer();
  await new Promise((res) => blocker.listen(0, '127.0.0.1', res));
  const dir = mkdtempSync(join(tmpdir(), 'ap-ops-'));
  try {
    const r = await cli(['serve', '--listen', `127.0.0.1:${blocker.address().port}`, '--data-dir', dir]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /cannot listen/);
  } finally {
    blocker.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('configuration from AP_* variables alone; a flag beats the variable', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ap-ops-env-'));
  const db = newPgDb();
  const env = { AP_LISTEN: '127.0.0.1:0', AP_DATA_DIR: dir, AP_THREADS: '3', AP_RETENTION_DAYS: '7', AP_SHUTDOWN_TIMEOUT: '4', AP_MAX_BODY: '4096' };
  if (db) env.AP_DATABASE_URL = db.url;
  const p = serve(['--threads', '2'], env);
  try {
    const ready = await p.ready;
    const cfg = p.logs.find((l) => l.msg === 'starting').config;
    assert.equal(cfg.listen, '127.0.0.1:0');
    assert.equal(cfg['data-dir'], dir);
    assert.equal(cfg.threads, '2', 'the flag wins over AP_THREADS');
    assert.equal(cfg['retention-days'], '7');
    assert.equal(cfg['shutdown-timeout'], '4');
    assert.equal(ready.store, db ? 'postgres' : 'sqlite');
    assert.equal(ready.admin_key_file, join(dir, 'admin.key'));
    const key = readFileSync(join(dir, 'admin.key'), 'utf8').trim();
    const ok = await fetch(ready.url + '/api/v1/tenants', { headers: { authorization: `Bearer ${key}` } });
    assert.equal(ok.status, 200);
    // AP_MAX_BODY took effect
    const big = await fetch(ready.url + '/api/v1/tenants', {
      method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'x'.repeat(5000) }),
    });
    assert.equal(big.status, 413);
    p.child.kill('SIGTERM');
    const { code } = await p.exited;
    assert.equal(code, 0, p.raw());
    assert.equal(p.logs.find((l) => l.msg === 'shutting down').timeout_s, 4);
  } finally {
    if (p.child.exitCode === null) { p.child.kill('SIGKILL'); await p.exited; }
    if (db) db.drop();
    rmSync(dir, { recursive: true, force: true });
  }
});

// A raw HTTP/1.1 connection, to hold a request half-sent.
function rawConn(port) {
  return new Promise((res, rej) => {
    const s = net.connect(port, '127.0.0.1', () => res(s));
    s.data = '';
    s.on('data', (d) => { s.data += d; });
    s.on('error', rej);
  });
}
const port = (s) => Number(new URL(s.url).port);
function refused(p) {
  return new Promise((res) => {
    const s = net.connect(p, '127.0.0.1');
    s.on('connect', () => { s.destroy(); res(false); });
    s.on('error', (e) => res(e.code === 'ECONNREFUSED'));
  });
}

test('SIGTERM: idle keep-alive connections do not hold up a prompt, clean exit', async () => {
  const s = await startServer({ args: ['--shutdown-timeout', '10'] });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  try {
    const get = () => new Promise((res, rej) => {
      http.get({ host: '127.0.0.1', port: port(s), path: '/healthz', agent }, (r) => { r.resume(); r.on('end', () => res(r.statusCode)); }).on('error', rej);
    });
    assert.deepEqual(await Promise.all([get(), get(), get(), get()]), [200, 200, 200, 200]);
    assert.ok(Object.values(agent.freeSockets).flat().length >= 2, 'keep-alive connections are open');
    const t0 = Date.now();
    s.child.kill('SIGTERM');
    const { code, signal } = await s.exited;
    assert.equal(signal, null);
    assert.equal(code, 0, s.raw.join('').slice(-3000));
    assert.ok(Date.now() - t0 < 5000, `took ${Date.now() - t0} ms`);
    const msgs = s.logs.map((l) => l.msg);
    const i = msgs.indexOf('shutting down');
    assert.ok(i >= 0 && msgs.indexOf('stopped') > i, msgs.join(', '));
    assert.equal(s.logs[i].signal, 'SIGTERM');
    assert.equal(s.logs.find((l) => l.msg === 'stopped').drained, true);
    assert.ok(await refused(port(s)));
  } finally {
    agent.destroy();
    await s.stop();
  }
});

test('SIGTERM: an in-flight request finishes, new connections are refused meanwhile', async () => {
  const s = await startServer({ args: ['--shutdown-timeout', '10'] });
  try {
    const c = await rawConn(port(s));
    // one full request first: the connection is certainly accepted
    c.write('GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n');
    assert.ok(await waitFor(() => /\r\n\r\n\{"status":"ok"\}/.test(c.data)), c.data);
    c.data = '';
    const body = JSON.stringify({ name: 'Finished During Drain' });
    c.write(`POST /api/v1/tenants HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer ${s.adminKey}\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 10)}`);
    await sleep(300);
    s.child.kill('SIGTERM');
    assert.ok(await waitFor(() => s.logs.some((l) => l.msg === 'shutting down')));
    // the listener closes right after that line is written
    let closed = false;
    for (let i = 0; i < 100 && !closed; i++) {
      closed = await refused(port(s));
      if (!closed) await sleep(20);
    }
    assert.ok(closed, 'new connections are still accepted after shutdown began');
    await sleep(200);
    assert.equal(s.child.exitCode, null, 'the server waits for the in-flight request');
    assert.ok(!s.logs.some((l) => l.msg === 'stopped'));
    c.write(body.slice(10));
    assert.ok(await waitFor(() => /^HTTP\/1\.1 201/.test(c.data) && c.data.includes('finished-during-drain')), c.data);
    const { code } = await s.exited;
    assert.equal(code, 0, s.raw.join('').slice(-3000));
    assert.equal(s.logs.find((l) => l.msg === 'stopped').drained, true);
    const req = s.logs.find((l) => l.msg === 'request' && l.route === '/api/v1/tenants' && l.status === 201);
    assert.ok(req, 'the drained request was logged');
    c.destroy();
  } finally {
    await s.stop();
  }
});

test('SIGINT with a request stuck past --shutdown-timeout: exits 0, drained false, no leak', async () => {
  const s = await startServer({ args: ['--shutdown-timeout', '1'] });
  try {
    const c = await rawConn(port(s));
    c.write('GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n');
    assert.ok(await waitFor(() => c.data.includes('"ok"')));
    c.write(`POST /api/v1/tenants HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer ${s.adminKey}\r\n` +
      'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"na');
    await sleep(300);
    const t0 = Date.now();
    s.child.kill('SIGINT');
    const { code, signal } = await s.exited;
    const took = Date.now() - t0;
    assert.equal(signal, null);
    assert.equal(code, 0, s.raw.join('').slice(-3000));
    assert.ok(took >= 900 && took < 6000, `exit after ${took} ms, bound 1 s`);
    assert.equal(s.logs.find((l) => l.msg === 'shutting down').signal, 'SIGINT');
    assert.equal(s.logs.find((l) => l.msg === 'stopped').drained, false);
    c.destroy();
  } finally {
    await s.stop();
  }
});

test('first start writes admin.key (0600); a restart keeps it', async () => {
  const s1 = await startServer();
  const file = join(s1.dataDir, 'admin.key');
  const dbUrl = s1.databaseUrl;
  let s2 = null;
  try {
    const st = statSync(file);
    assert.equal(st.mode & 0o777, 0o600);
    const key = readFileSync(file, 'utf8');
    assert.match(key, /^apk_[A-Za-z0-9_-]{16}_[A-Za-z0-9_-]{43}\n$/);
    const created = s1.logs.find((l) => l.msg === 'platform admin key created');
    assert.equal(created.path, file);
    assert.equal((await s1.request('GET', '/api/v1/tenants')).status, 200);
    // stop without dropping the store, start again on it
    s1.child.kill('SIGTERM');
    assert.equal((await s1.exited).code, 0);
    await sleep(20);
    s2 = await startServer({ dataDir: s1.dataDir, args: BACKEND === 'postgres' ? ['--database-url', dbUrl] : [] });
    assert.equal(readFileSync(file, 'utf8'), key);
    const st2 = statSync(file);
    assert.equal(st2.ino, st.ino);
    assert.equal(st2.mtimeMs, st.mtimeMs);
    assert.ok(!s2.logs.some((l) => l.msg === 'platform admin key created'));
    assert.equal(s2.adminKey, key.trim());
    assert.equal((await s2.request('GET', '/api/v1/tenants')).status, 200);
    // one platform key, not two
    const keys = await s2.request('GET', '/api/v1/api-keys');
    assert.equal(keys.body.data.filter((k) => k.role === 'platform_admin').length, 1);
  } finally {
    if (s2) await s2.stop();
    if (BACKEND === 'postgres') {
      execFileSync('psql', [process.env.AP_TEST_PG_ADMIN_URL, '-qAtc', `DROP DATABASE IF EXISTS ${new URL(dbUrl).pathname.slice(1)}`]);
    }
    rmSync(s1.dataDir, { recursive: true, force: true });
  }
});

test('/readyz is 503 while the schema is not what the binary expects; /healthz stays 200', async () => {
  assert.equal((await srv.request('GET', '/readyz', { key: null })).status, 200);
  sql(srv.databaseUrl, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future', '2099-01-01T00:00:00.000Z')");
  try {
    const r = await srv.request('GET', '/readyz', { key: null });
    assert.equal(r.status, 503, r.text);
    assert.equal(r.headers.get('content-type'), 'application/problem+json');
    assert.match(r.body.title, /newer than this binary/);
    assert.equal((await srv.request('GET', '/healthz', { key: null })).status, 200);
  } finally {
    sql(srv.databaseUrl, 'DELETE FROM schema_migrations WHERE version = 9999');
  }
  const back = await srv.request('GET', '/readyz', { key: null });
  assert.equal(back.status, 200);
  assert.equal(back.body.status, 'ready');
});

test('admin purge --retention-days 0 removes a deleted tenant; its chain stays verifiable; the platform chain records it', async () => {
  const t = await tenantWithKeys(srv, 'Purge Me');
  const keep = await tenantWithKeys(srv, 'Keep Me');
  const u = await srv.request('POST', '/api/v1/users', { key: t.keys.tenant_admin, body: { email: 'gone@p.example', role: 'viewer' } });
  assert.equal(u.status, 201);
  assert.equal((await srv.request('DELETE', `/api/v1/tenants/${t.id}`)).status, 200);
  const q = (table) => Number(sql(srv.databaseUrl, `SELECT COUNT(*) FROM ${table} WHERE tenant_id = '${t.id}'`));
  assert.equal(q('users'), 1);
  assert.equal(q('api_keys'), 5);
  const args = ['--database-url', srv.databaseUrl, '--data-dir', srv.dataDir];
  // within the default retention nothing goes
  const early = await cli(['admin', 'purge', ...args]);
  assert.equal(early.code, 0, early.stderr);
  assert.ok(!early.stdout.includes(t.id));
  const p = await cli(['admin', 'purge', '--retention-days', '0', ...args]);
  assert.equal(p.code, 0, p.stderr);
  assert.match(p.stdout, /^purged \d+ tenant\(s\)$/m);
  assert.match(p.stdout, new RegExp(`^  ${t.id}$`, 'm'));
  assert.ok(!p.stdout.includes(keep.id), 'an active tenant is never purged');
  // gone: the tenant, its users and keys
  assert.equal((await srv.request('GET', `/api/v1/tenants/${t.id}`)).status, 404);
  assert.equal(Number(sql(srv.databaseUrl, `SELECT COUNT(*) FROM tenants WHERE id = '${t.id}'`)), 0);
  assert.equal(q('users'), 0);
  assert.equal(q('api_keys'), 0);
  const k = await srv.request('GET', '/api/v1/tenant', { key: t.keys.tenant_admin });
  assert.equal(k.status, 401);
  assert.equal((await srv.request('GET', '/api/v1/tenant', { key: keep.keys.viewer })).status, 200);
  // the purged tenant's chain outlives it, intact
  const v = await cli(['audit', 'verify', '--tenant', t.id, '-o', 'json', '--database-url', srv.databaseUrl]);
  assert.equal(v.code, 0, v.stderr);
  assert.deepEqual(JSON.parse(v.stdout), [{ tenant_id: t.id, ok: true, entries_checked: 8, first_bad_sequence: null }]);
  // the platform chain has the purge
  const a = await srv.request('GET', '/api/v1/audit?action=tenant.purge&limit=500');
  assert.equal(a.status, 200, a.text);
  const e = a.body.data.find((x) => x.resource_id === t.id);
  assert.ok(e, JSON.stringify(a.body.data));
  assert.equal(e.tenant_id, PLATFORM);
  assert.equal(e.resource_type, 'tenant');
  assert.equal(e.actor_type, 'system');
  assert.equal(e.actor_id, 'cli');
  assert.equal(e.outcome, 'success');
  assert.deepEqual(e.changes, { slug: 'purge-me', retention_days: 0 });
  const pv = await srv.request('GET', '/api/v1/audit:verify');
  assert.equal(pv.body.ok, true, JSON.stringify(pv.body));
  // a second purge finds nothing more of it
  const again = await cli(['admin', 'purge', '--retention-days', '0', ...args]);
  assert.equal(again.code, 0);
  assert.ok(!again.stdout.includes(t.id));
  // a retention that is not a whole number of days is a usage error; an
  // empty one must not read as 0 (purge everything deleted, now)
  for (const bad of ['soon', '', '-1', '+5', ' 5', '99999999999999999999', '36501']) {
    const r = await cli(['admin', 'purge', `--retention-days=${bad}`, ...args]);
    assert.equal(r.code, 2, `--retention-days=${bad}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /invalid --retention-days/);
    assert.doesNotMatch(r.stdout, /purged/);
  }
});

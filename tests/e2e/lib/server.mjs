// Starts the real agentprov binary for an end-to-end test and talks to it.
//
// - AP_BIN names the binary (make test uses the sanitizer build).
// - AP_TEST_BACKEND=sqlite|postgres picks the store; for postgres each
//   server gets a fresh database created through AP_TEST_PG_ADMIN_URL,
//   dropped again on stop().
// - AP_TEST_EXTERNAL_URL + AP_TEST_EXTERNAL_KEY point the tests at an
//   existing deployment instead (nothing is started or stopped then).
// - The demo team (docs/agents.md) is off unless a test passes
//   env: { AP_DEMO: '1' }, so counts of tenants and audit entries hold.
// - stop() sends SIGTERM and asserts a clean exit (the sanitizer build
//   exits non-zero on a leak) and that no log line holds an API key.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import assert from 'node:assert/strict';

export const BIN = process.env.AP_BIN || resolve('agentprov');
export const BACKEND = process.env.AP_TEST_BACKEND || 'sqlite';

function pgUrlFor(db) {
  const u = new URL(process.env.AP_TEST_PG_URL);
  u.pathname = '/' + db;
  return u.toString();
}

// dataDir and db (a PostgreSQL database name from an earlier handle) let a
// test restart a server on the same store, e.g. after killing it.
export async function startServer({ env = {}, args = [], dataDir, db: reuseDb } = {}) {
  if (process.env.AP_TEST_EXTERNAL_URL) {
    const url = process.env.AP_TEST_EXTERNAL_URL;
    return makeHandle({ url, adminKey: process.env.AP_TEST_EXTERNAL_KEY, external: true });
  }
  dataDir = dataDir || mkdtempSync(join(tmpdir(), 'agentprov-e2e-'));
  const extra = [];
  let db = reuseDb || null;
  if (BACKEND === 'postgres' && reuseDb) {
    extra.push('--database-url', pgUrlFor(db));
  } else if (BACKEND === 'postgres') {
    db = 'e2e_' + randomBytes(6).toString('hex');
    execFileSync('psql', [process.env.AP_TEST_PG_ADMIN_URL, '-qAtc',
      `CREATE DATABASE ${db} OWNER agentprov`]);
    extra.push('--database-url', pgUrlFor(db));
  }
  const child = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir,
    ...extra, ...args], { env: { ...process.env, AP_DEMO: '0', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs = [];
  const raw = [];
  let buf = '';
  const ready = new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error('server did not become ready:\n' + raw.join(''))), 20000);
    child.stderr.on('data', (chunk) => {
      raw.push(chunk.toString());
      buf += chunk.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        let rec = null;
        try { rec = JSON.parse(line); } catch { rec = { unparsed: line }; }
        logs.push(rec);
        if (rec.msg === 'ready') { clearTimeout(timer); res(rec); }
      }
    });
    child.on('exit', (code) => { clearTimeout(timer); rej(new Error(`server exited ${code}:\n` + raw.join(''))); });
  });
  const rec = await ready;
  child.removeAllListeners('exit');
  const exited = new Promise((res) => child.on('exit', (code, signal) => res({ code, signal })));
  const adminKey = readFileSync(join(dataDir, 'admin.key'), 'utf8').trim();
  // databaseUrl: what offline commands (migrate, audit, admin) pass as
  // --database-url to reach the same store as this server.
  const databaseUrl = db ? pgUrlFor(db) : `sqlite:${join(dataDir, 'agentprov.db')}`;
  return makeHandle({ url: rec.url, adminKey, child, logs, raw, exited, dataDir, db, databaseUrl });
}

function makeHandle(h) {
  h.request = async (method, path, { key = h.adminKey, body, headers = {}, rawBody } = {}) => {
    const hdrs = { ...headers };
    if (key) hdrs.authorization = `Bearer ${key}`;
    let payload;
    if (rawBody !== undefined) payload = rawBody;
    else if (body !== undefined) { payload = JSON.stringify(body); hdrs['content-type'] ??= 'application/json'; }
    const res = await fetch(h.url + path, { method, headers: hdrs, body: payload });
    const text = await res.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch { json = null; }
    return { status: res.status, headers: res.headers, body: json, text };
  };
  h.stop = async () => {
    if (h.external) return;
    h.child.kill('SIGTERM');
    const { code, signal } = await h.exited;
    const all = h.raw.join('');
    assert.equal(signal, null, `server died by ${signal}:\n${all.slice(-4000)}`);
    assert.equal(code, 0, `server exited ${code} (a sanitizer report?):\n${all.slice(-4000)}`);
    assert.ok(!/apk_[A-Za-z0-9_-]{16}_[A-Za-z0-9_-]{43}/.test(all), 'an API key appeared in the logs');
    if (h.db) execFileSync('psql', [process.env.AP_TEST_PG_ADMIN_URL, '-qAtc', `DROP DATABASE ${h.db}`]);
    rmSync(h.dataDir, { recursive: true, force: true });
  };
  return h;
}

// Creates a tenant and, in it, a key for each role; returns ids and keys.
export async function tenantWithKeys(srv, name) {
  const t = await srv.request('POST', '/api/v1/tenants', { body: { name } });
  assert.equal(t.status, 201, t.text);
  const tid = t.body.id;
  const keys = {};
  for (const role of ['tenant_admin', 'project_admin', 'operator', 'viewer', 'auditor']) {
    const k = await srv.request('POST', `/api/v1/tenants/${tid}/api-keys`, { body: { name: role, role } });
    assert.equal(k.status, 201, k.text);
    keys[role] = k.body.key;
  }
  return { id: tid, keys };
}

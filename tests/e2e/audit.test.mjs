// The audit log end to end: every mutating call leaves one entry in the
// tenant's hash chain (who, from where, which request, what changed, never a
// secret); refusals leave auth.denied; reading, filtering, paging and
// verifying over the API; the offline `audit verify|export` commands; and
// tampering with the stored log — an edited, a deleted and a reordered entry
// — is caught both offline and by the server after a restart.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { openSync, closeSync, readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, tenantWithKeys, BIN, BACKEND } from './lib/server.mjs';

const PLATFORM = '00000000-0000-0000-0000-000000000000';
const GENESIS = '0'.repeat(64);
const sha256 = (s) => createHash('sha256').update(s).digest('hex');

// The binary as a command, with no AP_* settings leaking in from the
// caller's shell.
function cli(args, { env = {}, stdout = 'pipe' } = {}) {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AP_')));
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, args, { env: { ...base, ...env }, stdio: ['ignore', stdout, 'pipe'] });
    let out = '';
    let err = '';
    child.stdout?.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout: out, stderr: err }));
  });
}

// SQL straight against the store, bypassing the server: SQLite through the
// sqlite3 shell, PostgreSQL as the superuser (or as the app role).
// The statements go on standard input (they can be long).
function sql(dbUrl, statements, { asApp = false } = {}) {
  const opts = { encoding: 'utf8', input: statements, maxBuffer: 64 << 20 };
  if (dbUrl.startsWith('sqlite:')) return spawnSync('sqlite3', ['-bail', dbUrl.slice(7)], opts);
  const u = new URL(asApp ? dbUrl : process.env.AP_TEST_PG_ADMIN_URL);
  u.pathname = new URL(dbUrl).pathname;
  return spawnSync('psql', [u.toString(), '-v', 'ON_ERROR_STOP=1', '-qAt'], opts);
}
function sqlOk(dbUrl, statements, opts) {
  const r = sql(dbUrl, statements, opts);
  assert.equal(r.status, 0, `sql failed: ${statements}\n${r.stderr}`);
  return r.stdout;
}

// Stops a server but keeps its store for a restart (srv.stop() drops it).
async function stopKeeping(srv) {
  srv.child.kill('SIGTERM');
  const { code, signal } = await srv.exited;
  const all = srv.raw.join('');
  assert.equal(signal, null, all.slice(-4000));
  assert.equal(code, 0, `server exited ${code}:\n${all.slice(-4000)}`);
  assert.ok(!/apk_[A-Za-z0-9_-]{16}_[A-Za-z0-9_-]{43}/.test(all), 'an API key appeared in the logs');
}
async function restart(srv, dbUrl) {
  await stopKeeping(srv);
  return startServer({ dataDir: srv.dataDir, args: BACKEND === 'postgres' ? ['--database-url', dbUrl] : [] });
}
function dropDatabase(dbUrl) {
  if (!dbUrl.startsWith('sqlite:')) {
    execFileSync('psql', [process.env.AP_TEST_PG_ADMIN_URL, '-qAtc',
      `DROP DATABASE IF EXISTS ${new URL(dbUrl).pathname.slice(1)}`]);
  }
}

// Canonical form and hash of an entry as documented in src/audit/audit.h,
// recomputed here so the test checks the scheme, not just self-consistency.
function sorted(v) {
  if (Array.isArray(v)) return v.map(sorted);
  if (v && typeof v === 'object') {
    return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sorted(v[k])]));
  }
  return v;
}
function entryHash(e) {
  const { prev_hash: prev, hash: _h, ...rest } = e;
  rest.changes = e.changes === null ? null : JSON.stringify(sorted(e.changes));
  return sha256(prev + JSON.stringify(sorted(rest)));
}

async function chain(srv, tid, key = srv.adminKey) {
  const r = await srv.request('GET', `/api/v1/tenants/${tid}/audit?limit=500`, { key });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.next_cursor, null);
  return r.body.data;
}

async function keyId(srv, key, path = '/api/v1/api-keys') {
  const prefix = key.slice(4, 20);
  const r = await srv.request('GET', `${path}?limit=500`);
  assert.equal(r.status, 200, r.text);
  const k = r.body.data.find((x) => x.prefix === prefix);
  assert.ok(k, `no key with prefix ${prefix}`);
  return k.id;
}

let srv;
let platformKeyId;
before(async () => {
  srv = await startServer();
  platformKeyId = await keyId(srv, srv.adminKey);
});
after(async () => { if (srv) await srv.stop(); });

// Expected entries, in order, for one tenant: {action, rid, reqId, actor, role, rtype}.
test('every mutating call appends one entry: actor, role, request id, address, resource, changes', async () => {
  const expected = [];
  const secrets = [];
  const rid = (res) => res.headers.get('x-request-id');
  const t = await srv.request('POST', '/api/v1/tenants', { body: { name: 'Audit Trail Co' } });
  assert.equal(t.status, 201, t.text);
  const tid = t.body.id;
  expected.push({ action: 'tenant.create', rtype: 'tenant', rid: tid, req: rid(t), actor: platformKeyId, role: 'platform_admin' });

  const ak = await srv.request('POST', `/api/v1/tenants/${tid}/api-keys`, { body: { name: 'boss', role: 'tenant_admin' } });
  assert.equal(ak.status, 201, ak.text);
  secrets.push(ak.body.key);
  expected.push({ action: 'api_key.create', rtype: 'api_key', rid: ak.body.id, req: rid(ak), actor: platformKeyId, role: 'platform_admin' });
  const admin = ak.body.key;
  const adminId = ak.body.id;

  const u = await srv.request('POST', '/api/v1/users', { key: admin, body: { email: 'eve@audit.example', role: 'operator' } });
  assert.equal(u.status, 201, u.text);
  expected.push({ action: 'user.create', rtype: 'user', rid: u.body.id, req: rid(u), actor: adminId, role: 'tenant_admin' });
  const up = await srv.request('PATCH', `/api/v1/tenants/${tid}/users/${u.body.id}`, { key: admin, body: { display_name: 'Eve', role: 'viewer' } });
  assert.equal(up.status, 200, up.text);
  expected.push({ action: 'user.update', rtype: 'user', rid: u.body.id, req: rid(up), actor: adminId, role: 'tenant_admin' });
  const uk = await srv.request('POST', '/api/v1/api-keys', { key: admin, body: { name: 'eve laptop', user_id: u.body.id } });
  assert.equal(uk.status, 201, uk.text);
  secrets.push(uk.body.key);
  expected.push({ action: 'api_key.create', rtype: 'api_key', rid: uk.body.id, req: rid(uk), actor: adminId, role: 'tenant_admin' });
  const rv = await srv.request('POST', `/api/v1/api-keys/${uk.body.id}:revoke`, { key: admin });
  assert.equal(rv.status, 200, rv.text);
  expected.push({ action: 'api_key.revoke', rtype: 'api_key', rid: uk.body.id, req: rid(rv), actor: adminId, role: 'tenant_admin' });
  const del = await srv.request('DELETE', `/api/v1/users/${u.body.id}`, { key: admin });
  assert.equal(del.status, 204, del.text);
  expected.push({ action: 'user.delete', rtype: 'user', rid: u.body.id, req: rid(del), actor: adminId, role: 'tenant_admin' });

  for (const op of ['suspend', 'resume']) {
    const r = await srv.request('POST', `/api/v1/tenants/${tid}:${op}`);
    assert.equal(r.status, 200, r.text);
    expected.push({ action: `tenant.${op}`, rtype: 'tenant', rid: tid, req: rid(r), actor: platformKeyId, role: 'platform_admin' });
  }
  const pt = await srv.request('PATCH', `/api/v1/tenants/${tid}`, { body: { plan: 'team', max_agents: 12 } });
  assert.equal(pt.status, 200, pt.text);
  expected.push({ action: 'tenant.update', rtype: 'tenant', rid: tid, req: rid(pt), actor: platformKeyId, role: 'platform_admin' });

  const entries = await chain(srv, tid);
  assert.equal(entries.length, expected.length, JSON.stringify(entries.map((e) => e.action)));
  entries.forEach((e, i) => {
    const x = expected[i];
    assert.equal(e.seq, i + 1);
    assert.equal(e.tenant_id, tid);
    assert.equal(e.action, x.action, `entry ${i + 1}`);
    assert.equal(e.resource_type, x.rtype, `entry ${i + 1}`);
    assert.equal(e.resource_id, x.rid, `entry ${i + 1}`);
    assert.equal(e.request_id, x.req, `entry ${i + 1}: request_id is the response's X-Request-Id`);
    assert.equal(e.actor_type, 'key');
    assert.equal(e.actor_id, x.actor, `entry ${i + 1}`);
    assert.equal(e.actor_role, x.role, `entry ${i + 1}`);
    assert.equal(e.client_addr, '127.0.0.1');
    assert.equal(e.outcome, 'success');
    assert.match(e.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });
  // The changes say what changed.
  assert.equal(entries[0].changes.name, 'Audit Trail Co');
  assert.deepEqual(entries[1].changes, { name: 'boss', role: 'tenant_admin', user_id: null, expires_at: null });
  assert.equal(entries[2].changes.email, 'eve@audit.example');
  assert.deepEqual(entries[3].changes, { display_name: 'Eve', role: 'viewer' });
  assert.equal(entries[4].changes.user_id, u.body.id);
  assert.equal(entries[4].changes.role, 'viewer', 'a user key takes the user\'s role');
  assert.equal(entries[6].changes.keys_deleted, 1);
  assert.deepEqual(entries[7].changes, { from: 'active', to: 'suspended' });
  assert.deepEqual(entries[8].changes, { from: 'suspended', to: 'active' });
  assert.deepEqual(entries[9].changes, { plan: 'team', max_agents: 12 });
  // Never a secret: neither a plaintext key nor its stored hash.
  const text = JSON.stringify(entries);
  for (const k of secrets) {
    assert.ok(!text.includes(k), 'a plaintext key is in the audit log');
    assert.ok(!text.includes(sha256(k)), 'a key hash is in the audit log');
    assert.ok(!text.includes(k.slice(21)), 'a key secret is in the audit log');
  }

  // Deleting a tenant is recorded in its own chain (read offline: the API
  // no longer shows a deleted tenant's resources).
  const d = await srv.request('DELETE', `/api/v1/tenants/${tid}`);
  assert.equal(d.status, 200, d.text);
  const ex = await cli(['audit', 'export', '--tenant', tid, '--database-url', srv.databaseUrl]);
  assert.equal(ex.code, 0, ex.stderr);
  const lines = ex.stdout.trim().split('\n').map((l) => JSON.parse(l));
  const last = lines.at(-1);
  assert.equal(lines.length, expected.length + 1);
  assert.equal(last.action, 'tenant.delete');
  assert.equal(last.request_id, rid(d));
  assert.equal(last.actor_id, platformKeyId);
  assert.deepEqual(last.changes, { from: 'active', to: 'deleted' });
});

test('a failed call writes nothing; refusals write auth.denied to the caller\'s chain', async () => {
  const t = await tenantWithKeys(srv, 'Refusals Ltd');
  const other = await tenantWithKeys(srv, 'Someone Else');
  const admin = t.keys.tenant_admin;
  const before = (await chain(srv, t.id)).length;
  const bad = [
    await srv.request('POST', '/api/v1/users', { key: admin, body: { email: 'x@r.example', role: 'emperor' } }),
    await srv.request('POST', '/api/v1/users', { key: admin, body: { role: 'viewer' } }),
    await srv.request('POST', '/api/v1/users', { key: admin, body: { email: 'x@r.example', role: 'viewer', shoe_size: 9 } }),
    await srv.request('POST', '/api/v1/api-keys', { key: admin, body: { name: 'x', role: 'platform_admin' } }),
    await srv.request('PATCH', `/api/v1/tenants/${t.id}`, { body: { plan: 'galactic' } }),
    await srv.request('PATCH', '/api/v1/users/01a1fdbe-f617-7348-86af-7a31cad78152', { key: admin, body: { role: 'viewer' } }),
    await srv.request('POST', `/api/v1/tenants/${t.id}:resume`),
  ];
  assert.deepEqual(bad.map((r) => r.status), [400, 400, 400, 400, 400, 404, 409]);
  const ok = await srv.request('POST', '/api/v1/users', { key: admin, body: { email: 'dup@r.example', role: 'viewer' } });
  assert.equal(ok.status, 201);
  const dup = await srv.request('POST', '/api/v1/users', { key: admin, body: { email: 'dup@r.example', role: 'viewer' } });
  assert.equal(dup.status, 409);
  let entries = await chain(srv, t.id);
  assert.equal(entries.length, before + 1, 'only the successful call was recorded: ' +
    JSON.stringify(entries.slice(before).map((e) => e.action)));
  assert.equal(entries.at(-1).action, 'user.create');

  // 403 for a role without the permission.
  const viewerId = await keyId(srv, t.keys.viewer, `/api/v1/tenants/${t.id}/api-keys`);
  const denied = await srv.request('POST', '/api/v1/users', { key: t.keys.viewer, body: { email: 'v@r.example', role: 'viewer' } });
  assert.equal(denied.status, 403);
  // 404 for another tenant's path, recorded in the caller's chain only.
  const otherBefore = (await chain(srv, other.id)).length;
  const cross = await srv.request('GET', `/api/v1/tenants/${other.id}/users`, { key: t.keys.viewer });
  assert.equal(cross.status, 404);
  entries = await chain(srv, t.id);
  const [e1, e2] = entries.slice(-2);
  assert.equal(e1.action, 'auth.denied');
  assert.equal(e1.outcome, 'denied');
  assert.equal(e1.actor_id, viewerId);
  assert.equal(e1.actor_role, 'viewer');
  assert.equal(e1.request_id, denied.headers.get('x-request-id'));
  assert.equal(e1.client_addr, '127.0.0.1');
  assert.equal(e1.resource_type, 'route');
  assert.equal(e1.resource_id, '/api/v1/users');
  assert.equal(e1.changes.method, 'POST');
  assert.match(e1.changes.reason, /permission/);
  assert.equal(e2.action, 'auth.denied');
  assert.equal(e2.request_id, cross.headers.get('x-request-id'));
  assert.equal(e2.resource_id, '/api/v1/tenants/{tenant_id}/users');
  assert.match(e2.changes.reason, /another tenant/);
  assert.equal((await chain(srv, other.id)).length, otherBefore, 'nothing in the other tenant\'s chain');
  // An unauthenticated call has no chain to go to and writes nowhere.
  const anon = await srv.request('POST', '/api/v1/users', { key: 'apk_AAAAAAAAAAAAAAAA_' + 'A'.repeat(43), body: {} });
  assert.equal(anon.status, 401);
  assert.equal((await chain(srv, t.id)).length, entries.length);
});

test('a call refused because the tenant is suspended writes auth.denied', async () => {
  const t = await tenantWithKeys(srv, 'Suspended Refusals');
  assert.equal((await srv.request('POST', `/api/v1/tenants/${t.id}:suspend`)).status, 200);
  const r = await srv.request('GET', '/api/v1/users', { key: t.keys.viewer });
  assert.equal(r.status, 403);
  const last = (await chain(srv, t.id)).at(-1);
  assert.equal(last.action, 'auth.denied');
  assert.equal(last.outcome, 'denied');
  assert.equal(last.request_id, r.headers.get('x-request-id'));
  assert.match(last.changes.reason, /suspended/);
  const v = await srv.request('GET', `/api/v1/tenants/${t.id}/audit:verify`);
  assert.equal(v.body.ok, true);
});

test('the chain: seq 1..n without gaps, linked hashes that match the documented scheme', async () => {
  const t = await tenantWithKeys(srv, 'Chain Links');
  for (let i = 0; i < 4; i++) {
    const r = await srv.request('POST', '/api/v1/users', { key: t.keys.tenant_admin, body: { email: `c${i}@chain.example`, role: 'viewer', display_name: `Ünïcødé ${i} "q" \\ /` } });
    assert.equal(r.status, 201, r.text);
  }
  // concurrent writers to one chain still get consecutive numbers
  const par = await Promise.all(Array.from({ length: 12 }, (_, i) => srv.request('POST', '/api/v1/users',
    { key: t.keys.tenant_admin, body: { email: `p${i}@chain.example`, role: 'viewer' } })));
  assert.deepEqual(par.map((r) => r.status), Array(12).fill(201));
  const entries = await chain(srv, t.id);
  assert.equal(entries.length, 1 + 5 + 4 + 12);
  assert.deepEqual(new Set(entries.slice(-12).map((e) => e.request_id)),
    new Set(par.map((r) => r.headers.get('x-request-id'))));
  let prev = GENESIS;
  entries.forEach((e, i) => {
    assert.equal(e.seq, i + 1, 'sequence without gaps');
    assert.equal(e.prev_hash, prev, `entry ${e.seq} links to the previous hash`);
    assert.match(e.hash, /^[0-9a-f]{64}$/);
    assert.equal(e.hash, entryHash(e), `entry ${e.seq}: hash = sha256(prev_hash ‖ canonical JSON)`);
    prev = e.hash;
  });
  // ids are unique UUIDs
  assert.equal(new Set(entries.map((e) => e.id)).size, entries.length);
  const v = await srv.request('GET', `/api/v1/tenants/${t.id}/audit:verify`, { key: t.keys.auditor });
  assert.equal(v.status, 200, v.text);
  assert.deepEqual(v.body, { ok: true, entries_checked: entries.length, first_bad_sequence: null });
  const alias = await srv.request('GET', '/api/v1/audit:verify', { key: t.keys.tenant_admin });
  assert.deepEqual(alias.body, v.body);
});

test('filters: since/until, actor, action prefix, resource type and id; cursor paging', async () => {
  const t = await tenantWithKeys(srv, 'Filter Works');
  const admin = t.keys.tenant_admin;
  const adminId = await keyId(srv, admin, `/api/v1/tenants/${t.id}/api-keys`);
  const users = [];
  for (let i = 0; i < 3; i++) {
    const r = await srv.request('POST', '/api/v1/users', { key: admin, body: { email: `f${i}@filter.example`, role: 'viewer' } });
    users.push(r.body.id);
    await new Promise((res) => setTimeout(res, 3)); // distinct milliseconds
  }
  await srv.request('PATCH', `/api/v1/users/${users[0]}`, { key: admin, body: { display_name: 'F0' } });
  await srv.request('POST', '/api/v1/api-keys', { key: admin, body: { name: 'svc', role: 'operator' } });
  await srv.request('DELETE', `/api/v1/users/${users[1]}`, { key: admin });
  const all = await chain(srv, t.id);
  const q = async (qs, key = t.keys.auditor) => {
    const r = await srv.request('GET', `/api/v1/audit?limit=500&${qs}`, { key });
    assert.equal(r.status, 200, `${qs}: ${r.text}`);
    return r.body.data.map((e) => e.seq);
  };
  const seqs = (f) => all.filter(f).map((e) => e.seq);
  const mid = all.find((e) => e.action === 'user.create' && e.resource_id === users[1]).time;
  assert.deepEqual(await q(`since=${encodeURIComponent(mid)}`), seqs((e) => e.time >= mid));
  assert.deepEqual(await q(`until=${encodeURIComponent(mid)}`), seqs((e) => e.time < mid));
  // an offset time is the same instant
  const d = new Date(Date.parse(mid) + 2 * 3600e3).toISOString().replace('Z', '+02:00');
  assert.deepEqual(await q(`since=${encodeURIComponent(d)}`), seqs((e) => e.time >= mid));
  assert.deepEqual(await q(`since=${encodeURIComponent(mid)}&until=${encodeURIComponent(all.at(-1).time)}`),
    seqs((e) => e.time >= mid && e.time < all.at(-1).time));
  assert.deepEqual(await q(`actor=${adminId}`), seqs((e) => e.actor_id === adminId));
  assert.ok(seqs((e) => e.actor_id === adminId).length === 6);
  assert.deepEqual(await q('action=user.*'), seqs((e) => e.action.startsWith('user.')));
  assert.equal((await q('action=user.*')).length, 5);
  assert.deepEqual(await q('action=user.create'), seqs((e) => e.action === 'user.create'));
  assert.deepEqual(await q('action=USER.*'), [], 'action filters are case-sensitive on both backends');
  assert.deepEqual(await q('action=*'), seqs(() => true));
  assert.deepEqual(await q('resource_type=api_key'), seqs((e) => e.resource_type === 'api_key'));
  assert.deepEqual(await q(`resource_id=${users[0]}`), seqs((e) => e.resource_id === users[0]));
  assert.deepEqual(await q(`resource_type=user&action=user.update&resource_id=${users[0]}`), seqs((e) => e.action === 'user.update'));
  // cursor paging walks every entry once, in order
  const seen = [];
  let cursor = null;
  let pages = 0;
  do {
    const r = await srv.request('GET', `/api/v1/tenants/${t.id}/audit?limit=3${cursor ? `&cursor=${cursor}` : ''}`, { key: admin });
    assert.equal(r.status, 200, r.text);
    assert.ok(r.body.data.length <= 3);
    seen.push(...r.body.data.map((e) => e.seq));
    cursor = r.body.next_cursor;
    pages++;
  } while (cursor && pages < 50);
  assert.deepEqual(seen, all.map((e) => e.seq));
  assert.equal(pages, Math.ceil(all.length / 3));
  // a filtered walk pages over the matching entries only
  const f1 = await srv.request('GET', '/api/v1/audit?action=user.*&limit=2', { key: admin });
  const f2 = await srv.request('GET', `/api/v1/audit?action=user.*&limit=2&cursor=${f1.body.next_cursor}`, { key: admin });
  assert.deepEqual([...f1.body.data, ...f2.body.data].map((e) => e.seq), seqs((e) => e.action.startsWith('user.')).slice(0, 4));
  // malformed parameters
  // (text that is not UTF-8 gets the same 400 from both backends)
  for (const qs of ['since=yesterday', 'until=2026-13-01T00:00:00Z', 'limit=0', 'limit=501', 'cursor=abc', 'cursor=-1',
    'action=%FF', 'action=user.%C3*', 'actor=%C3%28', 'resource_type=%FE', 'resource_id=%80']) {
    const r = await srv.request('GET', `/api/v1/audit?${qs}`, { key: admin });
    assert.equal(r.status, 400, `${qs}: ${r.text}`);
    assert.equal(r.headers.get('content-type'), 'application/problem+json');
  }
});

test('auditor and tenant_admin read the log; viewer, operator and project_admin get 403', async () => {
  const t = await tenantWithKeys(srv, 'Readers Guild');
  for (const role of ['auditor', 'tenant_admin']) {
    for (const path of ['/api/v1/audit', `/api/v1/tenants/${t.id}/audit`, '/api/v1/audit:verify', `/api/v1/tenants/${t.id}/audit:verify`]) {
      const r = await srv.request('GET', path, { key: t.keys[role] });
      assert.equal(r.status, 200, `${role} ${path}: ${r.text}`);
    }
  }
  for (const role of ['viewer', 'operator', 'project_admin']) {
    for (const path of ['/api/v1/audit', `/api/v1/tenants/${t.id}/audit:verify`]) {
      const r = await srv.request('GET', path, { key: t.keys[role] });
      assert.equal(r.status, 403, `${role} ${path}: ${r.text}`);
      assert.equal(r.body.type, 'urn:agentprov:problem:forbidden');
    }
  }
  // the platform reads any tenant's log, and its own
  assert.equal((await srv.request('GET', `/api/v1/tenants/${t.id}/audit`)).status, 200);
  const own = await srv.request('GET', '/api/v1/audit');
  assert.equal(own.status, 200);
  assert.ok(own.body.data.every((e) => e.tenant_id === PLATFORM));
  // another tenant's auditor does not
  const o = await tenantWithKeys(srv, 'Nosy Neighbours');
  assert.equal((await srv.request('GET', `/api/v1/tenants/${t.id}/audit`, { key: o.keys.auditor })).status, 404);
});

test('offline export: one JSON object per line, the same entries and hashes as the API', async () => {
  const t = await tenantWithKeys(srv, 'Export Inc');
  await srv.request('POST', '/api/v1/users', { key: t.keys.tenant_admin, body: { email: 'x@export.example', role: 'viewer' } });
  const api = await chain(srv, t.id);
  const ex = await cli(['audit', 'export', '--format', 'jsonl', '--tenant', t.id, '--database-url', srv.databaseUrl]);
  assert.equal(ex.code, 0, ex.stderr);
  assert.ok(ex.stdout.endsWith('\n'));
  const lines = ex.stdout.slice(0, -1).split('\n');
  assert.equal(lines.length, api.length);
  const rows = lines.map((l) => JSON.parse(l));
  assert.deepEqual(rows, api, 'export and API agree entry for entry');
  // every tenant, ordered by tenant then seq; includes the platform chain
  const all = await cli(['audit', 'export', '--database-url', srv.databaseUrl]);
  assert.equal(all.code, 0, all.stderr);
  const every = all.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.ok(every.some((e) => e.tenant_id === PLATFORM));
  assert.deepEqual(every.filter((e) => e.tenant_id === t.id).map((e) => e.hash), api.map((e) => e.hash));
  for (let i = 1; i < every.length; i++) {
    const [a, b] = [every[i - 1], every[i]];
    assert.ok(a.tenant_id < b.tenant_id || (a.tenant_id === b.tenant_id && a.seq + 1 === b.seq), `order at line ${i + 1}`);
  }
  // --output writes the file whole
  const dir = mkdtempSync(join(tmpdir(), 'ap-export-'));
  try {
    const file = join(dir, 'audit.jsonl');
    const o = await cli(['audit', 'export', '--tenant', t.id, '--output', file, '--database-url', srv.databaseUrl]);
    assert.equal(o.code, 0, o.stderr);
    assert.match(o.stderr, new RegExp(`exported ${api.length} entries`));
    assert.equal(readFileSync(file, 'utf8'), ex.stdout);
    const bad = await cli(['audit', 'export', '--output', join(dir, 'no/such/dir/x'), '--database-url', srv.databaseUrl]);
    assert.equal(bad.code, 3, bad.stderr);
    assert.match(bad.stderr, /cannot create/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  // usage errors
  assert.equal((await cli(['audit', 'export', '--format', 'csv', '--database-url', srv.databaseUrl])).code, 2);
  assert.equal((await cli(['audit', 'verify', '--frobnicate'])).code, 2);
  // a data dir that does not exist is refused, not created empty
  const missing = await cli(['audit', 'verify', '--data-dir', '/nonexistent/agentprov']);
  assert.equal(missing.code, 3);
  assert.match(missing.stderr, /database not found/);
});

test('audit export to a full disk fails with exit 3 and no use-after-free', async () => {
  const fd = openSync('/dev/full', 'w');
  try {
    const r = await cli(['audit', 'export', '--database-url', srv.databaseUrl], { stdout: fd });
    assert.equal(r.signal, null);
    assert.doesNotMatch(r.stderr, /AddressSanitizer|LeakSanitizer/, r.stderr);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /cannot write the export/);
  } finally {
    closeSync(fd);
  }
});

test('the store itself refuses UPDATE, DELETE and TRUNCATE of audit_log', async () => {
  const t = await tenantWithKeys(srv, 'Append Only');
  const where = `tenant_id = '${t.id}' AND seq = 1`;
  const stmts = [`UPDATE audit_log SET action = 'x' WHERE ${where}`, `DELETE FROM audit_log WHERE ${where}`];
  if (BACKEND === 'postgres') {
    // as the application's own role, with the platform scope RLS would allow
    for (const s of [...stmts, 'TRUNCATE audit_log']) {
      const r = sql(srv.databaseUrl, `SET app.platform = 'on'; ${s}`, { asApp: true });
      assert.notEqual(r.status, 0, `${s} was allowed`);
      assert.match(r.stderr, /append-only/);
    }
  } else {
    for (const s of stmts) {
      const r = sql(srv.databaseUrl, s);
      assert.notEqual(r.status, 0, `${s} was allowed`);
      assert.match(r.stderr, /append-only/);
    }
  }
  const e = await chain(srv, t.id);
  assert.equal(e[0].action, 'tenant.create');
  assert.equal(e.length, 6);
});

test('tampering (edit, delete, reorder) is caught offline and by the restarted server', async () => {
  const s1 = await startServer();
  const dbUrl = s1.databaseUrl;
  let s2 = null;
  try {
    const ids = {};
    for (const name of ['edit', 'delete', 'reorder', 'intact']) {
      const t = await tenantWithKeys(s1, `Tamper ${name}`);
      for (let i = 0; i < 2; i++) {
        const r = await s1.request('POST', '/api/v1/users', { key: t.keys.tenant_admin, body: { email: `u${i}@t.example`, role: 'viewer' } });
        assert.equal(r.status, 201);
      }
      ids[name] = t.id; // 8 entries: tenant.create, 5 × api_key.create, 2 × user.create
    }
    const clean = await cli(['audit', 'verify', '-o', 'json', '--database-url', dbUrl]);
    assert.equal(clean.code, 0, clean.stderr);
    const cleanRes = JSON.parse(clean.stdout);
    assert.ok(cleanRes.every((r) => r.ok && r.first_bad_sequence === null));
    assert.equal(cleanRes.find((r) => r.tenant_id === ids.edit).entries_checked, 8);
    await stopKeeping(s1);

    const off = BACKEND === 'postgres' ? 'ALTER TABLE audit_log DISABLE TRIGGER USER;'
      : 'DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;';
    const w = (name, seq) => `tenant_id = '${ids[name]}' AND seq = ${seq}`;
    sqlOk(dbUrl, `${off}
      UPDATE audit_log SET action = 'user.delete' WHERE ${w('edit', 4)};
      DELETE FROM audit_log WHERE ${w('delete', 5)};
      UPDATE audit_log SET seq = -1 WHERE ${w('reorder', 6)};
      UPDATE audit_log SET seq = 6 WHERE ${w('reorder', 7)};
      UPDATE audit_log SET seq = 7 WHERE ${w('reorder', -1)};`);
    const want = { edit: 4, delete: 5, reorder: 6 };

    for (const [name, seq] of Object.entries(want)) {
      const r = await cli(['audit', 'verify', '--tenant', ids[name], '--database-url', dbUrl]);
      assert.equal(r.code, 1, `${name}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, new RegExp(`chain broken at seq ${seq}\\b`), name);
      assert.match(r.stdout, new RegExp(`${ids[name]}\\s+NO\\s+${seq - 1}\\s+${seq}\\s*$`, 'm'), `${name}: ${r.stdout}`);
    }
    const intact = await cli(['audit', 'verify', '--tenant', ids.intact, '--database-url', dbUrl]);
    assert.equal(intact.code, 0, intact.stderr);
    const every = await cli(['audit', 'verify', '-o', 'json', '--database-url', dbUrl]);
    assert.equal(every.code, 1);
    const res = Object.fromEntries(JSON.parse(every.stdout).map((r) => [r.tenant_id, r]));
    for (const [name, seq] of Object.entries(want)) {
      assert.equal(res[ids[name]].ok, false, name);
      assert.equal(res[ids[name]].first_bad_sequence, seq, name);
    }
    assert.equal(res[ids.intact].ok, true);
    assert.equal(res[PLATFORM].ok, true);
    // the data dir form names the same store (SQLite)
    if (BACKEND === 'sqlite') {
      const dd = await cli(['audit', 'verify', '--tenant', ids.edit, '--data-dir', s1.dataDir]);
      assert.equal(dd.code, 1);
    }

    s2 = await restart(s1, dbUrl);
    for (const [name, seq] of Object.entries(want)) {
      const r = await s2.request('GET', `/api/v1/tenants/${ids[name]}/audit:verify`);
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.ok, false, name);
      assert.equal(r.body.first_bad_sequence, seq, name);
      assert.equal(r.body.entries_checked, seq - 1, name);
      assert.equal(typeof r.body.reason, 'string');
    }
    const ok = await s2.request('GET', `/api/v1/tenants/${ids.intact}/audit:verify`);
    assert.deepEqual(ok.body, { ok: true, entries_checked: 8, first_bad_sequence: null });
    // Appending after the damage still works and is itself well-linked.
    const more = await s2.request('PATCH', `/api/v1/tenants/${ids.edit}`, { body: { plan: 'team' } });
    assert.equal(more.status, 200);
    const tail = (await chain(s2, ids.edit)).slice(-2);
    assert.equal(tail[1].seq, 9);
    assert.equal(tail[1].prev_hash, tail[0].hash);
  } finally {
    if (s2) await s2.stop();
    else if (s1.child.exitCode === null) await s1.stop();
    dropDatabase(dbUrl);
    rmSync(s1.dataDir, { recursive: true, force: true });
  }
});

test('long chains: verify, export and list page through more than 1000 entries', async () => {
  const s = await startServer();
  try {
    const t = await s.request('POST', '/api/v1/tenants', { body: { name: 'Long Chain' } });
    const tid = t.body.id;
    const [first] = await chain(s, tid);
    // entries 2..2501 written straight to the store, correctly chained
    let prev = first.hash;
    const rows = [];
    const q = (v) => (v === null ? 'NULL' : typeof v === 'number' ? String(v) : `'${v}'`);
    const t0 = Date.parse(first.time);
    for (let seq = 2; seq <= 2501; seq++) {
      const e = {
        tenant_id: tid, seq, id: `00000000-0000-7000-8000-${String(seq).padStart(12, '0')}`,
        time: new Date(t0 + seq).toISOString(), actor_type: 'system', actor_id: 'bulk', actor_role: null,
        action: 'bulk.write', resource_type: 'test', resource_id: String(seq % 7), outcome: 'success',
        request_id: null, client_addr: null, changes: { i: seq, n: 'x' }, prev_hash: prev,
      };
      e.hash = entryHash(e);
      prev = e.hash;
      rows.push(`(${[e.tenant_id, e.seq, e.id, e.time, e.actor_type, e.actor_id, e.actor_role, e.action,
        e.resource_type, e.resource_id, e.outcome, e.request_id, e.client_addr,
        JSON.stringify(sorted(e.changes)), e.prev_hash, e.hash].map(q).join(', ')})`);
    }
    const cols = 'tenant_id, seq, id, time, actor_type, actor_id, actor_role, action, resource_type, resource_id, outcome, request_id, client_addr, changes, prev_hash, hash';
    let script = '';
    for (let i = 0; i < rows.length; i += 250) script += `INSERT INTO audit_log (${cols}) VALUES ${rows.slice(i, i + 250).join(',\n')};\n`;
    sqlOk(s.databaseUrl, script);

    const v = await cli(['audit', 'verify', '--tenant', tid, '-o', 'json', '--database-url', s.databaseUrl]);
    assert.equal(v.code, 0, v.stderr);
    assert.deepEqual(JSON.parse(v.stdout), [{ tenant_id: tid, ok: true, entries_checked: 2501, first_bad_sequence: null }]);
    const av = await s.request('GET', `/api/v1/tenants/${tid}/audit:verify`);
    assert.deepEqual(av.body, { ok: true, entries_checked: 2501, first_bad_sequence: null });
    // API pages of 500
    const seen = [];
    let cursor = null;
    do {
      const r = await s.request('GET', `/api/v1/tenants/${tid}/audit?limit=500${cursor ? `&cursor=${cursor}` : ''}`);
      assert.equal(r.status, 200, r.text);
      seen.push(...r.body.data.map((e) => e.seq));
      cursor = r.body.next_cursor;
    } while (cursor);
    assert.deepEqual(seen, Array.from({ length: 2501 }, (_, i) => i + 1));
    // export of every tenant crosses its 1000-line pages in order
    const ex = await cli(['audit', 'export', '--database-url', s.databaseUrl]);
    assert.equal(ex.code, 0, ex.stderr);
    const lines = ex.stdout.trim().split('\n').map((l) => JSON.parse(l));
    const mine = lines.filter((e) => e.tenant_id === tid);
    assert.deepEqual(mine.map((e) => e.seq), seen);
    assert.equal(lines.length, new Set(lines.map((e) => e.id)).size, 'no entry exported twice');
    const platform = (await s.request('GET', '/api/v1/audit?limit=500')).body.data.length;
    assert.equal(lines.length, 2501 + platform);

    // damage in the second page is found there, offline and online
    const off = BACKEND === 'postgres' ? 'ALTER TABLE audit_log DISABLE TRIGGER USER;' : 'DROP TRIGGER audit_log_no_update;';
    sqlOk(s.databaseUrl, `${off} UPDATE audit_log SET changes = '{"i":1500,"n":"y"}' WHERE tenant_id = '${tid}' AND seq = 1500;`);
    const bad = await cli(['audit', 'verify', '--tenant', tid, '--database-url', s.databaseUrl]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /chain broken at seq 1500: hash does not match/);
    const abad = await s.request('GET', `/api/v1/tenants/${tid}/audit:verify`);
    assert.equal(abad.body.first_bad_sequence, 1500);
    assert.equal(abad.body.entries_checked, 1499);
  } finally {
    await s.stop();
  }
});

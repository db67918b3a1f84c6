// Tenants, users and keys through the REST API: the main paths and the
// lifecycle (suspend keeps data but refuses calls; delete; purge).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, tenantWithKeys } from './lib/server.mjs';

let srv;
before(async () => { srv = await startServer(); });
after(async () => { await srv.stop(); });

test('health, readiness and the first-start admin key', async () => {
  const h = await srv.request('GET', '/healthz', { key: null });
  assert.equal(h.status, 200);
  const r = await srv.request('GET', '/readyz', { key: null });
  assert.equal(r.status, 200);
  assert.equal(r.body.status, 'ready');
  assert.match(srv.adminKey, /^apk_[A-Za-z0-9_-]{16}_[A-Za-z0-9_-]{43}$/);
});

test('create, get, list, update a tenant with default entitlements', async () => {
  const c = await srv.request('POST', '/api/v1/tenants', { body: { name: 'Globex Corporation' } });
  assert.equal(c.status, 201, c.text);
  assert.equal(c.body.slug, 'globex-corporation');
  assert.deepEqual(c.body.entitlements, {
    max_agents: 10, max_agent_groups: 5, monthly_token_limit: 1000000, storage_limit_gb: 10,
    max_concurrent_tasks: 0, task_weight: 1,
  });
  assert.equal(c.headers.get('location'), `/api/v1/tenants/${c.body.id}`);
  const g = await srv.request('GET', `/api/v1/tenants/${c.body.id}`);
  assert.equal(g.status, 200);
  assert.equal(g.body.name, 'Globex Corporation');
  const u = await srv.request('PATCH', `/api/v1/tenants/${c.body.id}`, { body: { plan: 'enterprise', max_agents: 50 } });
  assert.equal(u.status, 200, u.text);
  assert.equal(u.body.plan, 'enterprise');
  assert.equal(u.body.entitlements.max_agents, 50);
  assert.equal(u.body.entitlements.max_agent_groups, 5);
  const l = await srv.request('GET', '/api/v1/tenants?limit=500');
  assert.equal(l.status, 200);
  assert.ok(l.body.data.some((t) => t.id === c.body.id));
  assert.ok(!l.body.data.some((t) => t.slug === 'platform'), 'the platform tenant is never listed');
  const dup = await srv.request('POST', '/api/v1/tenants', { body: { name: 'Globex Corporation' } });
  assert.equal(dup.status, 409);
});

test('pagination walks every tenant once', async () => {
  for (let i = 0; i < 5; i++) {
    const r = await srv.request('POST', '/api/v1/tenants', { body: { name: `Page Tenant ${i}` } });
    assert.equal(r.status, 201);
  }
  const seen = new Set();
  let cursor = null;
  let pages = 0;
  do {
    const r = await srv.request('GET', `/api/v1/tenants?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
    assert.equal(r.status, 200);
    assert.ok(r.body.data.length <= 2);
    for (const t of r.body.data) { assert.ok(!seen.has(t.id)); seen.add(t.id); }
    cursor = r.body.next_cursor;
    pages++;
  } while (cursor && pages < 50);
  assert.ok(seen.size >= 5);
  assert.ok(pages >= 3);
});

test('users and keys: a tenant admin manages its tenant; keys are shown once', async () => {
  const t = await tenantWithKeys(srv, 'Initech');
  const admin = t.keys.tenant_admin;
  const u = await srv.request('POST', '/api/v1/users', { key: admin, body: { email: 'Ann@Initech.example', role: 'operator', display_name: 'Ann' } });
  assert.equal(u.status, 201, u.text);
  assert.equal(u.body.email, 'ann@initech.example');
  assert.equal(u.body.tenant_id, t.id);
  const dup = await srv.request('POST', `/api/v1/tenants/${t.id}/users`, { key: admin, body: { email: 'ann@initech.example', role: 'viewer' } });
  assert.equal(dup.status, 409);
  const k = await srv.request('POST', '/api/v1/api-keys', { key: admin, body: { name: 'ann laptop', user_id: u.body.id } });
  assert.equal(k.status, 201, k.text);
  assert.equal(k.body.role, 'operator');
  assert.match(k.body.key, /^apk_/);
  const list = await srv.request('GET', '/api/v1/api-keys', { key: admin });
  assert.equal(list.status, 200);
  assert.ok(list.body.data.length >= 6);
  for (const item of list.body.data) {
    assert.equal(item.key, undefined, 'a listed key never carries the secret');
    assert.equal(item.key_hash, undefined);
  }
  // the new key works, with its role
  const me = await srv.request('GET', '/api/v1/tenant', { key: k.body.key });
  assert.equal(me.status, 200);
  assert.equal(me.body.id, t.id);
  const denied = await srv.request('POST', '/api/v1/users', { key: k.body.key, body: { email: 'x@y.example', role: 'viewer' } });
  assert.equal(denied.status, 403);
  // a tenant admin cannot mint platform admins
  const esc = await srv.request('POST', '/api/v1/api-keys', { key: admin, body: { name: 'evil', role: 'platform_admin' } });
  assert.equal(esc.status, 400);
  // revoke → 401
  const rv = await srv.request('POST', `/api/v1/api-keys/${k.body.id}:revoke`, { key: admin });
  assert.equal(rv.status, 200);
  assert.ok(rv.body.revoked_at);
  const after = await srv.request('GET', '/api/v1/tenant', { key: k.body.key });
  assert.equal(after.status, 401);
  assert.match(after.body.detail, /revoked/);
  // disabling the user stops its keys; deleting removes it
  const k2 = await srv.request('POST', '/api/v1/api-keys', { key: admin, body: { name: 'ann 2', user_id: u.body.id } });
  const dis = await srv.request('PATCH', `/api/v1/users/${u.body.id}`, { key: admin, body: { status: 'disabled' } });
  assert.equal(dis.status, 200);
  assert.equal((await srv.request('GET', '/api/v1/tenant', { key: k2.body.key })).status, 401);
  const del = await srv.request('DELETE', `/api/v1/users/${u.body.id}`, { key: admin });
  assert.equal(del.status, 204);
  assert.equal((await srv.request('GET', `/api/v1/users/${u.body.id}`, { key: admin })).status, 404);
});

test('expired keys are refused', async () => {
  const t = await tenantWithKeys(srv, 'Expiring Inc');
  const past = new Date(Date.now() - 60000).toISOString();
  const k = await srv.request('POST', '/api/v1/api-keys', { key: t.keys.tenant_admin, body: { name: 'old', role: 'viewer', expires_at: past } });
  assert.equal(k.status, 201, k.text);
  const r = await srv.request('GET', '/api/v1/tenant', { key: k.body.key });
  assert.equal(r.status, 401);
  assert.match(r.body.detail, /expired/);
});

test('suspend refuses the tenant\'s calls with 403 and keeps its data; resume restores', async () => {
  const t = await tenantWithKeys(srv, 'Suspendable');
  const u = await srv.request('POST', '/api/v1/users', { key: t.keys.tenant_admin, body: { email: 'keep@s.example', role: 'viewer' } });
  assert.equal(u.status, 201);
  // the viewer key is verified (and cached) before the suspension
  assert.equal((await srv.request('GET', '/api/v1/users', { key: t.keys.viewer })).status, 200);
  const s = await srv.request('POST', `/api/v1/tenants/${t.id}:suspend`);
  assert.equal(s.status, 200, s.text);
  assert.equal(s.body.status, 'suspended');
  const r = await srv.request('GET', '/api/v1/users', { key: t.keys.viewer });
  assert.equal(r.status, 403);
  assert.equal(r.body.type, 'urn:agentprov:problem:tenant-suspended');
  assert.match(r.body.title, /suspended/);
  const again = await srv.request('POST', `/api/v1/tenants/${t.id}:suspend`);
  assert.equal(again.status, 409);
  const res = await srv.request('POST', `/api/v1/tenants/${t.id}:resume`);
  assert.equal(res.status, 200);
  const back = await srv.request('GET', '/api/v1/users', { key: t.keys.viewer });
  assert.equal(back.status, 200);
  assert.ok(back.body.data.some((x) => x.email === 'keep@s.example'));
});

test('delete is soft; the tenant is listed as deleted and its keys stop', async () => {
  const t = await tenantWithKeys(srv, 'Deletable');
  const d = await srv.request('DELETE', `/api/v1/tenants/${t.id}`);
  assert.equal(d.status, 200, d.text);
  assert.equal(d.body.status, 'deleted');
  assert.ok(d.body.deleted_at);
  const r = await srv.request('GET', '/api/v1/tenant', { key: t.keys.viewer });
  assert.equal(r.status, 403);
  const l = await srv.request('GET', '/api/v1/tenants?status=deleted&limit=500');
  assert.ok(l.body.data.some((x) => x.id === t.id));
});

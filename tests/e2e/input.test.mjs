// Bad input, spellings of paths, Idempotency-Key and keep-alive.
//
// 1. Every bad request is answered by a problem (application/problem+json
//    with type, title, status, detail and request_id) whose detail names
//    the offending field or value, and writes nothing: tenants, users and
//    keys are counted around each group.
// 2. Paths are sent with node:http, not fetch: fetch's URL parser would
//    resolve "." and ".." itself, and the server would never see them.
// 3. The plaintext of an API key created with an Idempotency-Key is looked
//    for in the database files (SQLite) or tables (PostgreSQL): it must be
//    in no stored response.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import { startServer, tenantWithKeys, BACKEND } from './lib/server.mjs';

const PROBLEM = 'application/problem+json';
const MAX_BODY = 1048576;

let srv;
let A;
let B;
let base;

before(async () => {
  srv = await startServer();
  base = new URL(srv.url);
  A = await tenantWithKeys(srv, 'Input Alpha');
  B = await tenantWithKeys(srv, 'Input Bravo');
});
after(async () => {
  await srv.stop();
  // every request was released: nothing in flight held the shutdown up
  const stopped = (srv.logs || []).find((l) => l.msg === 'stopped');
  if (stopped) assert.equal(stopped.drained, true, 'shutdown found requests still in flight');
});

// A request sent byte for byte as given (path not normalised by the client).
function raw(method, path, { key, headers = {}, body, agent = false } = {}) {
  return new Promise((resolve, reject) => {
    const hdrs = { ...headers };
    if (key) hdrs.authorization = `Bearer ${key}`;
    if (body !== undefined) hdrs['content-length'] = Buffer.byteLength(body);
    let socket = null;
    const req = http.request({ host: base.hostname, port: base.port, method, path, headers: hdrs, agent }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let json = null;
        try { json = text ? JSON.parse(text) : null; } catch { json = null; }
        resolve({ status: res.statusCode, headers: new Headers(res.headers), body: json, text, req, socket });
      });
    });
    req.on('socket', (s) => { socket = s; });
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

function assertProblem(r, status, detailRe, what = '') {
  const w = `${what} → ${r.status} ${r.text.slice(0, 400)}`;
  assert.equal(r.status, status, w);
  assert.equal(r.headers.get('content-type'), PROBLEM, w);
  assert.ok(r.body, w);
  for (const f of ['type', 'title', 'detail', 'request_id']) {
    assert.equal(typeof r.body[f], 'string', `${f} missing: ${w}`);
    assert.ok(r.body[f].length > 0, `${f} empty: ${w}`);
  }
  assert.match(r.body.type, /^urn:agentprov:problem:[a-z-]+$/, w);
  assert.equal(r.body.status, status, w);
  assert.equal(r.body.request_id, r.headers.get('x-request-id'), w);
  if (detailRe) assert.match(r.body.detail, detailRe, w);
}

async function walk(path, key) {
  let n = 0;
  let cursor = null;
  do {
    const r = await srv.request('GET', `${path}${path.includes('?') ? '&' : '?'}limit=500${cursor ? `&cursor=${cursor}` : ''}`, { key });
    assert.equal(r.status, 200, r.text);
    n += r.body.data.length;
    cursor = r.body.next_cursor;
  } while (cursor);
  return n;
}

async function counts() {
  return {
    tenants: await walk('/api/v1/tenants'),
    deleted: await walk('/api/v1/tenants?status=deleted'),
    users: await walk('/api/v1/users', A.keys.tenant_admin),
    keys: await walk('/api/v1/api-keys', A.keys.tenant_admin),
    platformKeys: await walk('/api/v1/api-keys'),
  };
}

// Runs fn and asserts it wrote no tenant, user or key.
async function writesNothing(fn) {
  const c0 = await counts();
  await fn();
  assert.deepEqual(await counts(), c0, 'a refused request wrote something');
}

test('malformed bodies: bad JSON, non-objects, empty body', async () => {
  await writesNothing(async () => {
    const post = (rawBody, headers = { 'content-type': 'application/json' }) =>
      srv.request('POST', '/api/v1/tenants', { rawBody, headers });
    assertProblem(await post('{"name": "x",'), 400, /line 1, column \d+/, 'truncated JSON');
    assertProblem(await post('{"name": \'x\'}'), 400, /column/, 'single quotes');
    assertProblem(await post('{"name":"a","name":"b"}'), 400, /name/, 'duplicate key');
    assertProblem(await post('[{"name":"x"}]'), 400, /got array/, 'array');
    assertProblem(await post('"Acme"'), 400, /got string/, 'string');
    assertProblem(await post('null'), 400, /got null/, 'null');
    assertProblem(await post('42'), 400, /got integer/, 'number');
    assertProblem(await post(''), 400, /empty body/, 'empty body');
    const none = await srv.request('POST', '/api/v1/tenants');
    assertProblem(none, 400, /empty body/, 'no body at all');
    const u = await srv.request('POST', '/api/v1/users', { key: A.keys.tenant_admin, rawBody: '', headers: { 'content-type': 'application/json' } });
    assertProblem(u, 400, /empty body/, 'empty user');
    assertProblem(await post('{"name":"x"}\u0000'), 400, null, 'trailing NUL');
  });
});

test('field validation names the field and the value', async () => {
  await writesNothing(async () => {
    const t = (body) => srv.request('POST', '/api/v1/tenants', { body });
    let r = await t({ name: 5 });
    assertProblem(r, 400, /"name" must be string, got integer/, 'name: 5');
    r = await t({ name: 'Gold Co', plan: 'gold' });
    assertProblem(r, 400, /"plan" is "gold".*free/, 'plan gold');
    r = await t({ nmae: 'Typo Co' });
    assertProblem(r, 400, /"nmae"/, 'unknown field');
    assert.match(r.body.detail, /accepted fields: .*name/);
    r = await t({ name: 'x'.repeat(201) });
    assertProblem(r, 400, /"name" is 201 bytes; at most 200/, 'long name');
    r = await t({ name: 'Null Co', plan: null });
    assertProblem(r, 400, /"plan"/, 'null plan');
    r = await t({ name: 'Big Co', max_agents: -1 });
    assertProblem(r, 400, /"max_agents" is -1/, 'negative entitlement');
    r = await t({ name: 'Big Co', max_agents: 1.5 });
    assertProblem(r, 400, /"max_agents"/, 'fractional entitlement');
    r = await t({});
    assertProblem(r, 400, /"name".*required/, 'missing name');
    r = await t({ name: 'é'.repeat(63) + 'x', ['f'.repeat(63) + 'é']: 1 });
    assertProblem(r, 400, /not accepted/, 'unknown multibyte field cut at the limit');
    r = await t({ name: 'Enum Co', plan: 'p'.repeat(63) + 'é' });
    assertProblem(r, 400, /"plan"/, 'multibyte enum value cut at the limit');

    const u = (body) => srv.request('POST', '/api/v1/users', { key: A.keys.tenant_admin, body });
    r = await u({ email: 'su@input-alpha.example', role: 'superuser' });
    assertProblem(r, 400, /"role" is "superuser"; allowed: viewer/, 'role superuser');
    r = await u({ email: 'not-an-email', role: 'viewer' });
    assertProblem(r, 400, /not-an-email/, 'bad email');
    r = await u({ email: `${'a'.repeat(250)}@x.example`, role: 'viewer' });
    assertProblem(r, 400, /"email" is 260 bytes/, 'long email');
    r = await u({ email: 'ok@input-alpha.example', role: 'viewer', status: 'gone' });
    assertProblem(r, 400, /"status" is "gone"/, 'bad status');
    r = await u({ email: 'ok@input-alpha.example', role: 'platform_admin' });
    assertProblem(r, 400, /platform_admin/, 'platform role in a tenant');

    const k = (body) => srv.request('POST', '/api/v1/api-keys', { key: A.keys.tenant_admin, body });
    r = await k({ name: 'k', role: 'viewer', user_id: 'nope' });
    assertProblem(r, 400, /user_id "nope"/, 'bad user_id');
    r = await k({ name: 'k', role: 'viewer', expires_at: 'tomorrow' });
    assertProblem(r, 400, /expires_at "tomorrow"/, 'bad expires_at');
    r = await k({ name: 'k' });
    assertProblem(r, 400, /"role"/, 'service key without a role');
    r = await k({ name: ['k'], role: 'viewer' });
    assertProblem(r, 400, /"name" must be string, got array/, 'name array');
  });
});

test('body size: over 1 MiB is 413; up to 1 MiB is read and judged', async () => {
  await writesNothing(async () => {
    const json = (total) => {
      const pad = total - '{"name":""}'.length;
      return `{"name":"${'a'.repeat(pad)}"}`;
    };
    const post = (rawBody) => srv.request('POST', '/api/v1/tenants', {
      rawBody, headers: { 'content-type': 'application/json' },
    });
    let r = await post(json(MAX_BODY + 1));
    assertProblem(r, 413, /1048576 bytes/, 'one byte over');
    r = await post(json(4 * MAX_BODY));
    assertProblem(r, 413, /1048576 bytes/, '4 MiB');
    r = await post(json(MAX_BODY));
    assertProblem(r, 400, /"name" is \d+ bytes; at most 200/, 'exactly 1 MiB');
    r = await post('x'.repeat(MAX_BODY - 1));
    assertProblem(r, 400, /line 1, column \d+/, 'junk just under 1 MiB');
    // 413 wins over authentication: the body was never looked at
    r = await srv.request('POST', '/api/v1/users', {
      key: A.keys.tenant_admin, rawBody: json(MAX_BODY + 10), headers: { 'content-type': 'application/json' },
    });
    assertProblem(r, 413, null, 'user over 1 MiB');
  });
});

test('ids, limits and cursors in the URL', async () => {
  await writesNothing(async () => {
    const v = A.keys.tenant_admin;
    for (const p of ['/api/v1/users/not-a-uuid', '/api/v1/api-keys/1234', `/api/v1/tenants/${A.id}/users/xyz`]) {
      const r = await srv.request('GET', p, { key: v });
      assertProblem(r, 404, /is not a valid/, p);
      assert.ok(r.body.detail.includes(p.split('/').pop()), r.body.detail);
    }
    let r = await srv.request('GET', '/api/v1/tenants/not-a-uuid');
    assertProblem(r, 404, null, 'tenant not-a-uuid');
    r = await srv.request('PATCH', '/api/v1/users/not-a-uuid', { key: v, body: { display_name: 'x' } });
    assertProblem(r, 404, /not-a-uuid/, 'patch not-a-uuid');
    r = await srv.request('GET', `/api/v1/users/${randomUUID()}`, { key: v });
    assertProblem(r, 404, /no user/, 'unknown user');
    for (const path of ['/api/v1/users', '/api/v1/api-keys', '/api/v1/audit']) {
      for (const l of ['0', 'abc', '501', '-1', '', '1.5', '10x', '99999999999999999999']) {
        r = await srv.request('GET', `${path}?limit=${encodeURIComponent(l)}`, { key: v });
        assertProblem(r, 400, new RegExp(`limit is "${l.replace('.', '\\.')}"`), `${path} limit=${l}`);
      }
      r = await srv.request('GET', `${path}?limit=500`, { key: v });
      assert.equal(r.status, 200, r.text);
      r = await srv.request('GET', `${path}?cursor=bogus-cursor!`, { key: v });
      assertProblem(r, 400, /cursor "bogus-cursor!"/, `${path} cursor`);
    }
    r = await srv.request('GET', '/api/v1/tenants?limit=0');
    assertProblem(r, 400, /limit is "0"/, 'tenants limit=0');
    r = await srv.request('GET', '/api/v1/tenants?cursor=%FF%FE');
    assertProblem(r, 400, /cursor/, 'tenants binary cursor');
    r = await srv.request('GET', '/api/v1/tenants?status=gone');
    assertProblem(r, 400, /status is "gone"/, 'tenants status');
    r = await srv.request('GET', '/api/v1/audit?since=yesterday', { key: v });
    assertProblem(r, 400, /since is "yesterday"/, 'audit since');
  });
});

test('content type, unknown paths, wrong methods', async () => {
  await writesNothing(async () => {
    const body = JSON.stringify({ name: 'Media Co' });
    for (const ct of ['text/plain', 'application/x-www-form-urlencoded', 'application/jsonp', 'application/json-patch+json']) {
      const r = await srv.request('POST', '/api/v1/tenants', { rawBody: body, headers: { 'content-type': ct } });
      assertProblem(r, 415, new RegExp(ct.replace(/[+.]/g, '\\$&')), ct);
    }
    let r = await srv.request('POST', '/api/v1/users', {
      key: A.keys.tenant_admin, rawBody: '{"email":"m@input-alpha.example","role":"viewer"}', headers: { 'content-type': 'text/xml' },
    });
    assertProblem(r, 415, /text\/xml/, 'user text/xml');
    r = await srv.request('GET', '/api/v1/nothing-here');
    assertProblem(r, 404, /\/api\/v1\/nothing-here/, 'unknown path');
    r = await raw('GET', '/api/v1/nothing-here');
    assertProblem(r, 404, null, 'unknown path without a key');
    for (const [m, p, allow] of [['PUT', '/api/v1/tenants', ['GET', 'POST']], ['DELETE', '/api/v1/users', ['GET', 'POST']],
      ['POST', '/api/v1/tenant', ['GET']], ['GET', `/api/v1/tenants/${A.id}:suspend`, ['POST']],
      ['DELETE', `/api/v1/api-keys/${randomUUID()}`, ['GET']]]) {
      r = await srv.request(m, p, { key: A.keys.tenant_admin });
      assertProblem(r, 405, new RegExp(`${m} is not accepted`), `${m} ${p}`);
      const got = r.headers.get('allow').split(/,\s*/).sort();
      assert.deepEqual(got, allow, `Allow of ${m} ${p}`);
    }
  });
  // a media type is case-insensitive and may carry parameters
  const ok = await srv.request('POST', '/api/v1/tenants', {
    rawBody: JSON.stringify({ name: 'Case Media' }), headers: { 'content-type': 'Application/JSON; charset=UTF-8' },
  });
  assert.equal(ok.status, 201, ok.text);
});

test('credentials: missing, malformed, unknown, revoked, expired', async () => {
  await writesNothing(async () => {
    let r = await srv.request('GET', '/api/v1/tenant', { key: null });
    assertProblem(r, 401, /needs an API key/, 'no key');
    assert.match(r.headers.get('www-authenticate'), /^Bearer/);
    r = await srv.request('POST', '/api/v1/tenants', { key: null, body: { name: 'Anon Co' } });
    assertProblem(r, 401, null, 'anonymous create');
    assert.match(r.headers.get('www-authenticate'), /^Bearer/);
    const bad = {
      malformed: ['apk_short', /malformed/],
      'basic auth': [null, /malformed/, { authorization: 'Basic dXNlcjpwYXNz' }],
      'bearer only': [null, /malformed/, { authorization: 'Bearer' }],
      unknown: [`apk_${randomBytes(12).toString('base64url')}_${randomBytes(32).toString('base64url')}`, /no such key/],
      'known lookup, wrong secret': [A.keys.viewer.slice(0, 21) + randomBytes(32).toString('base64url'), /no such key/],
    };
    for (const [what, [key, re, headers]] of Object.entries(bad)) {
      r = await srv.request('GET', '/api/v1/tenant', { key, headers });
      assertProblem(r, 401, re, what);
      assert.match(r.headers.get('www-authenticate') || '', /^Bearer/, what);
    }
  });
  const admin = A.keys.tenant_admin;
  const k = await srv.request('POST', '/api/v1/api-keys', { key: admin, body: { name: 'to revoke', role: 'viewer' } });
  assert.equal(k.status, 201);
  assert.equal((await srv.request('GET', '/api/v1/tenant', { key: k.body.key })).status, 200);
  const rv = await srv.request('POST', `/api/v1/api-keys/${k.body.id}:revoke`, { key: admin });
  assert.equal(rv.status, 200, rv.text);
  const e = await srv.request('POST', '/api/v1/api-keys', {
    key: admin, body: { name: 'expired', role: 'viewer', expires_at: new Date(Date.now() - 1000).toISOString() },
  });
  assert.equal(e.status, 201, e.text);
  await writesNothing(async () => {
    let r = await srv.request('GET', '/api/v1/tenant', { key: k.body.key });
    assertProblem(r, 401, /revoked/, 'revoked');
    r = await srv.request('POST', '/api/v1/users', { key: k.body.key, body: { email: 'r@input-alpha.example', role: 'viewer' } });
    assertProblem(r, 401, /revoked/, 'revoked write');
    r = await srv.request('GET', '/api/v1/tenant', { key: e.body.key });
    assertProblem(r, 401, /expired/, 'expired');
  });
});

test('path spellings reach the same checks', async () => {
  const same = ['/API/V1/TENANTS', '//api//v1///tenants', '/api/v1/./tenants', '/api/v1/x/../tenants',
    '/api/v1/tenants/', '/%61pi/v1/tenants', '/api/v1/%74enants', '/Api/V1/Tenants?limit=1',
    '/api/v1/../../api/v1/tenants'];
  const refused = ['/api/v1/tenants%2F..', '/api/v1/tenants%2f', '/api%5Cv1/tenants', '/../api/v1/tenants',
    '/api/../../api/v1/tenants', '/api/v1/tenants%00', '/%ff', '/api/v1/tenants/%c3', '/api/v1/%zz'];
  // decoded once only: these name no route (and never reach a handler)
  const elsewhere = ['/%2561pi/v1/tenants', '/api/v1/tenants%3Fx', '/api/v1/tenants%23', '/api/v1/tenants;x',
    '/api/v1/tenants%20'];
  await writesNothing(async () => {
    for (const p of same) {
      assertProblem(await raw('GET', p), 401, null, `${p} without a key`);
      const v = await raw('GET', p, { key: A.keys.viewer });
      assertProblem(v, 403, /tenant\.admin/, `${p} as viewer`);
      const ok = await raw('GET', p, { key: srv.adminKey });
      assert.equal(ok.status, 200, `${p} as platform: ${ok.text}`);
      const post = await raw('POST', p, { key: A.keys.tenant_admin, body: '{"name":"Spelled Co"}', headers: { 'content-type': 'application/json' } });
      assertProblem(post, 403, /tenant\.admin/, `POST ${p} as tenant_admin`);
    }
    for (const p of refused) {
      for (const key of [undefined, A.keys.viewer, srv.adminKey]) {
        const r = await raw('GET', p, { key });
        assertProblem(r, 400, null, `${p} (${key ? 'with' : 'without'} a key)`);
        assert.equal(r.body.type, 'urn:agentprov:problem:invalid-path', p);
      }
    }
    for (const p of elsewhere) {
      for (const key of [undefined, srv.adminKey]) {
        const r = await raw('GET', p, { key });
        assertProblem(r, 404, null, `${p} (${key ? 'with' : 'without'} a key)`);
      }
    }
    // raw bytes that are not UTF-8, and a NUL, straight on the socket
    for (const bytes of ['/api/\xff\xfe', '/api/v1/tenants\x7f']) {
      const res = await new Promise((resolve) => {
        const s = net.connect(base.port, base.hostname, () => {
          s.end(Buffer.from(`GET ${bytes} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`, 'latin1'));
        });
        let t = '';
        s.on('data', (c) => { t += c.toString('latin1'); });
        s.on('close', () => resolve(t));
        s.on('error', () => resolve(t));
      });
      assert.match(res, /^HTTP\/1\.1 (400|404) /, JSON.stringify(bytes));
    }
    // the server survived all of it
    assert.equal((await raw('GET', '/healthz')).status, 200);

    // B's users, however spelled, are 404 to A and 200 to B
    const up = B.id.toUpperCase();
    const variants = [`/api/v1/tenants/${B.id}/users`, `/API/V1/TENANTS/${up}/USERS`, `//api/v1/tenants/${B.id}//users/`,
      `/api/v1/tenants/${B.id}/./users`, `/api/v1/tenants/x/../${B.id}/users`, `/api/v1/tenants/${up}/users/`,
      `/api/v1/tenants/${B.id}/%75sers`, `/api/v1/%74enants/${B.id.replace(/-/g, '%2d')}/users`];
    for (const p of variants) {
      const r = await raw('GET', p, { key: A.keys.viewer });
      assertProblem(r, 404, null, `${p} as A's viewer`);
      assert.equal(r.body.instance, `/api/v1/tenants/${B.id}/users`);
      const own = await raw('GET', p, { key: B.keys.viewer });
      assert.equal(own.status, 200, `${p} as B's viewer: ${own.text}`);
      assertProblem(await raw('GET', p), 401, null, `${p} without a key`);
    }
  });
  // an uppercase id reaches the right tenant
  const me = await raw('GET', `/api/v1/tenants/${A.id.toUpperCase()}`, { key: A.keys.viewer });
  assert.equal(me.status, 200, me.text);
  assert.equal(me.body.id, A.id);
});

test('regression: a problem quoting bytes that are not UTF-8 killed the server (req.c)', async () => {
  // jansson refuses such strings, ap_problem_json returned NULL and
  // strlen(NULL) took the process down: one request stopped every tenant.
  const sent = [
    () => raw('GET', '/%ff'),
    () => raw('GET', '/api/v1/tenants/%c3%28', { key: srv.adminKey }),
    () => srv.request('POST', '/api/v1/tenants', { body: { ['f'.repeat(63) + 'é']: 1 } }),
    () => srv.request('POST', '/api/v1/tenants', { body: { name: 'Cut Co', plan: 'p'.repeat(63) + 'é' } }),
    () => srv.request('GET', '/api/v1/tenants?cursor=%FF%FE'),
    () => srv.request('GET', `/api/v1/users/${'é'.repeat(40)}`, { key: A.keys.viewer }),
    () => raw('POST', '/api/v1/tenants', { key: srv.adminKey, body: '{"name":"Latin Co"}', headers: { 'content-type': 'text/\xe9t\xe9' } }),
  ];
  await writesNothing(async () => {
    for (const [i, send] of sent.entries()) {
      const r = await send();
      assert.ok([400, 404, 415].includes(r.status), `${i}: ${r.status} ${r.text}`);
      assertProblem(r, r.status, null, `case ${i}`);
      assert.equal((await raw('GET', '/healthz')).status, 200, `the server survived case ${i}`);
    }
  });
  // what can be kept is kept, what cannot is shown as '?'
  const r = await srv.request('POST', '/api/v1/tenants', { body: { ['f'.repeat(63) + 'é']: 1 } });
  assert.match(r.body.detail, new RegExp(`field "${'f'.repeat(63)}\\?" is not accepted`));
});

test('regression: the path was decoded twice (libmicrohttpd, then the router)', async () => {
  // Routing and authorisation saw libmicrohttpd's decoded url: %2F became a
  // real '/', %00 ended the path, %3F started a query, %2561 became 'a'.
  const cases = [
    ['/api/v1/tenants%2F..', 400], ['/api/v1/tenants%2f', 400], ['/api/v1/tenants%00', 400],
    ['/api/v1/tenants%00/../x', 400], ['/%2561pi/v1/tenants', 404], ['/api/v1/tenants%3Flimit=1', 404],
    ['/api/v1/tenants%3F', 404], [`/api/v1/tenants/${A.id}%2Fusers`, 400],
  ];
  for (const [p, want] of cases) {
    for (const key of [undefined, srv.adminKey]) {
      const r = await raw('GET', p, { key });
      assertProblem(r, want, null, `${p} ${key ? 'as platform' : 'without a key'}`);
    }
  }
  // a real query string is still a query string
  const q = await raw('GET', '/api/v1/tenants?limit=1&status=active', { key: srv.adminKey });
  assert.equal(q.status, 200, q.text);
  assert.ok(q.body.data.length <= 1);
  const enc = await raw('GET', '/api/v1/tenants?status=%61ctive&limit=%31', { key: srv.adminKey });
  assert.equal(enc.status, 200, enc.text);
  assert.ok(enc.body.data.length <= 1);
});

test('regression: Content-Type was compared by prefix and case', async () => {
  await writesNothing(async () => {
    for (const ct of ['application/jsonp', 'application/json-patch+json', 'application/jsonx; charset=utf-8']) {
      const r = await srv.request('POST', '/api/v1/tenants', { rawBody: '{"name":"Prefix Co"}', headers: { 'content-type': ct } });
      assertProblem(r, 415, /Content-Type is/, ct);
    }
  });
  for (const [i, ct] of ['APPLICATION/JSON', 'application/json;charset=utf-8', 'Application/Json ; charset=UTF-8'].entries()) {
    const r = await srv.request('POST', '/api/v1/tenants', { rawBody: JSON.stringify({ name: `Media Case ${i}` }), headers: { 'content-type': ct } });
    assert.equal(r.status, 201, `${ct}: ${r.text}`);
  }
});

test('regression: invalid cursor and Idempotency-Key problems did not name the value', async () => {
  for (const [path, key] of [['/api/v1/tenants', undefined], ['/api/v1/users', A.keys.viewer],
    ['/api/v1/api-keys', A.keys.tenant_admin], ['/api/v1/audit', A.keys.auditor]]) {
    for (const c of ['nope', ' 5', '+5', '-1', '99999999999999999999']) {
      const r = await srv.request('GET', `${path}?cursor=${encodeURIComponent(c)}`, { key });
      assertProblem(r, 400, new RegExp(`cursor "${c.replace('+', '\\+')}"`), `${path} cursor=${c}`);
    }
  }
  const r = await srv.request('POST', '/api/v1/tenants', { body: { name: 'Idem Detail' }, headers: { 'idempotency-key': 'k'.repeat(300) } });
  assertProblem(r, 400, /Idempotency-Key is 300 characters/);
});

test('Idempotency-Key: replay, mismatch, per credential', async () => {
  const idem = (k) => ({ 'idempotency-key': k });
  const key = `idem-${randomUUID()}`;
  const before = await walk('/api/v1/tenants');
  const first = await srv.request('POST', '/api/v1/tenants', { body: { name: 'Idem Once' }, headers: idem(key) });
  assert.equal(first.status, 201, first.text);
  assert.equal(first.headers.get('idempotent-replayed'), null);
  const again = await srv.request('POST', '/api/v1/tenants', { body: { name: 'Idem Once' }, headers: idem(key) });
  assert.equal(again.status, 201, again.text);
  assert.equal(again.headers.get('idempotent-replayed'), 'true');
  assert.equal(again.headers.get('content-type'), 'application/json');
  assert.deepEqual(again.body, first.body);
  assert.equal(await walk('/api/v1/tenants'), before + 1, 'only one tenant created');
  // same key, another body: refused, nothing written
  await writesNothing(async () => {
    const other = await srv.request('POST', '/api/v1/tenants', { body: { name: 'Idem Twice' }, headers: idem(key) });
    assertProblem(other, 422, new RegExp(key), 'same key, other body');
    assert.equal(other.body.type, 'urn:agentprov:problem:idempotency-key-reused');
    const otherPath = await srv.request('POST', `/api/v1/tenants/${first.body.id}:suspend`, { headers: idem(key) });
    assertProblem(otherPath, 422, null, 'same key, other path');
    const bad = await srv.request('POST', '/api/v1/tenants', { body: { name: 'Idem Long' }, headers: idem('k'.repeat(256)) });
    assertProblem(bad, 400, /Idempotency-Key is 256 characters/, 'over-long key');
  });
  // a refused first request replays its refusal
  const k400 = `idem-${randomUUID()}`;
  const r1 = await srv.request('POST', '/api/v1/tenants', { body: { name: 'x'.repeat(300) }, headers: idem(k400) });
  assertProblem(r1, 400, /"name"/);
  const r2 = await srv.request('POST', '/api/v1/tenants', { body: { name: 'x'.repeat(300) }, headers: idem(k400) });
  assert.equal(r2.status, 400);
  assert.equal(r2.headers.get('content-type'), PROBLEM);
  assert.equal(r2.headers.get('idempotent-replayed'), 'true');
  assert.deepEqual(r2.body, r1.body);

  // another credential: another platform key, and other tenants' keys
  const pk = await srv.request('POST', '/api/v1/api-keys', { body: { name: 'second platform key', role: 'platform_admin' } });
  assert.equal(pk.status, 201, pk.text);
  const mine = await srv.request('POST', '/api/v1/tenants', { key: pk.body.key, body: { name: 'Idem Other Cred' }, headers: idem(key) });
  assert.equal(mine.status, 201, mine.text);
  assert.equal(mine.headers.get('idempotent-replayed'), null);
  assert.notEqual(mine.body.id, first.body.id);
  const shared = 'shared-key-1';
  const ua = await srv.request('POST', '/api/v1/users', {
    key: A.keys.tenant_admin, body: { email: 'same@idem.example', role: 'viewer' }, headers: idem(shared),
  });
  const ua2 = await srv.request('POST', '/api/v1/users', {
    key: A.keys.operator, body: { email: 'same@idem.example', role: 'viewer' }, headers: idem(shared),
  });
  const ub = await srv.request('POST', '/api/v1/users', {
    key: B.keys.tenant_admin, body: { email: 'same@idem.example', role: 'viewer' }, headers: idem(shared),
  });
  assert.equal(ua.status, 201, ua.text);
  assertProblem(ua2, 403, null, 'operator, same key: judged on its own');
  assert.equal(ub.status, 201, ub.text);
  assert.equal(ub.headers.get('idempotent-replayed'), null);
  assert.equal(ub.body.tenant_id, B.id);
  assert.notEqual(ub.body.id, ua.body.id);
});

test('Idempotency-Key on key creation: the replay and the store never hold the plaintext', async () => {
  const headers = { 'idempotency-key': `key-${randomUUID()}` };
  const body = { name: 'idempotent key', role: 'operator' };
  const first = await srv.request('POST', '/api/v1/api-keys', { key: A.keys.tenant_admin, body, headers });
  assert.equal(first.status, 201, first.text);
  const plain = first.body.key;
  assert.match(plain, /^apk_/);
  const again = await srv.request('POST', '/api/v1/api-keys', { key: A.keys.tenant_admin, body, headers });
  assert.equal(again.status, 201, again.text);
  assert.equal(again.headers.get('idempotent-replayed'), 'true');
  assert.equal(again.body.key, undefined, 'the replay carries the plaintext');
  assert.ok(!again.text.includes(plain));
  assert.equal(typeof again.body.key_redacted, 'string');
  assert.equal(again.body.id, first.body.id);
  const { key: _, ...meta } = first.body;
  const { key_redacted: __, ...replayMeta } = again.body;
  assert.deepEqual(replayMeta, meta);
  const list = await srv.request('GET', '/api/v1/api-keys?limit=500', { key: A.keys.tenant_admin });
  assert.equal(list.body.data.filter((k) => k.name === 'idempotent key').length, 1);
  const me = await srv.request('GET', '/api/v1/tenant', { key: plain });
  assert.equal(me.status, 200);

  // the plaintext is nowhere in the store
  const secret = plain.slice(21); // the part after apk_<lookup>_
  let stored;
  if (BACKEND === 'postgres') {
    const u = new URL(process.env.AP_TEST_PG_ADMIN_URL);
    u.pathname = '/' + srv.db;
    stored = execFileSync('psql', [u.toString(), '-qAtc',
      'SELECT response FROM idempotency_keys; SELECT k::text FROM api_keys k; SELECT a::text FROM audit_log a'], { encoding: 'utf8' });
    assert.match(stored, /key_redacted/, 'the idempotency record was read');
  } else if (srv.dataDir) {
    // every file under the data dir, subdirectories (index files) included
    stored = readdirSync(srv.dataDir, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => readFileSync(join(e.path ?? e.parentPath, e.name)).toString('latin1')).join('\n');
    assert.ok(stored.includes('key_redacted'), 'the idempotency record was read');
  }
  if (stored !== undefined) assert.ok(!stored.includes(secret), 'the plaintext key is stored');
});

test('regression: requests libmicrohttpd drops on its own are released (no leak, no stuck shutdown)', async () => {
  // The request is created when the request line arrives (to see the raw
  // target); libmicrohttpd drops some requests after that without a
  // completion call, e.g. when the query overflows its memory pool.
  // (libmicrohttpd may keep such a connection open, unanswered, until its
  // idle timeout: the client hangs up after 300 ms)
  const sends = [
    `GET /api/v1/tenants?${'a=b&'.repeat(3000)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
    `GET /api/v1/tenants HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(100000)}\r\n\r\n`,
    `POST /api/v1/tenants HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"na`,
    'GET /api/v1/tenants HTTP/1.1\r\nHost: x\r\n',
    'GET /api/v1/tenants HTTP/1.1\r\n',
    'GARBAGE\r\n\r\n',
  ];
  await Promise.all(sends.map((bytes) => new Promise((resolve) => {
    const s = net.connect(base.port, base.hostname, () => s.write(bytes));
    const timer = setTimeout(() => s.destroy(), 300);
    s.on('data', () => {});
    s.on('close', () => { clearTimeout(timer); resolve(); });
    s.on('error', () => {});
  })));
  assert.equal((await raw('GET', '/healthz')).status, 200);
});

test('keep-alive: twenty mixed requests share one connection', async () => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const sockets = new Set();
  const reused = [];
  const calls = [
    ['GET', '/api/v1/tenant', A.keys.viewer, undefined, 200],
    ['GET', '/api/v1/nope', A.keys.viewer, undefined, 404],
    ['POST', '/api/v1/users', A.keys.tenant_admin, () => JSON.stringify({ email: `ka${randomUUID()}@input-alpha.example`, role: 'viewer' }), 201],
    ['GET', '/api/v1/tenant', undefined, undefined, 401],
    ['POST', '/api/v1/users', A.keys.viewer, () => '{"email":"x@y.example","role":"viewer"}', 403],
    ['POST', '/api/v1/users', A.keys.tenant_admin, () => '{"email":', 400],
    ['PUT', '/api/v1/tenant', A.keys.viewer, undefined, 405],
  ];
  try {
    for (let i = 0; i < 20; i++) {
      const [m, p, key, mk, want] = calls[i % calls.length];
      const r = await raw(m, p, {
        key, agent, body: mk ? mk() : undefined, headers: mk ? { 'content-type': 'application/json' } : {},
      });
      assert.equal(r.status, want, `${i}: ${m} ${p}: ${r.text}`);
      assert.notEqual(r.headers.get('connection'), 'close', `${i}: the server closed the connection`);
      sockets.add(r.socket);
      reused.push(r.req.reusedSocket);
    }
  } finally {
    agent.destroy();
  }
  assert.equal(sockets.size, 1, `${sockets.size} connections used`);
  assert.deepEqual(reused, [false, ...Array(19).fill(true)]);
});

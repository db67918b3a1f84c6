// Tenants' LLM configurations: CRUD and permissions, a configuration named
// as the model, the tenant default for `auto`, defaults applied to the
// request, and USD budgets — with the OpenAI SDK against the fake upstream.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startServer, tenantWithKeys } from './lib/server.mjs';
import { startFake } from './lib/fake.mjs';

let srv, fake, t, oai;

before(async () => {
  fake = await startFake();
  srv = await startServer({
    env: {
      AP_PROVIDER_OPENAI_BASE_URL: `${fake.url}/v1`,
      AP_PROVIDER_OPENAI_API_KEY: 'sk-config-test',
      AP_FORWARD_HEADERS: 'x-fake-',
    },
  });
  t = await tenantWithKeys(srv, 'Config Tenant');
  oai = new OpenAI({ apiKey: t.keys.operator, baseURL: `${srv.url}/v1`, maxRetries: 0 });
});
after(async () => { await srv.stop(); await fake.stop(); });

const admin = () => t.keys.tenant_admin;

test('create, read, update, delete; permissions and validation', async () => {
  const body = {
    name: 'support-bot', primary_model: 'openai/gpt-4o-mini', fallback_model: 'builtin/agentprov-mini',
    temperature: 0.25, max_tokens: 77, routing_rules: [{ model: 'openai/gpt-4o-mini', when: { agent_id: 'x' } }],
  };
  const denied = await srv.request('POST', '/api/v1/llm/configs', { key: t.keys.operator, body });
  assert.equal(denied.status, 403, denied.text);
  const c = await srv.request('POST', `/api/v1/tenants/${t.id}/llm/configs`, { key: admin(), body });
  assert.equal(c.status, 201, c.text);
  assert.equal(c.body.name, 'support-bot');
  assert.equal(c.body.is_tenant_default, false);
  assert.equal(c.body.use_platform_key, true);
  assert.equal(c.body.temperature, 0.25);
  assert.equal(c.body.max_tokens, 77);
  assert.equal(c.body.budget_limit_daily, null);
  assert.deepEqual(c.body.routing_rules, body.routing_rules);

  const dup = await srv.request('POST', '/api/v1/llm/configs', { key: admin(), body });
  assert.equal(dup.status, 409, dup.text);
  for (const [bad, re] of [
    [{ name: 'a/b' }, /name/],
    [{ name: 'auto' }, /name/],
    [{ name: 'x1', primary_model: 'nope/never' }, /primary_model/],
    [{ name: 'x2', fallback_model: 'builtin/hash-embed-384' }, /embedding/],
    [{ name: 'x3', routing_rules: [{ when: {} }] }, /routing_rules\[0\]/],
    [{ name: 'x4', temperature: 3 }, /temperature/],
    [{ name: 'x5', api_key: 'sk-no' }, /api_key/],
  ]) {
    const r = await srv.request('POST', '/api/v1/llm/configs', { key: admin(), body: bad });
    assert.equal(r.status, 400, `${JSON.stringify(bad)}: ${r.text}`);
    assert.match(r.text, re);
  }

  const list = await srv.request('GET', '/api/v1/llm/configs', { key: t.keys.viewer });
  assert.equal(list.status, 200, list.text);
  assert.deepEqual(list.body.data.map((x) => x.name), ['support-bot']);
  const one = await srv.request('GET', `/api/v1/llm/configs/${c.body.id}`, { key: t.keys.viewer });
  assert.deepEqual(one.body, c.body);

  const p = await srv.request('PATCH', `/api/v1/llm/configs/${c.body.id}`, { key: admin(), body: { temperature: null, budget_limit_monthly: 12.5 } });
  assert.equal(p.status, 200, p.text);
  assert.equal(p.body.temperature, null);
  assert.equal(p.body.budget_limit_monthly, 12.5);
  assert.equal(p.body.max_tokens, 77);
  const badPatch = await srv.request('PATCH', `/api/v1/llm/configs/${c.body.id}`, { key: admin(), body: { primary_model: 'nope/never' } });
  assert.equal(badPatch.status, 400, badPatch.text);
  const back = await srv.request('PATCH', `/api/v1/llm/configs/${c.body.id}`, { key: admin(), body: { temperature: 0.25 } });
  assert.equal(back.body.temperature, 0.25);

  // another tenant sees none of it
  const other = await tenantWithKeys(srv, 'Config Other');
  const o = await srv.request('GET', `/api/v1/llm/configs/${c.body.id}`, { key: other.keys.tenant_admin });
  assert.equal(o.status, 404);
  const oc = await srv.request('GET', `/api/v1/tenants/${t.id}/llm/configs`, { key: other.keys.tenant_admin });
  assert.equal(oc.status, 404);

  const audit = await srv.request('GET', '/api/v1/audit?action=llm.config.*', { key: admin() });
  assert.deepEqual(audit.body.data.map((e) => e.action), ['llm.config.create', 'llm.config.update', 'llm.config.update']);
});

test('a configuration named as the model routes to its primary, with its defaults', async () => {
  const { data, response } = await oai.chat.completions
    .create({ model: 'support-bot', messages: [{ role: 'user', content: 'hello config' }] })
    .withResponse();
  assert.match(data.choices[0].message.content, /hello config/);
  assert.match(response.headers.get('x-agentprov-route'), /served by openai\/gpt-4o-mini \(configuration support-bot\)/);
  const last = await fake.last('/v1/chat/completions');
  assert.equal(last.body.model, 'gpt-4o-mini');
  assert.equal(last.body.temperature, 0.25);
  assert.equal(last.body.max_tokens ?? last.body.max_completion_tokens, 77);
  // the request's own values win
  await oai.chat.completions.create({ model: 'support-bot', temperature: 0.9, max_tokens: 5, messages: [{ role: 'user', content: 'mine' }] });
  const last2 = await fake.last('/v1/chat/completions');
  assert.equal(last2.body.temperature, 0.9);
  assert.equal(last2.body.max_tokens ?? last2.body.max_completion_tokens, 5);
  // the fallback: a failing primary moves to builtin
  const fb = await oai.chat.completions
    .create({ model: 'support-bot', messages: [{ role: 'user', content: 'fallback please' }] }, { headers: { 'x-fake-status': '503' } })
    .withResponse();
  assert.match(fb.response.headers.get('x-agentprov-route'), /builtin\/agentprov-mini/);
});

test('auto uses the tenant default configuration; one default at most', async () => {
  const before = await oai.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: 'who' }] }).withResponse();
  assert.match(before.response.headers.get('x-agentprov-route'), /builtin\/agentprov-mini/);
  const a = await srv.request('POST', '/api/v1/llm/configs', { key: admin(), body: { name: 'house', is_tenant_default: true, primary_model: 'openai/gpt-4o-mini' } });
  assert.equal(a.status, 201, a.text);
  const r = await oai.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: 'who' }] }).withResponse();
  assert.match(r.response.headers.get('x-agentprov-route'), /served by openai\/gpt-4o-mini \(auto: configuration house\)/);
  const b = await srv.request('POST', '/api/v1/llm/configs', { key: admin(), body: { name: 'house2', is_tenant_default: true } });
  assert.equal(b.status, 201, b.text);
  const list = await srv.request('GET', '/api/v1/llm/configs', { key: admin() });
  assert.deepEqual(list.body.data.filter((x) => x.is_tenant_default).map((x) => x.name), ['house2']);
  // a default without a primary model: auto is the platform default again
  const r2 = await oai.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: 'who' }] }).withResponse();
  assert.match(r2.response.headers.get('x-agentprov-route'), /builtin\/agentprov-mini \(auto: configuration house2\)/);
});

test('the default configuration\'s USD budget refuses calls past it', async () => {
  const list = await srv.request('GET', '/api/v1/llm/configs', { key: admin() });
  const house2 = list.body.data.find((x) => x.name === 'house2');
  const p = await srv.request('PATCH', `/api/v1/llm/configs/${house2.id}`, { key: admin(), body: { budget_limit_daily: 0.000001 } });
  assert.equal(p.status, 200, p.text);
  await assert.rejects(
    oai.chat.completions.create({ model: 'openai/gpt-4o-mini', max_tokens: 100, messages: [{ role: 'user', content: 'too dear' }] }),
    (e) => {
      assert.ok(e instanceof OpenAI.RateLimitError, String(e));
      assert.match(e.message, /budget_limit_daily/);
      assert.match(e.message, /USD/);
      assert.match(e.message, /resets at \d{4}-\d{2}-\d{2}T00:00:00\.000Z/);
      return true;
    });
  // what was spent today already passes the limit: even a call estimated at 0 USD waits
  await assert.rejects(oai.chat.completions.create({ model: 'builtin/agentprov-mini', messages: [{ role: 'user', content: 'free' }] }),
    (e) => e instanceof OpenAI.RateLimitError && /budget_limit_daily is 1e-06 USD/.test(e.message));
  const d = await srv.request('DELETE', `/api/v1/llm/configs/${house2.id}`, { key: admin() });
  assert.equal(d.status, 204, d.text);
  const gone = await srv.request('GET', `/api/v1/llm/configs/${house2.id}`, { key: admin() });
  assert.equal(gone.status, 404);
  const ok = await oai.chat.completions.create({ model: 'openai/gpt-4o-mini', max_tokens: 100, messages: [{ role: 'user', content: 'fine now' }] });
  assert.ok(ok.choices[0].message.content);
});

test('CLI: agentprov llm configs', async () => {
  const { spawnSync } = await import('node:child_process');
  const { BIN } = await import('./lib/server.mjs');
  const env = { ...process.env, AP_URL: srv.url, AP_API_KEY: t.keys.viewer };
  const j = spawnSync(BIN, ['llm', 'configs', '-o', 'json'], { env, encoding: 'utf8' });
  assert.equal(j.status, 0, j.stderr);
  assert.ok(JSON.parse(j.stdout).data.some((c) => c.name === 'support-bot'));
  const tbl = spawnSync(BIN, ['llm', 'configs'], { env, encoding: 'utf8' });
  assert.equal(tbl.status, 0, tbl.stderr);
  assert.match(tbl.stdout, /support-bot/);
});

test('BYOK: the tenant key is used upstream, and never returned, audited or logged', async () => {
  const { createHash } = await import('node:crypto');
  const KEY = 'sk-tenant-own-key-abcdef9876';
  const sha = (v) => createHash('sha256').update(v).digest('hex');
  const c = await srv.request('POST', '/api/v1/llm/configs', {
    key: admin(),
    body: { name: 'byok-bot', primary_model: 'openai/gpt-4o-mini', use_platform_key: false, byok: { provider: 'openai', api_key: KEY } },
  });
  assert.equal(c.status, 201, c.text);
  assert.deepEqual(c.body.byok, { provider: 'openai', api_key_set: true, api_key_last4: '9876' });
  assert.ok(!c.text.includes(KEY));
  await oai.chat.completions.create({ model: 'byok-bot', messages: [{ role: 'user', content: 'my key please' }] });
  let last = JSON.stringify((await fake.last('/v1/chat/completions')).headers);
  assert.ok(last.includes(sha(`Bearer ${KEY}`)) || last.includes(sha(KEY)), last);
  // use_platform_key: the platform's key again
  const p = await srv.request('PATCH', `/api/v1/llm/configs/${c.body.id}`, { key: admin(), body: { use_platform_key: true } });
  assert.equal(p.status, 200, p.text);
  assert.equal(p.body.byok.api_key_set, true);
  await oai.chat.completions.create({ model: 'byok-bot', messages: [{ role: 'user', content: 'platform key' }] });
  last = JSON.stringify((await fake.last('/v1/chat/completions')).headers);
  assert.ok(last.includes(sha('Bearer sk-config-test')) || last.includes(sha('sk-config-test')), last);
  // bad keys are refused without echoing them
  const bad = await srv.request('POST', '/api/v1/llm/configs', { key: admin(), body: { name: 'bad-byok', byok: { provider: 'openai', api_key: 'has space in it' } } });
  assert.equal(bad.status, 400);
  assert.ok(!bad.text.includes('has space'));
  const badp = await srv.request('POST', '/api/v1/llm/configs', { key: admin(), body: { name: 'bad-byok', byok: { provider: 'builtin', api_key: KEY } } });
  assert.equal(badp.status, 400);
  // removed with null
  const rm = await srv.request('PATCH', `/api/v1/llm/configs/${c.body.id}`, { key: admin(), body: { byok: null } });
  assert.equal(rm.body.byok, null);
  // never in a response, the audit log or the server's log
  const all = [
    (await srv.request('GET', '/api/v1/llm/configs', { key: admin() })).text,
    (await srv.request('GET', '/api/v1/audit?limit=500', { key: admin() })).text,
  ].join('\n');
  assert.ok(!all.includes(KEY));
  assert.ok(all.includes('"api_key_set":true'), 'the audit entry says a key was set');
  if (srv.raw) assert.ok(!srv.raw.join('').includes(KEY), 'the key is in the server log');
});

test('admin rotate-master-key re-wraps the data keys; the old master key no longer opens them', async (t) => {
  if (!srv.dataDir) return t.skip('external deployment');
  const { spawnSync } = await import('node:child_process');
  const { readFileSync, writeFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { BIN } = await import('./lib/server.mjs');
  const c = await srv.request('POST', '/api/v1/llm/configs', {
    key: admin(),
    body: { name: 'rotated', primary_model: 'openai/gpt-4o-mini', use_platform_key: false, byok: { provider: 'openai', api_key: 'sk-rotate-me-1234' } },
  });
  assert.equal(c.status, 201, c.text);
  await oai.chat.completions.create({ model: 'rotated', messages: [{ role: 'user', content: 'before' }] });
  const keyFile = join(srv.dataDir, 'master.key');
  const before = readFileSync(keyFile, 'utf8');
  const newKey = join(srv.dataDir, 'new.key');
  writeFileSync(newKey, 'ab'.repeat(32) + '\n', { mode: 0o600 });
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AP_') || k.startsWith('AP_TEST')));
  const r = spawnSync(BIN, ['admin', 'rotate-master-key', '--new-key-file', newKey, '--data-dir', srv.dataDir,
    '--database-url', srv.databaseUrl], { env, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /re-wrapped 1 data key/);
  assert.notEqual(readFileSync(keyFile, 'utf8'), before);
  assert.equal(readFileSync(keyFile, 'utf8').trim(), 'ab'.repeat(32));
  // this server still holds the old master key: the tenant key no longer opens, and
  // the call fails rather than falling back to the platform's key
  await assert.rejects(oai.chat.completions.create({ model: 'rotated', messages: [{ role: 'user', content: 'after' }] }),
    (e) => e.status === 503 && /cannot be decrypted/.test(e.message));
  // a wrong current key: nothing changes
  const r2 = spawnSync(BIN, ['admin', 'rotate-master-key', '--new-key-file', newKey, '--data-dir', srv.dataDir,
    '--database-url', srv.databaseUrl], { env: { ...env, AP_MASTER_KEY: 'cd'.repeat(32) }, encoding: 'utf8' });
  assert.equal(r2.status, 1, r2.stdout);
  assert.match(r2.stderr, /does not open with the current master key/);
  await srv.request('DELETE', `/api/v1/llm/configs/${c.body.id}`, { key: admin() });
});

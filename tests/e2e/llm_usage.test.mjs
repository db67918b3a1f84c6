// Usage reports (GET /api/v1/llm/usage) and budgets (the tenant's
// monthly_token_limit) through the gateway, with the official SDKs against
// the fake upstream.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { startServer, tenantWithKeys, BIN } from './lib/server.mjs';
import { startFake } from './lib/fake.mjs';

let srv, fake, tenant, oai;

before(async () => {
  fake = await startFake();
  srv = await startServer({
    env: {
      AP_PROVIDER_OPENAI_BASE_URL: `${fake.url}/v1`,
      AP_PROVIDER_OPENAI_API_KEY: 'sk-usage-test',
    },
  });
  tenant = await tenantWithKeys(srv, 'Usage Tenant');
  oai = new OpenAI({ apiKey: tenant.keys.operator, baseURL: `${srv.url}/v1`, maxRetries: 0 });
});
after(async () => { await srv.stop(); await fake.stop(); });

test('usage is summed by model, day and agent; priced and unpriced apart', async () => {
  const usages = [];
  for (const text of ['first usage call', 'second usage call, a little longer']) {
    const r = await oai.chat.completions.create({ model: 'openai/gpt-4o-mini', messages: [{ role: 'user', content: text }] });
    usages.push(r.usage);
  }
  const b = await oai.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: 'builtin call' }] });
  const sum = (k) => usages.reduce((n, u) => n + u[k], 0);

  const byModel = await srv.request('GET', '/api/v1/llm/usage?group_by=model', { key: tenant.keys.viewer });
  assert.equal(byModel.status, 200, byModel.text);
  assert.equal(byModel.body.group_by, 'model');
  const g = byModel.body.data.find((x) => x.model === 'openai/gpt-4o-mini');
  assert.ok(g, byModel.text);
  assert.equal(g.calls, 2);
  assert.equal(g.errors, 0);
  assert.equal(g.prompt_tokens, sum('prompt_tokens'));
  assert.equal(g.completion_tokens, sum('completion_tokens'));
  assert.equal(g.priced_calls, 2);
  assert.equal(g.unpriced_calls, 0);
  const cost = (sum('prompt_tokens') * 0.15 + sum('completion_tokens') * 0.6) / 1e6;
  assert.ok(Math.abs(g.cost_usd - cost) < 1e-12, `${g.cost_usd} vs ${cost}`);
  const bi = byModel.body.data.find((x) => x.model === 'builtin/agentprov-mini');
  assert.equal(bi.calls, 1);
  assert.equal(bi.prompt_tokens, b.usage.prompt_tokens);
  assert.equal(byModel.body.total.calls, 3);
  assert.equal(byModel.body.total.priced_calls + byModel.body.total.unpriced_calls, 3);

  const byDay = await srv.request('GET', `/api/v1/tenants/${tenant.id}/llm/usage`, { key: tenant.keys.tenant_admin });
  assert.equal(byDay.status, 200, byDay.text);
  assert.equal(byDay.body.group_by, 'day');
  assert.equal(byDay.body.data.length, 1);
  assert.equal(byDay.body.data[0].day, new Date().toISOString().slice(0, 10));
  assert.equal(byDay.body.data[0].calls, 3);
  assert.equal(byDay.body.data[0].prompt_tokens, sum('prompt_tokens') + b.usage.prompt_tokens);

  const byAgent = await srv.request('GET', '/api/v1/llm/usage?group_by=agent', { key: tenant.keys.operator });
  assert.equal(byAgent.status, 200, byAgent.text);
  assert.deepEqual(byAgent.body.data.map((x) => [x.agent_id, x.calls]), [[null, 3]]);

  const future = await srv.request('GET', '/api/v1/llm/usage?since=2999-01-01T00:00:00Z', { key: tenant.keys.viewer });
  assert.equal(future.status, 200, future.text);
  assert.deepEqual(future.body.data, []);
  assert.equal(future.body.total.calls, 0);
  assert.equal(future.body.since, '2999-01-01T00:00:00.000Z');

  const bad = await srv.request('GET', '/api/v1/llm/usage?group_by=week', { key: tenant.keys.viewer });
  assert.equal(bad.status, 400);
  assert.match(bad.text, /group_by/);
  const badTime = await srv.request('GET', '/api/v1/llm/usage?until=yesterday', { key: tenant.keys.viewer });
  assert.equal(badTime.status, 400);

  // another tenant sees none of it
  const other = await tenantWithKeys(srv, 'Usage Other');
  const o = await srv.request('GET', '/api/v1/llm/usage', { key: other.keys.viewer });
  assert.equal(o.body.total.calls, 0);
});

test('CLI: agentprov llm usage', () => {
  const env = { ...process.env, AP_URL: srv.url, AP_API_KEY: tenant.keys.viewer };
  const j = spawnSync(BIN, ['llm', 'usage', '--group-by', 'model', '-o', 'json'], { env, encoding: 'utf8' });
  assert.equal(j.status, 0, j.stderr);
  const rep = JSON.parse(j.stdout);
  assert.equal(rep.group_by, 'model');
  assert.ok(rep.data.some((x) => x.model === 'openai/gpt-4o-mini'));
  const t = spawnSync(BIN, ['llm', 'usage'], { env, encoding: 'utf8' });
  assert.equal(t.status, 0, t.stderr);
  assert.match(t.stdout, /total/);
  assert.match(t.stdout, new RegExp(new Date().toISOString().slice(0, 10)));
  const bad = spawnSync(BIN, ['llm', 'usage', '--group-by'], { env, encoding: 'utf8' });
  assert.equal(bad.status, 2);
});

test('a tenant over its monthly_token_limit gets 429 naming the budget, in each protocol', async () => {
  const t = await tenantWithKeys(srv, 'Budget Tenant');
  const client = new OpenAI({ apiKey: t.keys.operator, baseURL: `${srv.url}/v1`, maxRetries: 0 });
  const ok = await client.chat.completions.create({ model: 'openai/gpt-4o-mini', max_tokens: 50, messages: [{ role: 'user', content: 'under budget' }] });
  assert.ok(ok.usage.prompt_tokens > 0);
  // over 80% spent, and the next call's estimate passes the limit
  const spent = ok.usage.prompt_tokens + ok.usage.completion_tokens;
  assert.ok(spent >= 4, `spent ${spent}`);
  const p = await srv.request('PATCH', `/api/v1/tenants/${t.id}`, { body: { monthly_token_limit: spent + 1 } });
  assert.equal(p.status, 200, p.text);
  const u = await srv.request('GET', '/api/v1/llm/usage', { key: t.keys.viewer }); // flushes usage
  assert.equal(u.body.total.calls, 1);

  await assert.rejects(
    client.chat.completions.create({ model: 'openai/gpt-4o-mini', max_tokens: 50, messages: [{ role: 'user', content: 'over budget' }] }),
    (e) => {
      assert.ok(e instanceof OpenAI.RateLimitError, String(e));
      assert.equal(e.status, 429);
      assert.match(e.message, /monthly_token_limit/);
      assert.match(e.message, /resets at \d{4}-\d{2}-01T00:00:00\.000Z/);
      const ra = typeof e.headers?.get === 'function' ? e.headers.get('retry-after') : e.headers?.['retry-after'];
      assert.ok(Number(ra) >= 1, `retry-after ${ra}`);
      return true;
    });
  const ant = new Anthropic({ apiKey: t.keys.operator, baseURL: srv.url, maxRetries: 0 });
  await assert.rejects(
    ant.messages.create({ model: 'openai/gpt-4o-mini', max_tokens: 50, messages: [{ role: 'user', content: 'over budget' }] }),
    (e) => e instanceof Anthropic.RateLimitError && /monthly_token_limit/.test(e.message));
  await assert.rejects(client.embeddings.create({ model: 'auto', input: 'x'.repeat(400) }),
    (e) => e instanceof OpenAI.RateLimitError);
  // a refused call is not sent upstream and not metered
  const u2 = await srv.request('GET', '/api/v1/llm/usage', { key: t.keys.viewer });
  assert.equal(u2.body.total.calls, 1);

  // threshold events: audited once per budget, period and threshold
  const audit = await srv.request('GET', '/api/v1/audit?action=llm.budget.threshold', { key: t.keys.tenant_admin });
  assert.equal(audit.status, 200, audit.text);
  const thresholds = audit.body.data.map((e) => e.changes.threshold_percent).sort();
  assert.deepEqual(thresholds, [100, 80], audit.text);
  assert.ok(audit.body.data.every((e) => e.changes.budget === 'monthly_token_limit' && e.changes.unit === 'tokens'));

  // raising the limit lets calls through again
  await srv.request('PATCH', `/api/v1/tenants/${t.id}`, { body: { monthly_token_limit: 1000000 } });
  const again = await client.chat.completions.create({ model: 'openai/gpt-4o-mini', max_tokens: 50, messages: [{ role: 'user', content: 'within budget again' }] });
  assert.ok(again.choices[0].message.content);
});

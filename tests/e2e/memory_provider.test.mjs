// Agent memory with a provider embedder (the fake upstream speaking the
// OpenAI embeddings API): remember and recall through it, then a change
// of memory_config.embedder re-embeds the agent's memories in the
// background and recall keeps working.  Provider embedding calls made by
// memory are metered (llm_usage, by agent) and checked against budgets.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, tenantWithKeys } from './lib/server.mjs';
import { startFake } from './lib/fake.mjs';
import { makeAgent, setMemoryConfig } from './lib/agents.mjs';

let fake;
let srv;
let t;
let agent;

before(async () => {
  fake = await startFake();
  srv = await startServer({
    env: { AP_PROVIDER_OPENAI_BASE_URL: `${fake.url}/v1`, AP_PROVIDER_OPENAI_API_KEY: 'sk-fake-upstream-key' },
  });
  t = await tenantWithKeys(srv, 'Mem Provider');
  agent = await makeAgent(srv, t.id, 'provider-agent', { embedder: 'openai/text-embedding-3-small', dimensions: 256 });
});
after(async () => { await srv?.stop(); await fake?.stop(); });

const base = () => `/api/v1/tenants/${t.id}/agents/${agent}/memory`;

test('remember and recall embed through the provider', async () => {
  const texts = ['The invoice run starts on the first of the month', 'Backups are kept for ninety days', 'The on-call phone is in the top drawer'];
  const ids = [];
  for (const content of texts) {
    const r = await srv.request('POST', base(), { key: t.keys.operator, body: { content, memory_type: 'fact' } });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.body.embedder, 'openai/text-embedding-3-small');
    assert.equal(r.body.dim, 256);
    ids.push(r.body.id);
  }
  const last = await fake.last('/v1/embeddings');
  assert.ok(JSON.stringify(last).includes('text-embedding-3-small'), JSON.stringify(last).slice(0, 300));
  const r = await srv.request('POST', `${base()}:recall`, { key: t.keys.viewer, body: { query: texts[1], min_similarity: 0 } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.data[0].id, ids[1]);
  assert.ok(r.body.data[0].similarity > 0.99);
});

test('memory embedding calls are metered in llm usage, by agent and model', async () => {
  // the test above: three remembers and one recall, each one provider call
  const byAgent = await srv.request('GET', '/api/v1/llm/usage?group_by=agent', { key: t.keys.viewer });
  assert.equal(byAgent.status, 200, byAgent.text);
  const g = byAgent.body.data.find((x) => x.agent_id === agent);
  assert.ok(g, byAgent.text);
  assert.equal(g.calls, 4, byAgent.text);
  assert.equal(g.errors, 0);
  assert.ok(g.prompt_tokens > 0, byAgent.text);
  assert.equal(g.priced_calls, 4);
  assert.ok(g.cost_usd > 0, byAgent.text);
  const byModel = await srv.request('GET', `/api/v1/tenants/${t.id}/llm/usage?group_by=model`, { key: t.keys.viewer });
  assert.equal(byModel.status, 200, byModel.text);
  const m = byModel.body.data.find((x) => /text-embedding-3-small/.test(x.model));
  assert.ok(m, byModel.text);
  assert.equal(m.calls, 4);
});

test('a tenant over budget cannot remember with a provider embedder: 429 naming the budget, nothing stored', async () => {
  const t2 = await tenantWithKeys(srv, 'Mem Budget');
  const a2 = await makeAgent(srv, t2.id, 'budget-agent', { embedder: 'openai/text-embedding-3-small', dimensions: 256 });
  const p = await srv.request('PATCH', `/api/v1/tenants/${t2.id}`, { body: { monthly_token_limit: 1 } });
  assert.equal(p.status, 200, p.text);
  const before = await fake.last('/v1/embeddings');
  const r = await srv.request('POST', `/api/v1/tenants/${t2.id}/agents/${a2}/memory`,
    { key: t2.keys.operator, body: { content: 'The budget is far too small for this sentence', memory_type: 'fact' } });
  assert.equal(r.status, 429, r.text);
  assert.match(r.body.type, /budget-exceeded/);
  assert.match(r.body.detail, /monthly_token_limit/);
  assert.match(r.body.detail, /text-embedding-3-small/);
  assert.deepEqual(await fake.last('/v1/embeddings'), before); // nothing sent upstream
  const list = await srv.request('GET', `/api/v1/tenants/${t2.id}/agents/${a2}/memory`, { key: t2.keys.viewer });
  assert.equal(list.status, 200, list.text);
  assert.equal(list.body.data.length, 0);
  const u = await srv.request('GET', '/api/v1/llm/usage?group_by=agent', { key: t2.keys.viewer });
  assert.equal(u.body.total.calls, 0, u.text); // a refused call is not metered
  // the builtin embedder needs no budget
  setMemoryConfig(srv, a2, { embedder: 'builtin' });
  const ok = await srv.request('POST', `/api/v1/tenants/${t2.id}/agents/${a2}/memory`,
    { key: t2.keys.operator, body: { content: 'Builtin embeddings are free', memory_type: 'fact' } });
  assert.equal(ok.status, 201, ok.text);
});

test('changing the embedder re-embeds in the background', async () => {
  setMemoryConfig(srv, agent, { embedder: 'builtin' });
  // the first recall sees the other embedder's rows and queues the job
  await srv.request('POST', `${base()}:recall`, { key: t.keys.viewer, body: { query: 'backups' } });
  let rows = [];
  for (let i = 0; i < 100; i++) {
    rows = (await srv.request('GET', `${base()}?limit=100`, { key: t.keys.viewer })).body.data;
    if (rows.every((m) => m.embedder === 'builtin/hash-embed-384')) break;
    await new Promise((res) => setTimeout(res, 100));
  }
  assert.ok(rows.every((m) => m.embedder === 'builtin/hash-embed-384' && m.dim === 384), JSON.stringify(rows.map((m) => m.embedder)));
  const r = await srv.request('POST', `${base()}:recall`, { key: t.keys.viewer, body: { query: 'how long are backups kept' } });
  assert.equal(r.status, 200, r.text);
  assert.match(r.body.data[0].content, /Backups are kept/);
});

test('an embedding model that does not exist is a clear error', async () => {
  setMemoryConfig(srv, agent, { embedder: 'nosuch/model' });
  const r = await srv.request('POST', base(), { key: t.keys.operator, body: { content: 'x y z', memory_type: 'fact' } });
  assert.equal(r.status, 404, r.text);
  assert.match(r.body.detail, /nosuch\/model/);
  setMemoryConfig(srv, agent, {});
});

// Routing policies through the gateway (docs/llm-gateway.md "Routing
// policies"): cheapest, fastest, auto by difficulty, a configuration's
// routing rules pinning by request metadata, and the X-AgentProv-Route
// explanation of each — with the OpenAI SDK against the fake upstream
// (OpenAI is the only provider with a key here, next to the builtin model).
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
      AP_PROVIDER_OPENAI_API_KEY: 'sk-routing-test',
      AP_FORWARD_HEADERS: 'x-fake-',
      AP_RETRY_MAX: '0',
    },
  });
  t = await tenantWithKeys(srv, 'Routing Tenant');
  oai = new OpenAI({ apiKey: t.keys.operator, baseURL: `${srv.url}/v1`, maxRetries: 0 });
});
after(async () => { await srv.stop(); await fake.stop(); });

const chat = (body, headers) => oai.chat.completions.create({ messages: [{ role: 'user', content: 'hello' }], ...body }, { headers }).withResponse();
const route = (r) => r.response.headers.get('x-agentprov-route');
const models = async (q) => (await srv.request('GET', `/api/v1/llm/models?capability=chat&limit=500${q}`, { key: t.keys.viewer })).body.data;

test('cheapest: the free builtin model, or the cheapest OpenAI model at a quality floor', async () => {
  const r = await chat({ model: 'cheapest' });
  assert.match(route(r), /^served by builtin\/agentprov-mini \(cheapest: lowest estimated cost; \d+ usable models, needs ~\d+ tokens/);
  const g = await chat({ model: 'cheapest', metadata: { quality_floor: 'good' } });
  const m = route(g).match(/^served by (openai\/[^ ]+) \(cheapest: lowest estimated cost; .*quality floor good\)/);
  assert.ok(m, route(g));
  assert.equal(`openai/${g.data.model}`, m[1]); // the fake echoes the model it was sent
  // no OpenAI chat model at good or best costs less (same estimate: ~2 prompt tokens, 1024 out)
  const cost = (x) => (2 * x.input_usd_per_mtok + 1024 * x.output_usd_per_mtok);
  const all = (await models('&provider=openai')).filter((x) => ['good', 'best'].includes(x.quality_tier));
  const chosen = all.find((x) => x.id === m[1]);
  assert.ok(chosen);
  assert.ok(all.every((x) => cost(chosen) <= cost(x)), m[1]);
});

test('fastest: with an image, a vision model of the fastest tier', async () => {
  const r = await chat({
    model: 'fastest',
    messages: [{ role: 'user', content: [{ type: 'text', text: 'what is this?' }, { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } }] }],
  });
  const m = route(r).match(/^served by (openai\/[^ ]+) \(fastest: fastest tier; \d+ usable models, needs vision/);
  assert.ok(m, route(r));
  const vision = (await models('&provider=openai')).filter((x) => x.supports_vision);
  const chosen = vision.find((x) => x.id === m[1]);
  assert.equal(chosen.speed_tier, 'fast');
});

test('auto: easy requests to the cheap tier, hard ones to the best tier', async () => {
  const easy = await chat({ model: 'auto', messages: [{ role: 'user', content: 'What time zone is Paris in?' }] });
  assert.match(route(easy), /^served by builtin\/agentprov-mini \(auto: easy request \(short, plain\) -> basic tier/);
  const hard = await chat({ model: 'auto', messages: [{ role: 'user', content: 'Prove step by step that the halting problem is undecidable.' }] });
  const m = route(hard).match(/^served by (openai\/[^ ]+) \(auto: hard request \(cue "prove", cue "step by step"\) -> best tier/);
  assert.ok(m, route(hard));
  const chosen = (await models('&provider=openai')).find((x) => x.id === m[1]);
  assert.equal(chosen.quality_tier, 'best');
  // a policy's ranked candidates are its fallbacks: a failing first choice moves on
  const fb = await chat({ model: 'auto', messages: [{ role: 'user', content: 'Prove step by step that 2 is prime.' }] }, { 'x-fake-fail-first': '1', 'x-fake-key': `routing-${Date.now()}`, 'x-fake-status': '503' });
  assert.match(route(fb), /^served by openai\/[^ ]+ \(auto: hard request .*\); failed openai\/[^ ]+: overloaded$/);
});

test('routing rules pin by request metadata, in order; a catch-all rule is the policy', async () => {
  const bad = await srv.request('POST', '/api/v1/llm/configs', { key: t.keys.tenant_admin, body: { name: 'x', routing_rules: [{ when: { agent: 'a' }, model: 'openai/gpt-4o' }] } });
  assert.equal(bad.status, 400, bad.text);
  assert.match(bad.body.detail, /routing_rules\[0\] has a "when" key other than agent_id, task_type and metadata/);
  const unknown = await srv.request('POST', '/api/v1/llm/configs', { key: t.keys.tenant_admin, body: { name: 'x', routing_rules: [{ model: 'nope/nothing' }] } });
  assert.equal(unknown.status, 400, unknown.text);
  assert.match(unknown.body.detail, /routing_rules\[0\]\.model "nope\/nothing"/);
  const c = await srv.request('POST', '/api/v1/llm/configs', {
    key: t.keys.tenant_admin,
    body: {
      name: 'house', is_tenant_default: true,
      routing_rules: [
        { when: { metadata: { team: 'research' } }, model: 'openai/gpt-4o-mini' },
        { when: { metadata: { team: 'research', tier: 'gold' } }, model: 'openai/gpt-4o' },
        { policy: 'fastest' },
      ],
    },
  });
  assert.equal(c.status, 201, c.text);
  const pinned = await chat({ model: 'auto', metadata: { team: 'research', tier: 'gold' } });
  assert.equal(route(pinned), 'served by openai/gpt-4o-mini (auto: configuration house rule 1)');
  assert.equal(pinned.data.model, 'gpt-4o-mini');
  const rest = await chat({ model: 'auto', metadata: { team: 'sales' } });
  assert.match(route(rest), /^served by builtin\/agentprov-mini \(auto: configuration house policy: fastest tier; /);
});

test('cached routes follow catalog and configuration writes at once', async () => {
  const c = await srv.request('POST', '/api/v1/llm/models', { body: { provider_id: 'openai', model_id: 'gpt-cache-e2e', display_name: 'cache e2e', input_usd_per_mtok: 1, output_usd_per_mtok: 2 } });
  assert.equal(c.status, 201, c.text);
  for (let i = 0; i < 2; i++) { // the second call is served from the cached route
    const r = await chat({ model: 'openai/gpt-cache-e2e' });
    assert.equal(route(r), 'served by openai/gpt-cache-e2e (requested)');
  }
  const d = await srv.request('POST', '/api/v1/llm/models:deactivate', { body: { id: 'openai/gpt-cache-e2e' } });
  assert.equal(d.status, 200, d.text);
  await assert.rejects(chat({ model: 'openai/gpt-cache-e2e' }), (e) => e instanceof OpenAI.NotFoundError);
  // a configuration named as the model: a change of its primary model shows on the next call
  const cfg = await srv.request('POST', '/api/v1/llm/configs', { key: t.keys.tenant_admin, body: { name: 'pinned', primary_model: 'openai/gpt-4o-mini' } });
  assert.equal(cfg.status, 201, cfg.text);
  assert.equal(route(await chat({ model: 'pinned' })), 'served by openai/gpt-4o-mini (configuration pinned)');
  assert.equal(route(await chat({ model: 'pinned' })), 'served by openai/gpt-4o-mini (configuration pinned)');
  const p = await srv.request('PATCH', `/api/v1/llm/configs/${cfg.body.id}`, { key: t.keys.tenant_admin, body: { primary_model: 'openai/gpt-4o' } });
  assert.equal(p.status, 200, p.text);
  assert.equal(route(await chat({ model: 'pinned' })), 'served by openai/gpt-4o (configuration pinned)');
});

// The OpenAI- and Anthropic-compatible gateway, driven by the official SDKs
// against the real binary, with the fake upstream (tests/fake) standing in
// for the providers.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { startServer, tenantWithKeys } from './lib/server.mjs';
import { startFake } from './lib/fake.mjs';

let srv, fake, tenant, oai, ant;
const UPSTREAM_KEY = 'sk-upstream-test-0123456789';

before(async () => {
  fake = await startFake();
  srv = await startServer({
    env: {
      AP_PROVIDER_OPENAI_BASE_URL: `${fake.url}/v1`,
      AP_PROVIDER_OPENAI_API_KEY: UPSTREAM_KEY,
      AP_PROVIDER_ANTHROPIC_BASE_URL: `${fake.url}/v1`,
      AP_PROVIDER_ANTHROPIC_API_KEY: UPSTREAM_KEY,
      AP_PROVIDER_GOOGLE_BASE_URL: `${fake.url}/v1beta`,
      AP_PROVIDER_GOOGLE_API_KEY: UPSTREAM_KEY,
      AP_FORWARD_HEADERS: 'x-fake-',
    },
  });
  tenant = await tenantWithKeys(srv, 'Gateway Tenant');
  oai = new OpenAI({ apiKey: tenant.keys.operator, baseURL: `${srv.url}/v1`, maxRetries: 0 });
  ant = new Anthropic({ apiKey: tenant.keys.operator, baseURL: srv.url, maxRetries: 0 });
});
after(async () => { await srv.stop(); await fake.stop(); });

test('openai SDK: chat completion through an OpenAI-protocol provider', async () => {
  const { data, response } = await oai.chat.completions
    .create({ model: 'openai/gpt-4o-mini', messages: [{ role: 'user', content: 'Hello there gateway' }] })
    .withResponse();
  assert.match(data.choices[0].message.content, /Hello there gateway/);
  assert.equal(data.choices[0].finish_reason, 'stop');
  assert.ok(data.usage.prompt_tokens > 0);
  assert.match(response.headers.get('x-agentprov-route'), /served by openai\/gpt-4o-mini/);
  // the upstream saw the platform's provider key, not the tenant's key
  const last = await fake.last('/v1/chat/completions');
  const auth = JSON.stringify(last.headers);
  assert.ok(auth.includes(createHash('sha256').update(`Bearer ${UPSTREAM_KEY}`).digest('hex')) ||
            auth.includes(createHash('sha256').update(UPSTREAM_KEY).digest('hex')), auth);
  assert.equal(last.body.model, 'gpt-4o-mini');
});

test('openai SDK: streaming with usage', async () => {
  const stream = await oai.chat.completions.create({
    model: 'openai/gpt-4o-mini', stream: true, stream_options: { include_usage: true },
    messages: [{ role: 'user', content: 'stream me please' }],
  });
  let text = '';
  let usage = null;
  let finish = null;
  for await (const chunk of stream) {
    if (chunk.choices?.[0]?.delta?.content) text += chunk.choices[0].delta.content;
    if (chunk.choices?.[0]?.finish_reason) finish = chunk.choices[0].finish_reason;
    if (chunk.usage) usage = chunk.usage;
  }
  assert.match(text, /stream me please/);
  assert.equal(finish, 'stop');
  assert.ok(usage && usage.completion_tokens > 0);
});

test('openai SDK: tool calls come back as tool_calls, in streams too', async () => {
  const tools = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];
  const headers = { 'x-fake-tool-call': 'get_weather:{"city":"Paris"}' };
  const r = await oai.chat.completions.create({ model: 'openai/gpt-4o-mini', tools, messages: [{ role: 'user', content: 'weather?' }] }, { headers });
  const call = r.choices[0].message.tool_calls[0];
  assert.equal(call.function.name, 'get_weather');
  assert.deepEqual(JSON.parse(call.function.arguments), { city: 'Paris' });
  assert.equal(r.choices[0].finish_reason, 'tool_calls');
  const s = await oai.chat.completions.create({ model: 'openai/gpt-4o-mini', tools, stream: true, messages: [{ role: 'user', content: 'weather?' }] }, { headers });
  let name = '', args = '';
  for await (const c of s) {
    const tc = c.choices?.[0]?.delta?.tool_calls?.[0];
    if (tc?.function?.name) name += tc.function.name;
    if (tc?.function?.arguments) args += tc.function.arguments;
  }
  assert.equal(name, 'get_weather');
  assert.deepEqual(JSON.parse(args), { city: 'Paris' });
});

test('anthropic SDK: messages, streaming, tool use', async () => {
  const m = await ant.messages.create({ model: 'anthropic/claude-sonnet-4-5', max_tokens: 200, messages: [{ role: 'user', content: 'Bonjour Claude' }] });
  assert.equal(m.type, 'message');
  assert.match(m.content[0].text, /Bonjour Claude/);
  assert.equal(m.stop_reason, 'end_turn');
  assert.ok(m.usage.input_tokens > 0);
  const stream = ant.messages.stream({ model: 'anthropic/claude-sonnet-4-5', max_tokens: 200, messages: [{ role: 'user', content: 'stream bonjour' }] });
  const final = await stream.finalMessage();
  assert.match(final.content.map((b) => b.text || '').join(''), /stream bonjour/);
  const t = await ant.messages.create({
    model: 'anthropic/claude-sonnet-4-5', max_tokens: 200,
    tools: [{ name: 'lookup', input_schema: { type: 'object', properties: { q: { type: 'string' } } } }],
    messages: [{ role: 'user', content: 'look it up' }],
  }, { headers: { 'x-fake-tool-call': 'lookup:{"q":"agents"}' } });
  const use = t.content.find((b) => b.type === 'tool_use');
  assert.equal(use.name, 'lookup');
  assert.deepEqual(use.input, { q: 'agents' });
  assert.equal(t.stop_reason, 'tool_use');
});

test('cross-protocol: the OpenAI SDK reaches an Anthropic model and a Gemini model', async () => {
  const a = await oai.chat.completions.create({ model: 'anthropic/claude-sonnet-4-5', messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'cross one' }] });
  assert.match(a.choices[0].message.content, /cross one/);
  const last = await fake.last('/v1/messages');
  assert.equal(last.body.system === 'be brief' || JSON.stringify(last.body.system).includes('be brief'), true);
  const g = await oai.chat.completions.create({ model: 'google/gemini-2.5-flash', messages: [{ role: 'user', content: 'cross two' }] });
  assert.match(g.choices[0].message.content, /cross two/);
  const sm = await ant.messages.create({ model: 'openai/gpt-4o-mini', max_tokens: 50, messages: [{ role: 'user', content: 'cross three' }] });
  assert.match(sm.content[0].text, /cross three/);
});

test('the builtin model answers offline, and auto picks it by default', async () => {
  const r = await oai.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: 'What is AgentProvision?' }] });
  assert.equal(typeof r.choices[0].message.content, 'string');
  assert.ok(r.choices[0].message.content.length > 0);
  const s = await oai.chat.completions.create({ model: 'builtin/agentprov-mini', stream: true, messages: [{ role: 'user', content: 'hello' }] });
  let n = 0;
  for await (const c of s) if (c.choices?.[0]?.delta?.content) n++;
  assert.ok(n > 0);
});

test('errors arrive as the SDKs\' own error types', async () => {
  await assert.rejects(oai.chat.completions.create({ model: 'nope/not-a-model', messages: [{ role: 'user', content: 'x' }] }), OpenAI.NotFoundError);
  await assert.rejects(oai.chat.completions.create({ model: 'openai/gpt-4o-mini' }), OpenAI.BadRequestError);
  await assert.rejects(
    oai.chat.completions.create({ model: 'openai/gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }, { headers: { 'x-fake-status': '429', 'x-fake-retry-after': '7' } }),
    (e) => e instanceof OpenAI.RateLimitError && e.headers.get('retry-after') === '7');
  const bad = new OpenAI({ apiKey: 'apk_AAAAAAAAAAAAAAAA_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', baseURL: `${srv.url}/v1`, maxRetries: 0 });
  await assert.rejects(bad.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: 'x' }] }), OpenAI.AuthenticationError);
  await assert.rejects(
    ant.messages.create({ model: 'anthropic/claude-sonnet-4-5', max_tokens: 10, messages: [{ role: 'user', content: 'x' }] }, { headers: { 'x-fake-status': '529' } }),
    (e) => e instanceof Anthropic.APIError && e.status >= 500);
  const viewer = new OpenAI({ apiKey: tenant.keys.viewer, baseURL: `${srv.url}/v1`, maxRetries: 0 });
  await assert.rejects(viewer.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: 'x' }] }), OpenAI.PermissionDeniedError);
});

test('embeddings: OpenAI-style upstream and the builtin hashed embedder', async () => {
  const e = await oai.embeddings.create({ model: 'builtin/hash-embed-384', input: ['agents remember', 'agents recall'] });
  assert.equal(e.data.length, 2);
  assert.equal(e.data[0].embedding.length, 384);
  const norm = Math.sqrt(e.data[0].embedding.reduce((s, x) => s + x * x, 0));
  assert.ok(Math.abs(norm - 1) < 1e-3);
  const u = await oai.embeddings.create({ model: 'openai/text-embedding-3-small', input: 'hello' });
  assert.equal(u.data.length, 1);
  assert.ok(u.data[0].embedding.length > 0);
});

test('models list shows the catalog', async () => {
  const page = await oai.models.list();
  const ids = [];
  for await (const m of page) ids.push(m.id);
  assert.ok(ids.includes('openai/gpt-4o-mini'));
  assert.ok(ids.length >= 60);
});

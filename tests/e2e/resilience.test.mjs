// Retries with backoff (honouring Retry-After) on the same target, and the
// per-model circuit breaker, through the gateway against the fake upstream.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import OpenAI from 'openai';
import { startServer, tenantWithKeys } from './lib/server.mjs';
import { startFake } from './lib/fake.mjs';

let srv, fake, oai;

before(async () => {
  fake = await startFake();
  srv = await startServer({
    env: {
      AP_PROVIDER_OPENAI_BASE_URL: `${fake.url}/v1`,
      AP_PROVIDER_OPENAI_API_KEY: 'sk-resilience-test',
      AP_FORWARD_HEADERS: 'x-fake-',
      AP_BREAKER_THRESHOLD: '3',
      AP_BREAKER_OPEN_MS: '1500',
      AP_RETRY_BASE_MS: '20',
    },
  });
  const t = await tenantWithKeys(srv, 'Resilient');
  oai = new OpenAI({ apiKey: t.keys.operator, baseURL: `${srv.url}/v1`, maxRetries: 0 });
});
after(async () => { await srv.stop(); await fake.stop(); });

const chatCalls = async () => (await (await fetch(`${fake.url}/_fake/stats`)).json()).paths['/v1/chat/completions'] ?? 0;
const ask = (model, headers = {}) => oai.chat.completions
  .create({ model, messages: [{ role: 'user', content: 'resilience' }] }, { headers }).withResponse();

test('a failing provider call is retried on the same model and then succeeds', async () => {
  const key = randomBytes(6).toString('hex');
  const before0 = await chatCalls();
  const { data, response } = await ask('openai/gpt-4o-mini', { 'x-fake-fail-first': '2', 'x-fake-key': key, 'x-fake-status': '503' });
  assert.match(data.choices[0].message.content, /resilience/);
  const route = response.headers.get('x-agentprov-route');
  assert.match(route, /^served by openai\/gpt-4o-mini/);
  assert.equal(route.match(/failed openai\/gpt-4o-mini: overloaded/g).length, 2, route);
  assert.equal(await chatCalls() - before0, 3, 'two retries, then the answer');
});

test('Retry-After is honoured when short, and passed on when long', async () => {
  const key = randomBytes(6).toString('hex');
  const t0 = Date.now();
  const { data } = await ask('openai/gpt-4o-mini', { 'x-fake-fail-first': '1', 'x-fake-key': key, 'x-fake-status': '429', 'x-fake-retry-after': '1' });
  assert.ok(data.choices[0].message.content);
  assert.ok(Date.now() - t0 >= 900, `waited ${Date.now() - t0} ms`);
  const before0 = await chatCalls();
  await assert.rejects(ask('openai/gpt-4o-mini', { 'x-fake-status': '429', 'x-fake-retry-after': '30' }),
    (e) => e instanceof OpenAI.RateLimitError && e.headers.get('retry-after') === '30');
  assert.equal(await chatCalls() - before0, 1, 'a 30 s Retry-After is not waited for');
});

test('client errors are not retried', async () => {
  const before0 = await chatCalls();
  await assert.rejects(ask('openai/gpt-4o', { 'x-fake-status': '400' }), OpenAI.APIError);
  assert.equal(await chatCalls() - before0, 1);
});

test('the circuit opens after repeated failures, refuses at once, and closes after a good probe', async () => {
  const model = 'openai/gpt-4.1-mini';
  // 3 consecutive failures (1 call + 2 retries) open it
  await assert.rejects(ask(model, { 'x-fake-status': '500' }), OpenAI.APIError);
  const before0 = await chatCalls();
  const t0 = Date.now();
  await assert.rejects(ask(model), (e) => e instanceof OpenAI.APIError && /circuit open/.test(e.message));
  assert.ok(Date.now() - t0 < 1000, 'refused without waiting');
  assert.equal(await chatCalls() - before0, 0, 'no request reached the provider while open');
  // other models are not affected
  const other = await ask('openai/gpt-4o-mini');
  assert.ok(other.data.choices[0].message.content);
  // after the open period one probe goes through; its success closes the circuit
  await new Promise((r) => setTimeout(r, 1600));
  const probe = await ask(model);
  assert.ok(probe.data.choices[0].message.content);
  const again = await ask(model);
  assert.ok(again.data.choices[0].message.content);
});

// Clients that go away mid-stream, many at once, while the provider keeps
// streaming slowly: each disconnect cancels its upstream call, and the
// server stays healthy (the sanitizer build's clean exit at stop() also
// says no request was freed under another thread).
test('streams aborted mid-flight cancel their upstream calls and leave the server healthy', async () => {
  const { request } = await import('node:http');
  const url = new URL(`${srv.url}/v1/chat/completions`);
  const body = JSON.stringify({ model: 'openai/gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'abort me '.repeat(20) }] });
  const one = (i) => new Promise((resolve, reject) => {
    const req = request({
      host: url.hostname, port: url.port, path: url.pathname, method: 'POST', agent: false,
      headers: {
        authorization: `Bearer ${oai.apiKey}`, 'content-type': 'application/json',
        'x-fake-chunks': '400', 'x-fake-chunk-delay-ms': '5',
      },
    }, (res) => {
      assert.equal(res.statusCode, 200);
      let events = 0;
      const want = 1 + (i % 4) * 3; // abort after 1, 4, 7 or 10 events
      res.on('data', (d) => {
        events += (d.toString().match(/^data: /gm) || []).length;
        if (events >= want) { req.destroy(); resolve(); }
      });
      res.on('error', () => {});
      res.on('end', () => reject(new Error('the stream ended before the abort')));
    });
    req.on('error', () => {});
    req.end(body);
  });
  for (let round = 0; round < 3; round++) await Promise.all(Array.from({ length: 32 }, (_, i) => one(i)));
  // every upstream stream is cancelled (on_gone → the call's cancel), long before 400 × 5 ms
  const t0 = Date.now();
  let active;
  for (;;) {
    active = (await (await fetch(`${fake.url}/_fake/stats`)).json()).active_streams;
    if (active === 0 || Date.now() - t0 > 5000) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(active, 0, 'upstream streams still running after their clients left');
  const { data } = await ask('openai/gpt-4o-mini');
  assert.match(data.choices[0].message.content, /resilience/);
  assert.equal((await fetch(`${srv.url}/readyz`)).status, 200);
});

// The gateway's calls run on the server workers' own upstream loops: a
// shutdown that outlasts --shutdown-timeout ends them, and their clients get
// an error answer naming it instead of a dropped connection; the server
// exits cleanly (the sanitizer build fails the exit on a leak).
test('SIGTERM with gateway calls in flight past the bound: each ends with "shutting down", clean exit', async () => {
  const s = await startServer({
    args: ['--shutdown-timeout', '1'],
    env: {
      AP_PROVIDER_OPENAI_BASE_URL: `${fake.url}/v1`,
      AP_PROVIDER_OPENAI_API_KEY: 'sk-resilience-test',
      AP_FORWARD_HEADERS: 'x-fake-',
      AP_RETRY_BASE_MS: '20',
    },
  });
  try {
    const t = await tenantWithKeys(s, 'Shutdown');
    const call = (stream) => fetch(`${s.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${t.keys.operator}`, 'content-type': 'application/json', 'x-fake-latency-ms': '20000' },
      body: JSON.stringify({ model: 'openai/gpt-4o-mini', stream, messages: [{ role: 'user', content: 'slow' }] }),
    }).then(async (r) => ({ status: r.status, text: await r.text() }));
    const calls = [call(false), call(false), call(false), call(true), call(true)];
    await new Promise((r) => setTimeout(r, 300));
    const t0 = Date.now();
    s.child.kill('SIGTERM');
    const answers = await Promise.all(calls);
    assert.ok(Date.now() - t0 < 6000, `answers after ${Date.now() - t0} ms`);
    for (const a of answers) {
      assert.ok(a.status >= 500, `${a.status} ${a.text}`);
      assert.match(a.text, /shutting down/);
    }
    const { code, signal } = await s.exited;
    assert.equal(signal, null);
    assert.equal(code, 0, s.raw.join('').slice(-3000));
    assert.equal(s.logs.find((l) => l.msg === 'stopped').drained, false);
  } finally {
    if (s.child.exitCode === null) { s.child.kill('SIGKILL'); await s.exited; }
    if (s.db) execFileSync('psql', [process.env.AP_TEST_PG_ADMIN_URL, '-qAtc', `DROP DATABASE ${s.db}`]);
    rmSync(s.dataDir, { recursive: true, force: true });
  }
});

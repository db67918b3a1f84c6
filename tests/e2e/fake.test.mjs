// The fake LLM upstream (build/fake-upstream, tests/fake/README.md): every
// endpoint in the three wire formats, streaming parsed as SSE, each x-fake-*
// header and failure mode, the /_fake control endpoints, that waiting
// connections hold no thread, and a clean exit on SIGTERM.
//
// It does not depend on the store, so it runs once (on the sqlite pass).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { createHash } from 'node:crypto';

const BIN = process.env.AP_FAKE_BIN || resolve('build/fake-upstream');
const skip = process.env.AP_TEST_BACKEND === 'postgres' ? 'backend-independent: runs on the sqlite pass' : false;
// Every test has a deadline, so a fake that stops answering fails the suite
// instead of hanging it.
const opts = { skip, timeout: 30000 };
const sleep = (ms) => new Promise((res) => setTimeout(res, ms));
const sha256 = (s) => createHash('sha256').update(s).digest('hex');

let child;
let base;
let stderr = '';
let exited;

before(async () => {
  if (skip) return;
  assert.ok(existsSync(BIN), `${BIN} is missing: make build/fake-upstream`);
  child = spawn(BIN, ['--listen', '127.0.0.1:0', '--exit-with-parent'], { stdio: ['ignore', 'pipe', 'pipe'] });
  exited = new Promise((res) => child.on('exit', (code, signal) => res({ code, signal })));
  const ready = await new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error('fake-upstream not ready: ' + stderr)), 5000);
    child.stderr.on('data', (d) => {
      stderr += d;
      const line = stderr.split('\n').find((l) => l.includes('"ready"'));
      if (line) { clearTimeout(timer); res(JSON.parse(line)); }
    });
    child.on('exit', (code) => { clearTimeout(timer); rej(new Error(`fake-upstream exited ${code}: ${stderr}`)); });
  });
  assert.deepEqual(Object.keys(ready), ['msg', 'port']);
  assert.ok(ready.port > 0);
  base = `http://127.0.0.1:${ready.port}`;
});

after(async () => {
  if (skip || !child) return;
  child.kill('SIGTERM');
  const { code, signal } = await exited;
  assert.equal(signal, null);
  assert.equal(code, 0, stderr);
  assert.match(stderr, /\{"msg":"stopped","signal":15,"suspended_left":0\}/);
});

function post(path, body, headers = {}, extra = {}) {
  return fetch(base + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    ...extra,
  });
}

const stats = async () => (await fetch(base + '/_fake/stats')).json();
const last = async (path) => (await fetch(base + '/_fake/last?path=' + encodeURIComponent(path))).json();

// SSE events as they arrive: [{ event, data, raw, t }] (t: ms since start).
// Rejects with the events read so far (err.events) if the stream breaks.
async function readSSE(res) {
  const t0 = performance.now();
  const events = [];
  const dec = new TextDecoder();
  let buf = '';
  try {
    for await (const chunk of res.body) {
      buf += dec.decode(chunk, { stream: true });
      let m;
      while ((m = buf.match(/\r?\n\r?\n/))) {
        const raw = buf.slice(0, m.index);
        buf = buf.slice(m.index + m[0].length);
        const ev = { event: null, data: '', raw, t: performance.now() - t0 };
        for (const line of raw.split(/\r?\n/)) {
          if (line.startsWith('event: ')) ev.event = line.slice(7);
          else if (line.startsWith('data: ')) ev.data += line.slice(6);
        }
        events.push(ev);
      }
    }
  } catch (e) {
    e.events = events;
    throw e;
  }
  assert.equal(buf, '', 'no bytes after the last event');
  return events;
}

const json = (events) => events.filter((e) => e.data && e.data !== '[DONE]').map((e) => JSON.parse(e.data));

const USER = 'Please tell me about the weather in Paris today and tomorrow';
const ECHO = 'echo: ' + USER.slice(0, 40);
const words = (s) => s.split(/\s+/).filter(Boolean).length;

// ------------------------------------------------------------- OpenAI

test('OpenAI chat: echoes the last user message, the model and realistic usage', opts, async () => {
  const messages = [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'first question' },
    { role: 'assistant', content: 'first answer' },
    { role: 'user', content: [{ type: 'text', text: USER }] },
  ];
  const res = await post('/v1/chat/completions', { model: 'gpt-test-1', messages }, { authorization: 'Bearer sk-x' });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^application\/json/);
  assert.match(res.headers.get('x-request-id'), /^req_/);
  const j = await res.json();
  assert.equal(j.object, 'chat.completion');
  assert.equal(j.model, 'gpt-test-1');
  assert.match(j.id, /^chatcmpl-/);
  assert.equal(j.choices[0].message.role, 'assistant');
  assert.equal(j.choices[0].message.content, ECHO);
  assert.equal(j.choices[0].finish_reason, 'stop');
  const chars = 'Be brief.'.length + 'first question'.length + 'first answer'.length + USER.length;
  assert.equal(j.usage.prompt_tokens, Math.ceil(chars / 4));
  assert.equal(j.usage.completion_tokens, words(ECHO));
  assert.equal(j.usage.total_tokens, j.usage.prompt_tokens + j.usage.completion_tokens);
});

test('OpenAI chat stream: role chunk, content deltas, finish chunk, usage chunk, [DONE]', opts, async () => {
  const res = await post('/v1/chat/completions', {
    model: 'gpt-s', stream: true, stream_options: { include_usage: true },
    messages: [{ role: 'user', content: USER }],
  });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/event-stream/);
  const events = await readSSE(res);
  assert.equal(events.at(-1).data, '[DONE]');
  const chunks = json(events);
  assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.model === 'gpt-s' && c.id === chunks[0].id));
  assert.equal(chunks[0].choices[0].delta.role, 'assistant');
  const text = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
  assert.equal(text, ECHO);
  const deltas = chunks.filter((c) => c.choices[0]?.delta?.content);
  assert.equal(deltas.length, words(ECHO), 'one chunk per word by default');
  const fin = chunks.at(-2);
  assert.equal(fin.choices[0].finish_reason, 'stop');
  const usage = chunks.at(-1);
  assert.deepEqual(usage.choices, []);
  assert.equal(usage.usage.completion_tokens, words(ECHO));
  assert.ok(chunks.slice(0, -1).every((c) => c.usage === null));
});

test('OpenAI chat stream without include_usage has no usage chunk', opts, async () => {
  const res = await post('/v1/chat/completions', { model: 'm', stream: true, messages: [{ role: 'user', content: 'hi' }] });
  const chunks = json(await readSSE(res));
  assert.ok(chunks.every((c) => !('usage' in c)));
  assert.equal(chunks.at(-1).choices[0].finish_reason, 'stop');
});

test('OpenAI tool call, plain and streamed', opts, async () => {
  const args = '{"city":"Paris","days":[1,2]}';
  const h = { 'x-fake-tool-call': 'get_weather:' + args };
  let j = await (await post('/v1/chat/completions', { model: 'm', messages: [{ role: 'user', content: 'x' }] }, h)).json();
  assert.equal(j.choices[0].finish_reason, 'tool_calls');
  assert.equal(j.choices[0].message.content, null);
  const call = j.choices[0].message.tool_calls[0];
  assert.equal(call.type, 'function');
  assert.match(call.id, /^call_/);
  assert.equal(call.function.name, 'get_weather');
  assert.equal(call.function.arguments, args);

  const chunks = json(await readSSE(await post('/v1/chat/completions', { model: 'm', stream: true, messages: [] }, { ...h, 'x-fake-chunks': '4' })));
  const first = chunks[0].choices[0].delta.tool_calls[0];
  assert.equal(first.index, 0);
  assert.equal(first.function.name, 'get_weather');
  assert.match(first.id, /^call_/);
  const parts = chunks.slice(1).map((c) => c.choices[0].delta.tool_calls?.[0]?.function?.arguments).filter((a) => a !== undefined);
  assert.equal(parts.length, 4);
  assert.equal(parts.join(''), args);
  assert.equal(chunks.at(-1).choices[0].finish_reason, 'tool_calls');
});

test('OpenAI embeddings: deterministic unit vectors, dimensions, base64', opts, async () => {
  let res = await post('/v1/embeddings', { model: 'text-embedding-3-small', input: ['the cat sat', 'the cat sat', 'quantum flux capacitor'] });
  assert.equal(res.status, 200);
  let j = await res.json();
  assert.equal(j.object, 'list');
  assert.equal(j.model, 'text-embedding-3-small');
  assert.equal(j.data.length, 3);
  assert.deepEqual(j.data.map((d) => d.index), [0, 1, 2]);
  const [a, b, c] = j.data.map((d) => d.embedding);
  assert.equal(a.length, 1536);
  const dot = (x, y) => x.reduce((s, v, i) => s + v * y[i], 0);
  assert.ok(Math.abs(dot(a, a) - 1) < 1e-4);
  assert.deepEqual(a, b);
  assert.ok(dot(a, c) < 0.5);
  assert.ok(j.usage.prompt_tokens > 0 && j.usage.total_tokens === j.usage.prompt_tokens);

  j = await (await post('/v1/embeddings', { model: 'e', input: 'hello', dimensions: 64 })).json();
  assert.equal(j.data[0].embedding.length, 64);
  j = await (await post('/v1/embeddings', { model: 'e', input: 'hello', dimensions: 64, encoding_format: 'base64' })).json();
  const buf = Buffer.from(j.data[0].embedding, 'base64');
  assert.equal(buf.length, 64 * 4);
  const f = new Float32Array(buf.buffer, buf.byteOffset, 64);
  assert.ok(Math.abs(Array.from(f).reduce((s, v) => s + v * v, 0) - 1) < 1e-4);
  j = await (await post('/v1/embeddings', { model: 'e', input: 'x' }, { 'x-fake-embedding-dims': '8' })).json();
  assert.equal(j.data[0].embedding.length, 8);
  res = await post('/v1/embeddings', { model: 'e', input: [] });
  assert.equal(res.status, 400);
});

test('models lists in the three shapes', opts, async () => {
  let j = await (await fetch(base + '/v1/models')).json();
  assert.equal(j.object, 'list');
  assert.ok(j.data.every((m) => m.object === 'model' && m.id));
  j = await (await fetch(base + '/v1/models', { headers: { 'anthropic-version': '2023-06-01' } })).json();
  assert.equal(j.has_more, false);
  assert.ok(j.data.every((m) => m.type === 'model'));
  assert.equal(j.first_id, j.data[0].id);
  j = await (await fetch(base + '/v1beta/models')).json();
  assert.ok(j.models.every((m) => m.name.startsWith('models/')));
  j = await (await fetch(base + '/v1/models', { headers: { 'x-fake-models': 'a, b' } })).json();
  assert.deepEqual(j.data.map((m) => m.id), ['a', 'b']);
});

// ---------------------------------------------------------- Anthropic

test('Anthropic messages: text and tool_use', opts, async () => {
  const body = { model: 'claude-t', max_tokens: 100, system: [{ type: 'text', text: 'sys' }], messages: [{ role: 'user', content: USER }] };
  let res = await post('/v1/messages', body, { 'x-api-key': 'ak-1', 'anthropic-version': '2023-06-01' });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('request-id'), /^req_/);
  let j = await res.json();
  assert.equal(j.type, 'message');
  assert.equal(j.role, 'assistant');
  assert.equal(j.model, 'claude-t');
  assert.match(j.id, /^msg_/);
  assert.deepEqual(j.content, [{ type: 'text', text: ECHO }]);
  assert.equal(j.stop_reason, 'end_turn');
  assert.equal(j.stop_sequence, null);
  assert.equal(j.usage.input_tokens, Math.ceil((3 + USER.length) / 4));
  assert.equal(j.usage.output_tokens, words(ECHO));

  j = await (await post('/v1/messages', body, { 'x-fake-tool-call': 'lookup:{"q":"x"}' })).json();
  assert.equal(j.stop_reason, 'tool_use');
  assert.equal(j.content[0].type, 'tool_use');
  assert.equal(j.content[0].name, 'lookup');
  assert.deepEqual(j.content[0].input, { q: 'x' });
  assert.match(j.content[0].id, /^toolu_/);
});

test('Anthropic stream: the event sequence, text deltas and input_json deltas', opts, async () => {
  const body = { model: 'claude-s', stream: true, max_tokens: 100, messages: [{ role: 'user', content: USER }] };
  let res = await post('/v1/messages', body, { 'x-fake-reply': 'one two three', 'x-fake-chunks': '3' });
  assert.match(res.headers.get('content-type'), /^text\/event-stream/);
  let events = await readSSE(res);
  assert.deepEqual(events.map((e) => e.event), ['message_start', 'content_block_start', 'ping',
    'content_block_delta', 'content_block_delta', 'content_block_delta',
    'content_block_stop', 'message_delta', 'message_stop']);
  let data = json(events);
  assert.ok(data.every((d, i) => d.type === events[i].event));
  assert.equal(data[0].message.model, 'claude-s');
  assert.deepEqual(data[0].message.content, []);
  assert.equal(data[1].content_block.type, 'text');
  assert.equal(data.filter((d) => d.type === 'content_block_delta').map((d) => d.delta.text).join(''), 'one two three');
  assert.equal(data[7].delta.stop_reason, 'end_turn');
  assert.equal(data[7].usage.output_tokens, 3);

  const args = '{"path":"/etc/hosts","lines":10}';
  events = await readSSE(await post('/v1/messages', body, { 'x-fake-tool-call': 'read_file:' + args }));
  data = json(events);
  assert.equal(data[1].content_block.type, 'tool_use');
  assert.equal(data[1].content_block.name, 'read_file');
  assert.deepEqual(data[1].content_block.input, {});
  const parts = data.filter((d) => d.type === 'content_block_delta');
  assert.ok(parts.every((d) => d.delta.type === 'input_json_delta'));
  assert.equal(parts.map((d) => d.delta.partial_json).join(''), args);
  assert.equal(data.find((d) => d.type === 'message_delta').delta.stop_reason, 'tool_use');
});

// ------------------------------------------------------------- Gemini

test('Gemini generateContent: text, functionCall, model from the path', opts, async () => {
  const body = { systemInstruction: { parts: [{ text: 'sys' }] }, contents: [{ role: 'user', parts: [{ text: USER }] }] };
  let res = await post('/v1beta/models/gemini-test:generateContent', body, { 'x-goog-api-key': 'g-1' });
  assert.equal(res.status, 200);
  let j = await res.json();
  assert.equal(j.modelVersion, 'gemini-test');
  assert.equal(j.candidates[0].content.role, 'model');
  assert.deepEqual(j.candidates[0].content.parts, [{ text: ECHO }]);
  assert.equal(j.candidates[0].finishReason, 'STOP');
  assert.equal(j.usageMetadata.promptTokenCount, Math.ceil((3 + USER.length) / 4));
  assert.equal(j.usageMetadata.candidatesTokenCount, words(ECHO));
  assert.equal(j.usageMetadata.totalTokenCount, j.usageMetadata.promptTokenCount + j.usageMetadata.candidatesTokenCount);

  j = await (await post('/v1beta/models/gemini-test:generateContent', body, { 'x-fake-tool-call': 'find:{"n":1}' })).json();
  assert.deepEqual(j.candidates[0].content.parts, [{ functionCall: { name: 'find', args: { n: 1 } } }]);
});

test('Gemini streamGenerateContent?alt=sse and the JSON-array form', opts, async () => {
  const body = { contents: [{ parts: [{ text: USER }] }] };
  let res = await post('/v1beta/models/gem-s:streamGenerateContent?alt=sse', body, { 'x-fake-chunks': '5' });
  assert.match(res.headers.get('content-type'), /^text\/event-stream/);
  const events = await readSSE(res);
  assert.ok(events.every((e) => e.raw.startsWith('data: ')));
  const data = json(events);
  assert.equal(data.length, 6);
  assert.equal(data.map((d) => d.candidates[0].content.parts[0].text).join(''), ECHO);
  assert.ok(data.slice(0, -1).every((d) => !d.candidates[0].finishReason && d.modelVersion === 'gem-s'));
  assert.equal(data.at(-1).candidates[0].finishReason, 'STOP');
  assert.equal(data.at(-1).usageMetadata.candidatesTokenCount, words(ECHO));

  res = await post('/v1beta/models/gem-s:streamGenerateContent', body, { 'x-fake-chunks': '2' });
  const arr = await res.json();
  assert.equal(arr.length, 3);
  assert.equal(arr.at(-1).candidates[0].finishReason, 'STOP');

  const fc = json(await readSSE(await post('/v1beta/models/g:streamGenerateContent?alt=sse', body, { 'x-fake-tool-call': 'f:{"a":true}' })));
  assert.deepEqual(fc[0].candidates[0].content.parts, [{ functionCall: { name: 'f', args: { a: true } } }]);
  assert.equal(fc.at(-1).candidates[0].finishReason, 'STOP');
});

test('Gemini batchEmbedContents and embedContent', opts, async () => {
  const res = await post('/v1beta/models/text-embedding-004:batchEmbedContents', {
    requests: [
      { model: 'models/text-embedding-004', content: { parts: [{ text: 'red apple' }] } },
      { model: 'models/text-embedding-004', content: { parts: [{ text: 'red apple' }] }, outputDimensionality: 32 },
    ],
  });
  assert.equal(res.status, 200);
  const j = await res.json();
  assert.equal(j.embeddings.length, 2);
  assert.equal(j.embeddings[0].values.length, 768);
  assert.equal(j.embeddings[1].values.length, 32);
  const one = await (await post('/v1beta/models/text-embedding-004:embedContent', { content: { parts: [{ text: 'red apple' }] } })).json();
  assert.deepEqual(one.embedding.values, j.embeddings[0].values);
});

// ------------------------------------------------------------ scripting

test('x-fake-reply and x-fake-chunks split UTF-8 text on character boundaries', opts, async () => {
  const reply = 'héllo wörld ✓ 日本語';
  const j = await (await post('/v1/chat/completions', { model: 'm', messages: [] }, { 'x-fake-reply': encodeURIComponent(reply) })).json();
  assert.equal(j.choices[0].message.content, encodeURIComponent(reply), 'header text is used verbatim');
  // Non-ASCII comes from the request body: the echo of the user message.
  const chunks = json(await readSSE(await post('/v1/chat/completions',
    { model: 'm', stream: true, messages: [{ role: 'user', content: reply }] }, { 'x-fake-chunks': '7' })));
  const deltas = chunks.filter((c) => c.choices[0] && 'content' in c.choices[0].delta && !c.choices[0].delta.role)
    .map((c) => c.choices[0].delta.content);
  assert.equal(deltas.length, 7);
  assert.equal(deltas.join(''), 'echo: ' + reply);
  assert.ok(deltas.every((d) => d.length > 0 && !d.includes('\ufffd')), 'no character is split');
  // More chunks than characters: the extra chunks are empty.
  const many = json(await readSSE(await post('/v1/chat/completions', { model: 'm', stream: true }, { 'x-fake-reply': 'ab', 'x-fake-chunks': '5' })));
  assert.equal(many.filter((c) => c.choices[0] && 'content' in c.choices[0].delta && !c.choices[0].delta.role).length, 5);
});

test('x-fake-latency-ms delays the headers; with streams, the first chunk', opts, async () => {
  let t0 = performance.now();
  const res = await post('/v1/chat/completions', { model: 'm' }, { 'x-fake-latency-ms': '300' });
  assert.ok(performance.now() - t0 >= 290, 'headers came too early');
  assert.equal(res.status, 200);
  await res.json();
  t0 = performance.now();
  const sres = await post('/v1/chat/completions', { model: 'm', stream: true }, { 'x-fake-latency-ms': '300' });
  assert.ok(performance.now() - t0 < 250, 'stream headers are immediate');
  const events = await readSSE(sres);
  assert.ok(performance.now() - t0 >= 290);
  assert.equal(events.at(-1).data, '[DONE]');
});

test('x-fake-chunk-delay-ms spaces the chunks', opts, async () => {
  const res = await post('/v1/chat/completions', { model: 'm', stream: true }, { 'x-fake-chunks': '5', 'x-fake-chunk-delay-ms': '80' });
  const events = await readSSE(res);
  const times = events.filter((e) => e.data.includes('"content"') && !e.data.includes('"role"')).map((e) => e.t);
  assert.equal(times.length, 5);
  for (let i = 1; i < times.length; i++) assert.ok(times[i] - times[i - 1] >= 60, `gap ${i}: ${times[i] - times[i - 1]} ms`);
  assert.ok(times.at(-1) - times[0] >= 4 * 75);
});

const SHAPES = {
  openai: { path: '/v1/chat/completions', check: (j, st) => { assert.equal(typeof j.error.message, 'string'); assert.equal(typeof j.error.type, 'string'); assert.ok('code' in j.error); } },
  anthropic: { path: '/v1/messages', check: (j) => { assert.equal(j.type, 'error'); assert.equal(typeof j.error.type, 'string'); assert.equal(typeof j.error.message, 'string'); } },
  gemini: { path: '/v1beta/models/g:generateContent', check: (j, st) => { assert.equal(j.error.code, st); assert.equal(typeof j.error.message, 'string'); assert.match(j.error.status, /^[A-Z_]+$/); } },
};

test('x-fake-status gives an error body in each protocol shape', opts, async () => {
  const expectType = { 429: ['requests', 'rate_limit_error', 'RESOURCE_EXHAUSTED'], 500: ['server_error', 'api_error', 'INTERNAL'],
    503: ['server_error', 'api_error', 'UNAVAILABLE'], 529: ['server_error', 'overloaded_error', 'UNAVAILABLE'],
    401: ['invalid_request_error', 'authentication_error', 'UNAUTHENTICATED'], 400: ['invalid_request_error', 'invalid_request_error', 'INVALID_ARGUMENT'] };
  for (const [name, shape] of Object.entries(SHAPES)) {
    for (const st of [429, 500, 503, 529, 401, 400]) {
      const res = await post(shape.path, { model: 'm', stream: true, messages: [] }, { 'x-fake-status': String(st), 'x-fake-retry-after': '3' });
      assert.equal(res.status, st, `${name} ${st}`);
      assert.match(res.headers.get('content-type'), /^application\/json/, 'errors are JSON even for stream requests');
      assert.equal(res.headers.get('retry-after'), '3');
      const j = await res.json();
      shape.check(j, st);
      const idx = { openai: 0, anthropic: 1, gemini: 2 }[name];
      const got = name === 'openai' ? j.error.type : name === 'anthropic' ? j.error.type : j.error.status;
      assert.equal(got, expectType[st][idx], `${name} ${st}`);
    }
  }
  const res = await post('/v1/chat/completions', {}, { 'x-fake-status': '500' });
  assert.equal(res.headers.get('retry-after'), null);
});

test('x-fake-error-code: context_length_exceeded and friends', opts, async () => {
  let res = await post('/v1/chat/completions', {}, { 'x-fake-error-code': 'context_length_exceeded' });
  assert.equal(res.status, 400);
  let j = await res.json();
  assert.equal(j.error.code, 'context_length_exceeded');
  assert.equal(j.error.type, 'invalid_request_error');
  assert.match(j.error.message, /maximum context length/);
  j = await (await post('/v1/messages', {}, { 'x-fake-error-code': 'context_length_exceeded' })).json();
  assert.equal(j.error.type, 'invalid_request_error');
  assert.match(j.error.message, /prompt is too long/);
  j = await (await post('/v1beta/models/g:generateContent', {}, { 'x-fake-error-code': 'context_length_exceeded' })).json();
  assert.equal(j.error.status, 'INVALID_ARGUMENT');
  res = await post('/v1/chat/completions', {}, { 'x-fake-error-code': 'insufficient_quota' });
  assert.equal(res.status, 429);
  assert.equal((await res.json()).error.type, 'insufficient_quota');
  res = await post('/v1/messages', {}, { 'x-fake-error-code': 'overloaded' });
  assert.equal(res.status, 529);
  assert.equal((await res.json()).error.type, 'overloaded_error');
  res = await post('/v1/chat/completions', {}, { 'x-fake-error-code': 'my_code', 'x-fake-status': '422', 'x-fake-error-message': 'custom words' });
  assert.equal(res.status, 422);
  assert.deepEqual((await res.json()).error, { message: 'custom words', type: 'invalid_request_error', param: null, code: 'my_code' });
});

test('x-fake-fail-first with x-fake-key fails the first N requests per key', opts, async () => {
  const key = 'retry-' + Math.random();
  const h = { 'x-fake-fail-first': '2', 'x-fake-key': key, 'x-fake-status': '503' };
  const codes = [];
  for (let i = 0; i < 4; i++) codes.push((await post('/v1/chat/completions', { model: 'm' }, h)).status);
  assert.deepEqual(codes, [503, 503, 200, 200]);
  const other = await post('/v1/messages', { model: 'm' }, { ...h, 'x-fake-key': key + '-b', 'x-fake-status': '429', 'x-fake-retry-after': '1' });
  assert.equal(other.status, 429);
  assert.equal(other.headers.get('retry-after'), '1');
  // Default status is 500.
  assert.equal((await post('/v1/chat/completions', {}, { 'x-fake-fail-first': '1', 'x-fake-key': key + '-c' })).status, 500);
});

test('x-fake-stall sends headers and no body, and holds no thread', opts, async () => {
  const ctrls = [];
  const pending = [];
  // More stalled streams than the fake has threads (one per CPU).
  for (let i = 0; i < 40; i++) {
    const ctrl = new AbortController();
    ctrls.push(ctrl);
    pending.push(post('/v1/chat/completions', { model: 'm', stream: i % 2 === 0 }, { 'x-fake-stall': '1' }, { signal: ctrl.signal }));
  }
  const responses = await Promise.all(pending);
  assert.ok(responses.every((r) => r.status === 200));
  // Everything else still answers promptly.
  const t0 = performance.now();
  const ok = await post('/v1/chat/completions', { model: 'm' });
  assert.equal(ok.status, 200);
  await ok.json();
  assert.ok(performance.now() - t0 < 500);
  const reads = responses.map((r) => r.body.getReader().read());
  const winner = await Promise.race([...reads, sleep(400).then(() => 'timeout')]);
  assert.equal(winner, 'timeout', 'a stalled response sent body bytes');
  assert.ok((await stats()).active_streams >= 40);
  for (const c of ctrls) c.abort();
  await Promise.allSettled(reads);
  // The fake notices the clients left within about a second.
  let s;
  for (let i = 0; i < 40; i++) {
    s = await stats();
    if (s.active_streams === 0 && s.suspended === 0) break;
    await sleep(100);
  }
  assert.equal(s.active_streams, 0);
  assert.equal(s.suspended, 0);
});

test('x-fake-malformed: invalid JSON body, invalid SSE data', opts, async () => {
  let res = await post('/v1/chat/completions', { model: 'm' }, { 'x-fake-malformed': '1' });
  assert.equal(res.status, 200);
  const text = await res.text();
  assert.ok(text.startsWith('{"id":"chatcmpl-'));
  assert.throws(() => JSON.parse(text));
  for (const path of ['/v1/chat/completions', '/v1/messages', '/v1beta/models/g:streamGenerateContent?alt=sse']) {
    res = await post(path, { model: 'm', stream: true, messages: [{ role: 'user', content: 'a b c' }], contents: [{ parts: [{ text: 'a b c' }] }] }, { 'x-fake-malformed': '1' });
    const events = await readSSE(res);
    const bad = events.filter((e) => { try { if (e.data !== '[DONE]') JSON.parse(e.data); return false; } catch { return true; } });
    assert.equal(bad.length, 1, path);
  }
});

test('x-fake-cut-after closes the stream after N chunks without a terminator', opts, async () => {
  for (const [path, end] of [['/v1/chat/completions', '[DONE]'], ['/v1/messages', 'message_stop'], ['/v1beta/models/g:streamGenerateContent?alt=sse', 'STOP']]) {
    const res = await post(path, { model: 'm', stream: true }, { 'x-fake-chunks': '6', 'x-fake-cut-after': '2' });
    assert.equal(res.status, 200);
    const err = await readSSE(res).then(() => null, (e) => e);
    assert.ok(err, `${path}: the stream should break`);
    const raw = err.events.map((e) => e.raw).join('\n');
    assert.ok(!raw.includes(end), path);
    const deltas = err.events.filter((e) => /"content":"[^"]|text_delta|"text":"[^"]/.test(e.data));
    assert.equal(deltas.length, 2, path);
  }
});

test('/_fake/last records the request with secrets hashed; /_fake/stats counts', opts, async () => {
  await fetch(base + '/_fake/reset', { method: 'POST' });
  await post('/v1/chat/completions', { model: 'rec', messages: [{ role: 'user', content: 'hi' }] }, { authorization: 'Bearer sk-secret-1', 'X-Custom': 'v' });
  await post('/v1/messages', { model: 'rec' }, { 'x-api-key': 'ak-secret-2', 'anthropic-version': '2023-06-01' });
  await post('/v1beta/models/g:generateContent?key=gk-secret-3', { contents: [] }, { 'x-goog-api-key': 'gk-secret-4' });
  await post('/v1beta/models/g:generateContent', { contents: [] });
  let r = await last('/v1/chat/completions');
  assert.equal(r.method, 'POST');
  assert.equal(r.path, '/v1/chat/completions');
  assert.equal(r.headers.authorization, sha256('Bearer sk-secret-1'));
  assert.equal(r.headers['x-custom'], 'v');
  assert.deepEqual(r.body, { model: 'rec', messages: [{ role: 'user', content: 'hi' }] });
  r = await last('/v1/messages');
  assert.equal(r.headers['x-api-key'], sha256('ak-secret-2'));
  assert.equal(r.headers['anthropic-version'], '2023-06-01');
  const all = JSON.stringify([r, await last('/v1/chat/completions')]);
  assert.ok(!all.includes('secret'));
  r = await last('/v1beta/models/g:generateContent');
  assert.equal(r.headers['x-goog-api-key'], undefined, 'the last request to the path wins');
  const s = await stats();
  assert.equal(s.total, 4);
  assert.deepEqual(s.paths, { '/v1/chat/completions': 1, '/v1/messages': 1, '/v1beta/models/g:generateContent': 2 });
  const missing = await fetch(base + '/_fake/last?path=/nope');
  assert.equal(missing.status, 404);
  await post('/v1beta/models/g2:generateContent?key=gk-secret-3', { contents: [] }, { 'x-goog-api-key': 'gk-secret-4' });
  r = await last('/v1beta/models/g2:generateContent');
  assert.equal(r.query.key, sha256('gk-secret-3'));
  assert.equal(r.headers['x-goog-api-key'], sha256('gk-secret-4'));
});

test('bad input: bad x-fake values, non-JSON bodies, unknown paths, methods, size', opts, async () => {
  let res = await post('/v1/chat/completions', {}, { 'x-fake-latency-ms': 'soon' });
  assert.equal(res.status, 400);
  assert.match((await res.json()).error.message, /x-fake-latency-ms/);
  res = await post('/v1/chat/completions', {}, { 'x-fake-tool-call': 'no-args' });
  assert.equal(res.status, 400);
  res = await post('/v1/messages', 'not json');
  assert.equal(res.status, 400);
  assert.equal((await res.json()).type, 'error');
  res = await post('/v1/nothing', {});
  assert.equal(res.status, 404);
  res = await fetch(base + '/v1/chat/completions');
  assert.equal(res.status, 405);
  res = await post('/v1/chat/completions', '{"x":"' + 'a'.repeat(17 << 20) + '"}');
  assert.equal(res.status, 413);
});

test('many slow streams at once all complete', opts, async () => {
  const N = 300;
  const t0 = performance.now();
  const results = await Promise.all(Array.from({ length: N }, async () => {
    const res = await post('/v1/messages', { model: 'm', stream: true }, { 'x-fake-chunks': '10', 'x-fake-chunk-delay-ms': '30' });
    const events = await readSSE(res);
    return events.filter((e) => e.event === 'content_block_delta').length === 10 && events.at(-1).event === 'message_stop';
  }));
  assert.equal(results.filter(Boolean).length, N);
  assert.ok(performance.now() - t0 < 5000);
});

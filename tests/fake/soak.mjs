#!/usr/bin/env node
// Streaming soak for the fake upstream: N concurrent SSE streams of C chunks
// D ms apart; checks every stream completes with all its chunks and the
// terminator, and reports wall time plus the fake's peak RSS and CPU time.
//
//   node tests/fake/soak.mjs [--streams 2000] [--chunks 20] [--delay 50]
//                            [--proto openai|anthropic|gemini] [--rounds 1]
//                            [--url http://127.0.0.1:PORT --pid PID]
//
// Without --url it starts build/fake-upstream itself (and stops it with
// SIGTERM at the end, checking a clean exit).  Exit status 0 = all good.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { resolve } from 'node:path';

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
  if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1]]);
  return acc;
}, []));
const STREAMS = +(args.streams ?? 2000);
const CHUNKS = +(args.chunks ?? 20);
const DELAY = +(args.delay ?? 50);
const ROUNDS = +(args.rounds ?? 1);
const PROTO = args.proto ?? 'openai';

const CLK = 100; // USER_HZ on Linux
function procStats(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => +(status.match(new RegExp(`^${k}:\\s+(\\d+)`, 'm'))?.[1] ?? 0);
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { rssKb: kb('VmRSS'), hwmKb: kb('VmHWM'), threads: kb('Threads'), cpuS: (+f[11] + +f[12]) / CLK };
}

async function startFake() {
  const bin = resolve('build/fake-upstream');
  const child = spawn(bin, ['--listen', '127.0.0.1:0', '--exit-with-parent'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const port = await new Promise((res, rej) => {
    let buf = '';
    child.stderr.on('data', (d) => {
      buf += d;
      const m = buf.match(/\{"msg":"ready","port":(\d+)\}/);
      if (m) res(+m[1]);
    });
    child.on('exit', (c) => rej(new Error(`fake-upstream exited ${c}: ${buf}`)));
  });
  return { child, url: `http://127.0.0.1:${port}`, pid: child.pid };
}

const REQ = {
  openai: { path: '/v1/chat/completions', body: { model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'soak' }] } },
  anthropic: { path: '/v1/messages', body: { model: 'claude-haiku-4-5', stream: true, max_tokens: 64, messages: [{ role: 'user', content: 'soak' }] } },
  gemini: { path: '/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse', body: { contents: [{ role: 'user', parts: [{ text: 'soak' }] }] } },
}[PROTO];

// One stream: resolves { chunks, done, span } (span: ms from the first
// content chunk to the last) or rejects on a transport error.
function oneStream(url, agent) {
  return new Promise((res, rej) => {
    const body = JSON.stringify(REQ.body);
    const req = http.request(url + REQ.path, {
      method: 'POST', agent,
      headers: {
        'content-type': 'application/json', 'content-length': Buffer.byteLength(body),
        'x-fake-chunks': String(CHUNKS), 'x-fake-chunk-delay-ms': String(DELAY),
      },
    }, (resp) => {
      if (resp.statusCode !== 200) { rej(new Error(`status ${resp.statusCode}`)); resp.resume(); return; }
      let buf = '';
      let chunks = 0;
      let done = false;
      let first = 0;
      let lastAt = 0;
      const seen = () => { lastAt = performance.now(); if (chunks === 1) first = lastAt; };
      resp.setEncoding('utf8');
      resp.on('data', (d) => {
        buf += d;
        let i;
        while ((i = buf.search(/\r?\n\r?\n/)) >= 0) {
          const ev = buf.slice(0, i);
          buf = buf.slice(buf.slice(i).match(/^\r?\n\r?\n/)[0].length + i);
          const data = ev.split(/\r?\n/).filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
          if (!data) continue;
          if (data === '[DONE]') { done = true; continue; }
          const j = JSON.parse(data);
          if (PROTO === 'openai' && j.choices?.[0]?.delta?.content !== undefined && !j.choices[0].delta.role) chunks++, seen();
          if (PROTO === 'anthropic' && j.type === 'content_block_delta') chunks++, seen();
          if (PROTO === 'anthropic' && j.type === 'message_stop') done = true;
          if (PROTO === 'gemini' && j.candidates?.[0]?.finishReason) done = true;
          else if (PROTO === 'gemini') chunks++, seen();
        }
      });
      resp.on('end', () => res({ chunks, done, span: lastAt - first }));
      resp.on('error', rej);
    });
    req.on('error', rej);
    req.end(body);
  });
}

async function main() {
  const own = !args.url;
  const fake = own ? await startFake() : { url: args.url, pid: +args.pid };
  const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
  const before = fake.pid ? procStats(fake.pid) : null;
  let peakRss = 0;
  const sampler = setInterval(() => { if (fake.pid) peakRss = Math.max(peakRss, procStats(fake.pid).rssKb); }, 100);
  let ok = 0;
  let bad = 0;
  const errors = new Map();
  const spans = [];
  const t0 = process.hrtime.bigint();
  for (let r = 0; r < ROUNDS; r++) {
    const results = await Promise.allSettled(Array.from({ length: STREAMS }, () => oneStream(fake.url, agent)));
    for (const x of results) {
      if (x.status === 'fulfilled') spans.push(x.value.span);
      if (x.status === 'fulfilled' && x.value.done && x.value.chunks === CHUNKS) ok++;
      else {
        bad++;
        const why = x.status === 'rejected' ? String(x.reason?.message ?? x.reason) : `chunks=${x.value.chunks} done=${x.value.done}`;
        errors.set(why, (errors.get(why) ?? 0) + 1);
      }
    }
  }
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  clearInterval(sampler);
  const after = fake.pid ? procStats(fake.pid) : null;
  agent.destroy();
  spans.sort((a, b) => a - b);
  const pct = (q) => Math.round(spans[Math.min(spans.length - 1, Math.floor(q * spans.length))] ?? 0);
  const report = {
    proto: PROTO, streams: STREAMS, rounds: ROUNDS, chunks: CHUNKS, delay_ms: DELAY,
    ok, failed: bad, errors: Object.fromEntries(errors),
    wall_s: +wall.toFixed(2), ideal_s: +(ROUNDS * (CHUNKS - 1) * DELAY / 1000).toFixed(2),
    // first-to-last chunk per stream; ideal (chunks - 1) * delay
    span_ms: { ideal: (CHUNKS - 1) * DELAY, p50: pct(0.5), p99: pct(0.99), max: pct(1) },
    ...(after && {
      fake_peak_rss_mb: +(Math.max(peakRss, after.rssKb) / 1024).toFixed(1),
      fake_hwm_rss_mb: +(after.hwmKb / 1024).toFixed(1),
      fake_cpu_s: +(after.cpuS - before.cpuS).toFixed(2),
      fake_cpu_pct_of_one_core: +(100 * (after.cpuS - before.cpuS) / wall).toFixed(1),
      fake_threads: after.threads,
    }),
  };
  if (own) {
    fake.child.kill('SIGTERM');
    const code = await new Promise((res) => fake.child.on('exit', (c, s) => res(s ?? c)));
    report.fake_exit = code;
    if (code !== 0) bad++;
  }
  console.log(JSON.stringify(report, null, 2));
  process.exit(bad ? 1 : 0);
}

main().catch((e) => { console.error(e); process.exit(1); });

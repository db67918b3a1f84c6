// Streaming driver for bench/gateway.sh (raw node:http, no SDK, so the client
// costs the same for every target).
//
//   node stream.mjs ttft --url U [--model M] [--header 'k: v']... [--n 400]
//        [--concurrency 8] [--chunks 5] [--delay 20] [--latency 0]
//     N streams, at most C at a time; time to first token = from just before
//     the request is written to the arrival of the first SSE `data:` event.
//     Prints one JSON line: {ok, errors, p50_ms, p90_ms, p99_ms, mean_ms}.
//
//   node stream.mjs soak --url U [...] --n 5000 --chunks 20 --delay 500
//        [--pid PID] [--ramp-ms 1000]
//     N streams open at once (started evenly over --ramp-ms), each lasting
//     about chunks x delay; counts streams that end with `data: [DONE]`, HTTP
//     errors and socket errors, and samples VmRSS of --pid every 50 ms.
//     Prints one JSON line.
import http from 'node:http';
import { readFileSync } from 'node:fs';

const [mode, ...rest] = process.argv.slice(2);
const opt = { n: 400, concurrency: 8, chunks: 5, delay: 20, latency: 0, model: 'gpt-4o-mini', rampMs: 1000, headers: {} };
for (let i = 0; i < rest.length; i += 2) {
  const k = rest[i].replace(/^--/, ''), v = rest[i + 1];
  if (k === 'header') { const j = v.indexOf(':'); opt.headers[v.slice(0, j).trim().toLowerCase()] = v.slice(j + 1).trim(); }
  else if (k === 'url' || k === 'model') opt[k] = v;
  else if (k === 'ramp-ms') opt.rampMs = Number(v);
  else opt[k] = Number(v);
}
const url = new URL(opt.url);
const body = JSON.stringify({ model: opt.model, stream: true,
  messages: [{ role: 'user', content: 'Summarise the benefits of connection pooling in two sentences.' }] });
const agent = new http.Agent({ keepAlive: true, maxSockets: mode === 'soak' ? Infinity : opt.concurrency });
const headers = {
  'content-type': 'application/json', 'content-length': Buffer.byteLength(body),
  'x-fake-chunks': String(opt.chunks), 'x-fake-chunk-delay-ms': String(opt.delay),
  'x-fake-latency-ms': String(opt.latency), ...opt.headers,
};

function one() {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    let ttft = null, tail = '', done = false, status = 0;
    const req = http.request({ host: url.hostname, port: url.port, path: '/v1/chat/completions', method: 'POST', agent, headers }, (res) => {
      status = res.statusCode;
      res.setEncoding('utf8');
      res.on('data', (s) => {
        if (ttft === null && (tail + s).includes('data:')) ttft = Number(process.hrtime.bigint() - t0) / 1e6;
        tail = (tail + s).slice(-64);
        if (tail.includes('data: [DONE]')) done = true;
      });
      res.on('end', () => resolve({ status, ttft, done, err: null }));
      res.on('error', (e) => resolve({ status, ttft, done, err: e.code || e.message }));
    });
    req.setTimeout(60000, () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ status, ttft, done, err: e.code || e.message }));
    req.end(body);
  });
}
const pct = (a, p) => a.length ? a[Math.min(a.length - 1, Math.floor(p / 100 * a.length))] : null;
const r3 = (x) => x === null ? null : Math.round(x * 1000) / 1000;

if (mode === 'ttft') {
  const results = [];
  let next = 0;
  // warm-up: one stream per connection, not counted
  await Promise.all(Array.from({ length: opt.concurrency }, one));
  await Promise.all(Array.from({ length: opt.concurrency }, async () => {
    while (next < opt.n) { next++; results.push(await one()); }
  }));
  const ok = results.filter((r) => r.status === 200 && r.done && r.ttft !== null);
  const t = ok.map((r) => r.ttft).sort((a, b) => a - b);
  console.log(JSON.stringify({ ok: ok.length, errors: results.length - ok.length,
    p50_ms: r3(pct(t, 50)), p90_ms: r3(pct(t, 90)), p99_ms: r3(pct(t, 99)),
    mean_ms: r3(t.reduce((a, b) => a + b, 0) / (t.length || 1)) }));
} else if (mode === 'soak') {
  const rss = () => { try { return Number(readFileSync(`/proc/${opt.pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)[1]); } catch { return 0; } };
  const rss0 = opt.pid ? rss() : 0;
  let peak = rss0, open = 0, maxOpen = 0;
  const sampler = opt.pid ? setInterval(() => { peak = Math.max(peak, rss()); }, 50) : null;
  const t0 = Date.now();
  const ps = [];
  for (let i = 0; i < opt.n; i++) {
    const due = t0 + (i * opt.rampMs) / opt.n;
    const wait = due - Date.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    open++; maxOpen = Math.max(maxOpen, open);
    ps.push(one().then((r) => { open--; return r; }));
  }
  const results = await Promise.all(ps);
  const wall = (Date.now() - t0) / 1000;
  if (sampler) clearInterval(sampler);
  const errs = {};
  for (const r of results) if (!(r.status === 200 && r.done)) { const k = r.err || `http ${r.status}${r.done ? '' : ' incomplete'}`; errs[k] = (errs[k] || 0) + 1; }
  const t = results.filter((r) => r.ttft !== null).map((r) => r.ttft).sort((a, b) => a - b);
  console.log(JSON.stringify({ streams: opt.n, completed: results.filter((r) => r.status === 200 && r.done).length,
    errors: errs, wall_s: wall, ttft_p50_ms: r3(pct(t, 50)), ttft_p99_ms: r3(pct(t, 99)),
    rss_before_kb: rss0, rss_peak_kb: peak, rss_after_kb: opt.pid ? rss() : 0 }));
}
agent.destroy();

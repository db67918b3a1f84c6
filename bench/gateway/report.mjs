// Turns bench/gateway.sh's raw results into the "## Gateway" section of
// bench/RESULTS.md (markdown on stdout).
//   node report.mjs RESULTS_FILE RUNS SECONDS PACE_CONNS CONNS
import { readFileSync, existsSync } from 'node:fs';
import { cpus, totalmem, release } from 'node:os';
import { execFileSync } from 'node:child_process';

const [file, runs, secs, paceConns, conns] = process.argv.slice(2);
const rows = readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).map((l) => {
  const [kind, target, run, param, ...rest] = l.split(' ');
  const tail = rest.join(' ');
  let v;
  if (tail.startsWith('{')) v = JSON.parse(tail);
  else v = Object.fromEntries(rest.map((kv) => kv.split('=')).map(([k, x]) => [k, Number(x)]));
  return { kind, target, run: Number(run), param: Number(param), v };
});
const T = ['fake', 'agentprov', 'portkey'];
const NAME = { fake: 'fake upstream, direct', agentprov: 'through agentprov', portkey: 'through Portkey' };
const med = (a) => { const s = a.filter((x) => x !== null && !Number.isNaN(x)).sort((x, y) => x - y); if (!s.length) return null; const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const sel = (kind, target, param) => rows.filter((r) => r.kind === kind && r.target === target && (param === undefined || r.param === param));
const ms = (us) => us === null ? '–' : (us / 1000).toFixed(3);
const f1 = (x) => x === null ? '–' : x.toFixed(1);
const list = (a, fn) => a.map(fn).join(' / ');
const out = [];
const p = (...l) => out.push(...l);

const cpu = cpus()[0]?.model?.trim() || '?';
let wrkv = '?'; try { wrkv = execFileSync('wrk', ['-v'], { encoding: 'utf8' }).split('\n')[0]; } catch (e) { wrkv = (e.stdout || '').split('\n')[0] || '?'; }
let pkv = '?'; try { pkv = JSON.parse(readFileSync('node_modules/@portkey-ai/gateway/package.json', 'utf8')).version; } catch { /* */ }
p('## Gateway', '',
  `Written by \`bench/gateway.sh\` on ${new Date().toISOString().slice(0, 16)}Z (standalone or from \`make bench\`).`, '',
  `Machine: ${cpus().length} cores, ${cpu}, ${Math.round(totalmem() / 2 ** 30)} GiB, Linux ${release()}, Node ${process.version}. ` +
  `Load tool, fake upstream and both gateways share these ${cpus().length} cores.`,
  `Targets: \`build/fake-upstream\` (libmicrohttpd, ${cpus().length} threads); agentprov release build (\`-O2\`), SQLite in a fresh data dir, ` +
  '`--log-level warn`, routed to the fake with `AP_PROVIDER_OPENAI_BASE_URL`, `AP_FORWARD_HEADERS=x-fake-`, an operator key, model `openai/gpt-4o-mini`; ' +
  `Portkey \`@portkey-ai/gateway\` ${pkv} (\`node build/start-server.js --port=N --headless\`, NODE_ENV=production, one Node process as shipped), ` +
  'headers `x-portkey-provider: openai`, `x-portkey-custom-host: <fake>/v1` (and `x-portkey-forward-headers` for the `x-fake-*` stream headers). All on 127.0.0.1.',
  `Load: ${wrkv}, with \`bench/gateway/chat.lua\` (non-streaming chat completion, 157-byte body, ~360-byte answer); streams: \`bench/gateway/stream.mjs\` (node:http).`,
  `${runs} runs; each run measures the three targets back to back; tables give the median of the runs (per-run values after it).`, '',
  'Commands (per target, URL and auth differ):', '',
  '```sh',
  `GW_RATE=R GW_THREADS=2 wrk -t2 -c${paceConns} -d${secs}s -s bench/gateway/chat.lua -H 'Authorization: Bearer …' URL   # paced`,
  `wrk -t2 -c${conns} -d${secs}s -s bench/gateway/chat.lua -H 'Authorization: Bearer …' URL                                # max throughput`,
  'node bench/gateway/stream.mjs ttft --url URL --n 400 --concurrency 8 --chunks 5 --delay 20                       # time to first token',
  'node bench/gateway/stream.mjs soak --url URL --n 5000 --chunks 20 --delay 500 --ramp-ms 2000 --pid PID          # concurrent streams',
  '```', '');

// 1. paced latency
const rates = [...new Set(rows.filter((r) => r.kind === 'paced').map((r) => r.param))];
const added = {};
for (const rate of rates) {
  p(`### Added latency at a fixed ${rate} requests/s, no streaming`, '',
    `wrk with a per-thread send schedule (chat.lua; wrk2 is not in Debian 12), ${paceConns} connections, ${secs} s. ` +
    'Added = through the gateway minus direct, per run, then the median.', '',
    '| target | achieved req/s | p50 ms | p99 ms | p99.9 ms | added p50 ms | added p99 ms | errors | p50 per run | p99 per run |',
    '|---|---|---|---|---|---|---|---|---|---|');
  const direct = sel('paced', 'fake', rate);
  for (const t of T) {
    const rs = sel('paced', t, rate);
    const ap50 = t === 'fake' ? null : med(rs.map((r) => r.v.p50_us - (direct.find((d) => d.run === r.run)?.v.p50_us ?? NaN)));
    const ap99 = t === 'fake' ? null : med(rs.map((r) => r.v.p99_us - (direct.find((d) => d.run === r.run)?.v.p99_us ?? NaN)));
    added[`${t}@${rate}`] = { p50: ap50, p99: ap99, rps: med(rs.map((r) => r.v.rps)) };
    const errs = rs.reduce((a, r) => a + r.v.non2xx + r.v.sockerr, 0);
    p(`| ${NAME[t]} | ${f1(med(rs.map((r) => r.v.rps)))} | ${ms(med(rs.map((r) => r.v.p50_us)))} | ${ms(med(rs.map((r) => r.v.p99_us)))} | ` +
      `${ms(med(rs.map((r) => r.v.p999_us)))} | ${t === 'fake' ? '' : ms(ap50)} | ${t === 'fake' ? '' : ms(ap99)} | ${errs} | ` +
      `${list(rs, (r) => ms(r.v.p50_us))} | ${list(rs, (r) => ms(r.v.p99_us))} |`);
  }
  p('');
}

// 2. max throughput
p('### Maximum throughput, no streaming', '',
  `wrk -t2 -c${conns}, closed loop, ${secs} s. CPU = cores used by each process during the run (from /proc/PID/stat).`, '',
  '| target | req/s | p50 ms | p99 ms | errors | req/s per run | CPU fake | CPU agentprov | CPU Portkey |',
  '|---|---|---|---|---|---|---|---|---|');
const maxRps = {};
for (const t of T) {
  const rs = sel('max', t);
  maxRps[t] = med(rs.map((r) => r.v.rps));
  const c = (n) => med(rs.map((r) => r.v[`cpu_${n}`] / r.v.hz / r.v.secs)).toFixed(2);
  p(`| ${NAME[t]} | ${f1(maxRps[t])} | ${ms(med(rs.map((r) => r.v.p50_us)))} | ${ms(med(rs.map((r) => r.v.p99_us)))} | ` +
    `${rs.reduce((a, r) => a + r.v.non2xx + r.v.sockerr, 0)} | ${list(rs, (r) => f1(r.v.rps))} | ${c('fake')} | ${c('agentprov')} | ${c('portkey')} |`);
}
const ratio = maxRps.agentprov / maxRps.portkey;
p('', `agentprov / Portkey maximum throughput: **${ratio.toFixed(1)}×**.`, '');

// 3. ttft
p('### Streaming: time to first token', '',
  '400 streams per target, 8 at a time over keep-alive connections, 5 chunks 20 ms apart (`x-fake-chunks: 5`, `x-fake-chunk-delay-ms: 20`); ' +
  'time from writing the request to the first SSE `data:` event. Added = through the gateway minus direct, per run, then the median.', '',
  '| target | p50 ms | p90 ms | p99 ms | added p50 ms | added p99 ms | failed streams | p50 per run |', '|---|---|---|---|---|---|---|---|');
const ttftAdded = {};
const dT = sel('ttft', 'fake');
for (const t of T) {
  const rs = sel('ttft', t);
  const a50 = t === 'fake' ? null : med(rs.map((r) => r.v.p50_ms - (dT.find((d) => d.run === r.run)?.v.p50_ms ?? NaN)));
  const a99 = t === 'fake' ? null : med(rs.map((r) => r.v.p99_ms - (dT.find((d) => d.run === r.run)?.v.p99_ms ?? NaN)));
  ttftAdded[t] = { p50: a50, p99: a99 };
  const x = (v) => v === null ? '' : v.toFixed(3);
  p(`| ${NAME[t]} | ${x(med(rs.map((r) => r.v.p50_ms)))} | ${x(med(rs.map((r) => r.v.p90_ms)))} | ${x(med(rs.map((r) => r.v.p99_ms)))} | ` +
    `${x(a50)} | ${x(a99)} | ${rs.reduce((a, r) => a + r.v.errors, 0)} | ${list(rs, (r) => r.v.p50_ms.toFixed(3))} |`);
}
p('');

// 4. soak
const soaks = rows.filter((r) => r.kind === 'soak');
let soakAp = null;
if (soaks.length) {
  p('### Concurrent streams', '',
    'All streams opened within 2 s and held open together: 20 chunks 500 ms apart (~10 s each). RSS sampled every 50 ms from /proc/PID/status (VmRSS) of the gateway.', '',
    '| through | streams | completed | failed (kind: count) | wall s | TTFT p50 / p99 ms | gateway RSS before | peak RSS | RSS after |', '|---|---|---|---|---|---|---|---|---|');
  for (const r of soaks) {
    const v = r.v;
    if (r.target === 'agentprov') soakAp = v;
    const e = Object.entries(v.errors).map(([k, n]) => `${k}: ${n}`).join(', ') || '0';
    p(`| ${r.target} | ${v.streams} | ${v.completed} | ${e} | ${v.wall_s.toFixed(1)} | ${v.ttft_p50_ms} / ${v.ttft_p99_ms} | ` +
      `${(v.rss_before_kb / 1024).toFixed(1)} MB | ${(v.rss_peak_kb / 1024).toFixed(1)} MB | ${(v.rss_after_kb / 1024).toFixed(1)} MB |`);
  }
  p('');
}

// targets
const ok = (b) => (b ? 'met' : '**not met**');
const a2k = added['agentprov@2000'];
p('### Targets (2 cores)', '', '| target | measured (agentprov) | |', '|---|---|---|');
if (a2k) {
  p(`| added latency p50 ≤ 0.2 ms at 2,000 req/s | ${ms(a2k.p50)} ms | ${ok(a2k.p50 <= 200)} |`);
  p(`| added latency p99 ≤ 1 ms at 2,000 req/s | ${ms(a2k.p99)} ms | ${ok(a2k.p99 <= 1000)} |`);
}
p(`| time to first token added ≤ 1 ms (p50) | ${ttftAdded.agentprov.p50.toFixed(3)} ms (p99 ${ttftAdded.agentprov.p99.toFixed(3)} ms) | ${ok(ttftAdded.agentprov.p50 <= 1)} |`);
p(`| maximum throughput ≥ 5× Portkey's | ${ratio.toFixed(1)}× (${f1(maxRps.agentprov)} vs ${f1(maxRps.portkey)} req/s) | ${ok(ratio >= 5)} |`);
if (soakAp) {
  // ~10 s streams opened over 2 s: a wall time well over 13 s or a TTFT p99
  // over 2 s means some streams waited for others to end (not concurrent)
  const together = soakAp.wall_s <= 13 && soakAp.ttft_p99_ms <= 2000;
  const fits = soakAp.completed === soakAp.streams && soakAp.rss_peak_kb <= 500 * 1024;
  p(`| ${soakAp.streams} concurrent streams in ≤ 500 MB RSS | ${soakAp.completed}/${soakAp.streams} completed, peak ${(soakAp.rss_peak_kb / 1024).toFixed(1)} MB; ` +
    `wall ${soakAp.wall_s.toFixed(1)} s, TTFT p99 ${(soakAp.ttft_p99_ms / 1000).toFixed(1)} s | ` +
    `${fits && together ? 'met' : fits ? '**not met**: all completed within the memory bound, but not all at once (some streams waited for a connection slot)' : '**not met**'} |`);
}
p('');
const notes = new URL('./NOTES.md', import.meta.url);
if (existsSync(notes)) p(readFileSync(notes, 'utf8').trim(), '');
process.stdout.write(out.join('\n'));

// Instructions per gateway call, all threads of agentprov, under
// valgrind --tool=callgrind: a non-streamed chat completion through the
// gateway to the fake upstream (openai/gpt-4o-mini) or to the builtin model.
//
//   node bench/gateway/callgrind.mjs ./agentprov build/fake-upstream [N]
//
// Starts both on free ports with a fresh SQLite data dir, creates a tenant
// and a key, warms up (50 calls), zeroes the counters (callgrind_control
// -z), makes N sequential calls (default 300) per model, dumps, and prints
// Ir / call for each.  Sequential calls on one connection: the figure is
// the server's work per call, free of scheduling noise.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';

const [bin, fakeBin, nArg] = process.argv.slice(2);
const N = Number(nArg || 300);
const dir = mkdtempSync(join(tmpdir(), 'ap-callgrind-'));
const freePort = () => new Promise((res) => { const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => res(p)); }); });
const fakePort = await freePort();
const fake = spawn(fakeBin, ['--listen', `127.0.0.1:${fakePort}`, '--threads', '1', '--exit-with-parent'], { stdio: 'ignore' });
const port = await freePort();
const ap = spawn('valgrind', ['--tool=callgrind', `--callgrind-out-file=${dir}/cg.%p`, bin, 'serve',
  '--listen', `127.0.0.1:${port}`, '--data-dir', `${dir}/data`, '--log-level', 'warn'],
  { stdio: ['ignore', 'ignore', 'ignore'], env: { ...process.env, AP_PROVIDER_OPENAI_BASE_URL: `http://127.0.0.1:${fakePort}/v1`, AP_PROVIDER_OPENAI_API_KEY: 'sk-bench' } });
const url = `http://127.0.0.1:${port}`;
const t0 = Date.now();
for (;;) {
  try { if ((await fetch(url + '/readyz')).status === 200) break; } catch { /* not yet */ }
  if (Date.now() - t0 > 120000) throw new Error('not ready');
  await new Promise((r) => setTimeout(r, 200));
}
const admin = readFileSync(`${dir}/data/admin.key`, 'utf8').trim();
async function call(method, path, key, body) {
  const r = await fetch(url + path, { method, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: body && JSON.stringify(body) });
  const j = await r.json();
  if (r.status >= 300) throw new Error(JSON.stringify(j));
  return j;
}
const t = await call('POST', '/api/v1/tenants', admin, { name: 'Callgrind Tenant' });
const k = await call('POST', `/api/v1/tenants/${t.id}/api-keys`, admin, { name: 'cg', role: 'operator' });
const chat = (model) => call('POST', '/v1/chat/completions', k.key, { model, messages: [{ role: 'user', content: 'Say hello to the benchmark.' }] });
const total = () => {
  const f = readdirSync(dir).filter((x) => x.startsWith('cg.')).map((x) => readFileSync(join(dir, x), 'utf8'));
  let ir = 0;
  for (const text of f) for (const m of text.matchAll(/^totals: (\d+)/gm)) ir += Number(m[1]);
  return ir;
};
const out = {};
for (const model of ['openai/gpt-4o-mini', 'builtin/agentprov-mini']) {
  for (let i = 0; i < 50; i++) await chat(model);
  execFileSync('callgrind_control', ['-z', String(ap.pid)], { stdio: 'ignore' });
  for (const x of readdirSync(dir).filter((x) => x.startsWith('cg.'))) rmSync(join(dir, x));
  for (let i = 0; i < N; i++) await chat(model);
  execFileSync('callgrind_control', ['-d', String(ap.pid)], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 500));
  out[model] = Math.round(total() / N);
  if (process.env.CG_ANNOTATE) { // the dump of this model, kept for callgrind_annotate
    for (const x of readdirSync(dir).filter((x) => x.startsWith('cg.'))) execFileSync('cp', [join(dir, x), `${process.env.CG_ANNOTATE}.${model.replace('/', '_')}.${x}`]);
  }
}
ap.kill('SIGTERM'); fake.kill('SIGTERM');
await new Promise((r) => ap.on('exit', r));
rmSync(dir, { recursive: true, force: true });
for (const [m, ir] of Object.entries(out)) console.log(`${m}\t${ir} Ir/call`);

// Benchmark set-up: starts the release binary on a fresh SQLite data dir,
// measures start-to-ready from spawn to the first 200 of /readyz, creates a
// tenant, a tenant_admin key and a user, and prints them as shell
// assignments for bench/run.sh.  The server keeps running (its pid is
// printed); run.sh stops it.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';

const [bin, dataDir, logFile] = process.argv.slice(2);
const { openSync } = await import('node:fs');
const out = openSync(logFile, 'a');
// a free port picked here, so start-up can be timed at any log level
const net = await import('node:net');
const port = await new Promise((res) => {
  const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => res(p)); });
});
const t0 = process.hrtime.bigint();
const child = spawn(bin, ['serve', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir,
  '--log-level', process.env.BENCH_LOG_LEVEL || 'info'],
  { stdio: ['ignore', 'ignore', out], detached: true });
const url = `http://127.0.0.1:${port}`;
let ready = false;
while (!ready) {
  try { ready = (await fetch(url + '/readyz')).status === 200; } catch { /* not yet */ }
  if (!ready) await new Promise((r) => setTimeout(r, 1));
  if (Number(process.hrtime.bigint() - t0) > 20e9) throw new Error('server not ready in 20 s');
}
const startMs = Number(process.hrtime.bigint() - t0) / 1e6;
const admin = readFileSync(`${dataDir}/admin.key`, 'utf8').trim();
async function call(method, path, key, body) {
  const r = await fetch(url + path, { method, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: body && JSON.stringify(body) });
  const j = await r.json();
  if (r.status >= 300) throw new Error(JSON.stringify(j));
  return j;
}
const t = await call('POST', '/api/v1/tenants', admin, { name: 'Bench Tenant', max_agents: 10 });
const k = await call('POST', `/api/v1/tenants/${t.id}/api-keys`, admin, { name: 'bench', role: 'tenant_admin' });
const u = await call('POST', '/api/v1/users', k.key, { email: 'bench@bench.example', role: 'viewer' });
console.log(`PID=${child.pid} URL=${url} TENANT=${t.id} KEY=${k.key} USER=${u.id} START_MS=${startMs.toFixed(1)}`);
child.unref();
process.exit(0);

// Gateway benchmark set-up (bench/gateway.sh): starts the fake upstream,
// agentprov (release build, fresh SQLite data dir, --log-level warn) and
// Portkey's open-source gateway (node, --headless), all on 127.0.0.1 with
// ports picked by binding port 0; creates a tenant and an operator key in
// agentprov; prints shell assignments.  The three processes keep running
// (detached, stderr to log files in the work dir); gateway.sh stops them.
//
//   node bench/gateway/start.mjs AGENTPROV_BIN FAKE_BIN WORKDIR
import { spawn } from 'node:child_process';
import { openSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import net from 'node:net';
import * as awaitFs from 'node:fs';

const [apBin, fakeBin, work] = process.argv.slice(2);
const UPSTREAM_KEY = 'sk-bench-upstream-0123456789';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function launch(bin, args, logName, env = {}) {
  const err = openSync(join(work, logName), 'a');
  return spawn(bin, args, { stdio: ['ignore', err, err], detached: true, env: { ...process.env, ...env } });
}
async function readyLine(file, re, ms = 20000) {
  const t0 = Date.now();
  for (;;) {
    let text = '';
    try { text = readFileSync(file, 'utf8'); } catch { /* not yet */ }
    const m = text.match(re);
    if (m) return m;
    if (Date.now() - t0 > ms) throw new Error(`not ready: ${file}\n${text.slice(-2000)}`);
    await sleep(20);
  }
}
const freePort = () => new Promise((res) => {
  const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => res(p)); });
});

// 1. fake upstream: binds port 0 itself and prints the port
const fake = launch(fakeBin, ['--listen', '127.0.0.1:0'], 'fake.log');
const fakePort = Number((await readyLine(join(work, 'fake.log'), /"msg":"ready"[^\n]*"port":(\d+)/))[1]);
const fakeUrl = `http://127.0.0.1:${fakePort}`;

// 2. agentprov: binds port 0 itself and prints its url
const ap = launch(apBin, ['serve', '--listen', '127.0.0.1:0', '--data-dir', join(work, 'data'),
  '--log-level', 'warn'], 'agentprov.log', {
  AP_PROVIDER_OPENAI_BASE_URL: `${fakeUrl}/v1`,
  AP_PROVIDER_OPENAI_API_KEY: UPSTREAM_KEY,
  AP_FORWARD_HEADERS: 'x-fake-',
});
// at --log-level warn the ready line may not be logged: find the port from /proc
let apUrl = null;
{
  const t0 = Date.now();
  while (!apUrl) {
    const text = (() => { try { return readFileSync(join(work, 'agentprov.log'), 'utf8'); } catch { return ''; } })();
    const m = text.match(/"url":"(http:\/\/127\.0\.0\.1:\d+)"/);
    if (m) apUrl = m[1];
    else {
      const port = listenPortOf(ap.pid);
      if (port) {
        try { if ((await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200) apUrl = `http://127.0.0.1:${port}`; } catch { /* not yet */ }
      }
    }
    if (!apUrl) { if (Date.now() - t0 > 20000) throw new Error('agentprov not ready:\n' + text); await sleep(20); }
  }
}
function listenPortOf(pid) {
  // inodes of the process's sockets, matched against /proc/net/tcp LISTEN rows
  let inodes;
  try {
    const { readdirSync, readlinkSync } = awaitFs;
    inodes = new Set(readdirSync(`/proc/${pid}/fd`).map((f) => { try { return readlinkSync(`/proc/${pid}/fd/${f}`); } catch { return ''; } })
      .map((l) => (l.match(/^socket:\[(\d+)\]$/) || [])[1]).filter(Boolean));
  } catch { return null; }
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length > 9 && f[3] === '0A' && inodes.has(f[9])) return parseInt(f[1].split(':')[1], 16);
  }
  return null;
}
while ((await fetch(apUrl + '/readyz')).status !== 200) await sleep(20);
const admin = readFileSync(join(work, 'data', 'admin.key'), 'utf8').trim();
async function call(method, path, key, body) {
  const r = await fetch(apUrl + path, { method, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: body && JSON.stringify(body) });
  const j = await r.json();
  if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(j)}`);
  return j;
}
const t = await call('POST', '/api/v1/tenants', admin, { name: 'Gateway Bench', monthly_token_limit: 1000000000000000 });
const k = await call('POST', `/api/v1/tenants/${t.id}/api-keys`, admin, { name: 'bench', role: 'operator' });

// 3. Portkey gateway: its npm bin (build/start-server.js) takes --port=N
const require = createRequire(import.meta.url);
const pkDir = dirname(require.resolve('@portkey-ai/gateway/package.json'));
const pkPort = await freePort();
const pk = launch(process.execPath, [join(pkDir, 'build', 'start-server.js'), `--port=${pkPort}`, '--headless'],
  'portkey.log', { NODE_ENV: 'production' });
const pkUrl = `http://127.0.0.1:${pkPort}`;
{
  const t0 = Date.now();
  for (;;) {
    try { const r = await fetch(pkUrl + '/'); await r.text(); break; } catch { /* not yet */ }
    if (Date.now() - t0 > 30000) throw new Error('portkey not ready:\n' + readFileSync(join(work, 'portkey.log'), 'utf8'));
    await sleep(50);
  }
}
console.log(`FAKE_PID=${fake.pid} FAKE_URL=${fakeUrl} AP_PID=${ap.pid} AP_URL=${apUrl} AP_KEY=${k.key} ` +
  `PK_PID=${pk.pid} PK_URL=${pkUrl} UPSTREAM_KEY=${UPSTREAM_KEY}`);
for (const c of [fake, ap, pk]) c.unref();
process.exit(0);

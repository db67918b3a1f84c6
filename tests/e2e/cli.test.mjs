// The binary as a command-line tool: the API client commands (tenants,
// users, keys, audit list) against a running server with AP_URL and
// AP_API_KEY; their output (tables, -o json), errors (problem title and
// detail on stderr, exit 1) and usage errors (exit 2); and the offline
// commands migrate and audit verify, including a database whose schema is
// newer than the binary.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startServer, tenantWithKeys, BIN, BACKEND } from './lib/server.mjs';

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/;
const KEY = /apk_[A-Za-z0-9_-]{16}_[A-Za-z0-9_-]{43}/;

// Runs the binary with only the AP_* settings given (none from the shell).
function cli(args, env = {}, { timeout = 20000 } = {}) {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AP_')));
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, args, { env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeout);
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: out, stderr: err });
    });
  });
}

let srv;
let env;
// Runs an API client command as the platform admin (or with `key`) and
// expects exit 0; returns stdout, parsed when -o json was asked for.
async function ok(args, key) {
  const r = await cli(args, { ...env, ...(key ? { AP_API_KEY: key } : {}) });
  assert.equal(r.code, 0, `agentprov ${args.join(' ')} exited ${r.code}:\n${r.stdout}${r.stderr}`);
  assert.doesNotMatch(r.stderr, /Sanitizer/);
  return args.includes('-o') && args[args.indexOf('-o') + 1] === 'json' ? JSON.parse(r.stdout) : r.stdout;
}
async function fails(args, code, extraEnv = {}) {
  const r = await cli(args, { ...env, ...extraEnv });
  assert.equal(r.code, code, `agentprov ${args.join(' ')} exited ${r.code}, expected ${code}:\n${r.stdout}${r.stderr}`);
  assert.doesNotMatch(r.stderr, /Sanitizer/);
  assert.doesNotMatch(r.stdout + r.stderr, KEY, 'an API key was printed');
  return r;
}
// A "key  value" object view → {key: value}
function kv(out) {
  return Object.fromEntries(out.trim().split('\n').map((l) => {
    const m = l.match(/^(\S+)\s+(.*)$/);
    return m ? [m[1], m[2]] : [l, ''];
  }));
}
// A table → array of row objects keyed by lowercase header
function table(out) {
  const lines = out.split('\n').filter((l) => l && !l.startsWith('(more'));
  const heads = lines[0].split(/\s{2,}/).map((h) => h.toLowerCase());
  return lines.slice(1).map((l) => Object.fromEntries(l.split(/\s{2,}/).map((v, i) => [heads[i], v])));
}

before(async () => {
  srv = await startServer();
  env = { AP_URL: srv.url, AP_API_KEY: srv.adminKey };
});
after(async () => { if (srv) await srv.stop(); });

test('tenants: create, list, get, update, suspend, resume, delete', async () => {
  const created = await ok(['tenants', 'create', '--name', 'Cli Corp']);
  const id = kv(created).id;
  assert.match(id, UUID);
  assert.equal(kv(created).slug, 'cli-corp');
  assert.equal(kv(created).status, 'active');
  const j = await ok(['tenants', 'create', '--name', 'Cli Json', '--slug', 'cli-json-1', '--plan', 'team', '--max-agents', '3', '-o', 'json']);
  assert.equal(j.slug, 'cli-json-1');
  assert.equal(j.plan, 'team');
  assert.equal(j.entitlements.max_agents, 3);

  const list = await ok(['tenants', 'list']);
  assert.match(list.split('\n')[0], /^ID\s+SLUG\s+NAME\s+PLAN\s+STATUS\s+CREATED_AT$/);
  const rows = table(list);
  assert.ok(rows.some((r) => r.id === id && r.name === 'Cli Corp' && r.status === 'active'));
  assert.ok(rows.some((r) => r.id === j.id));
  const lj = await ok(['tenants', 'list', '-o', 'json']);
  assert.ok(lj.data.some((t) => t.id === id));
  const page = await ok(['tenants', 'list', '--limit', '1']);
  assert.match(page, /^\(more: --cursor \S+\)$/m);
  const cursor = page.match(/--cursor (\S+)\)/)[1];
  const page2 = await ok(['tenants', 'list', '--limit', '1', '--cursor', cursor, '-o', 'json']);
  assert.equal(page2.data.length, 1);
  assert.notEqual(page2.data[0].id, table(page)[0].id);

  assert.equal((await ok(['tenants', 'get', id, '-o', 'json'])).name, 'Cli Corp');
  assert.equal(kv(await ok(['tenants', 'get', id])).name, 'Cli Corp');
  const up = await ok(['tenants', 'update', id, '--plan', 'business', '--max-agents', '42', '--name', 'Cli Corporation', '-o', 'json']);
  assert.equal(up.plan, 'business');
  assert.equal(up.name, 'Cli Corporation');
  assert.equal(up.entitlements.max_agents, 42);
  assert.equal((await ok(['tenants', 'suspend', id, '-o', 'json'])).status, 'suspended');
  assert.equal(kv(await ok(['tenants', 'resume', id])).status, 'active');
  const del = await ok(['tenants', 'delete', j.id, '-o', 'json']);
  assert.equal(del.status, 'deleted');
  const deleted = await ok(['tenants', 'list', '--status', 'deleted', '-o', 'json']);
  assert.ok(deleted.data.some((t) => t.id === j.id));
  assert.ok(!(await ok(['tenants', 'list', '-o', 'json'])).data.some((t) => t.id === j.id));
});

test('users: create, list, get, update, delete with --tenant, and through the key\'s tenant', async () => {
  const t = await tenantWithKeys(srv, 'Cli Users');
  const u = await ok(['users', 'create', '--tenant', t.id, '--email', 'Ada@Cli.example', '--role', 'operator', '--display-name', 'Ada L', '-o', 'json']);
  assert.equal(u.email, 'ada@cli.example');
  assert.equal(u.tenant_id, t.id);
  const list = await ok(['users', 'list', '--tenant', t.id]);
  assert.match(list.split('\n')[0], /^ID\s+EMAIL\s+DISPLAY_NAME\s+ROLE\s+STATUS$/);
  assert.ok(table(list).some((r) => r.id === u.id && r.email === 'ada@cli.example' && r.role === 'operator' && r.display_name === 'Ada L'));
  assert.equal(kv(await ok(['users', 'get', u.id, '--tenant', t.id])).email, 'ada@cli.example');
  const up = await ok(['users', 'update', u.id, '--tenant', t.id, '--role', 'viewer', '--status', 'disabled', '-o', 'json']);
  assert.equal(up.role, 'viewer');
  assert.equal(up.status, 'disabled');
  assert.match(await ok(['users', 'delete', u.id, '--tenant', t.id]), /^done$/m);
  const gone = await fails(['users', 'get', u.id, '--tenant', t.id], 1);
  assert.match(gone.stderr, /not found \(HTTP 404\)/);
  // without --tenant the key's own tenant is used
  const admin = t.keys.tenant_admin;
  const v = await ok(['users', 'create', '--email', 'own@cli.example', '--role', 'viewer', '-o', 'json'], admin);
  assert.equal(v.tenant_id, t.id);
  assert.ok((await ok(['users', 'list', '-o', 'json'], admin)).data.some((x) => x.id === v.id));
  assert.equal((await ok(['users', 'get', v.id, '-o', 'json'], t.keys.viewer)).id, v.id);
});

test('keys: create shows the key once with a note; list never shows it; revoke stops it', async () => {
  const t = await tenantWithKeys(srv, 'Cli Keys');
  const out = await ok(['keys', 'create', '--tenant', t.id, '--name', 'robot', '--role', 'operator']);
  const keys = out.match(new RegExp(KEY.source, 'g'));
  assert.equal(keys.length, 1, 'the key is printed exactly once');
  assert.match(out, /shown only once/);
  const id = kv(out).id;
  assert.match(id, UUID);
  const key = keys[0];
  assert.equal((await srv.request('GET', '/api/v1/tenant', { key })).status, 200);
  const j = await ok(['keys', 'create', '--tenant', t.id, '--name', 'robot2', '--role', 'viewer', '-o', 'json']);
  assert.match(j.key, KEY);
  const list = await ok(['keys', 'list', '--tenant', t.id]);
  assert.match(list.split('\n')[0], /^ID\s+NAME\s+ROLE\s+USER_ID\s+EXPIRES_AT\s+REVOKED_AT\s+LAST_USED_AT$/);
  assert.doesNotMatch(list, KEY);
  assert.ok(table(list).some((r) => r.id === id && r.name === 'robot' && r.role === 'operator'));
  const lj = await ok(['keys', 'list', '--tenant', t.id, '-o', 'json']);
  assert.ok(lj.data.every((k) => k.key === undefined && k.key_hash === undefined));
  const rv = await ok(['keys', 'revoke', id, '--tenant', t.id, '-o', 'json']);
  assert.ok(rv.revoked_at);
  assert.equal((await srv.request('GET', '/api/v1/tenant', { key })).status, 401);
  // a tenant admin's own keys, without --tenant
  const own = await ok(['keys', 'create', '--name', 'mine', '--role', 'viewer', '-o', 'json'], t.keys.tenant_admin);
  assert.equal(own.tenant_id, t.id);
  assert.ok(kv(await ok(['keys', 'revoke', own.id], t.keys.tenant_admin)).revoked_at.match(/^\d{4}-/));
});

test('API errors print the problem\'s title and detail and exit 1', async () => {
  const t = await tenantWithKeys(srv, 'Cli Errors');
  const role = await fails(['users', 'create', '--tenant', t.id, '--email', 'x@e.example', '--role', 'emperor'], 1);
  assert.match(role.stderr, /^error: value not allowed \(HTTP 400\)$/m);
  assert.match(role.stderr, /field "role" is "emperor"/);
  const denied = await fails(['users', 'create', '--email', 'x@e.example', '--role', 'viewer'], 1, { AP_API_KEY: t.keys.viewer });
  assert.match(denied.stderr, /permission denied \(HTTP 403\)/);
  assert.match(denied.stderr, /role viewer lacks permission user\.write/);
  const dup = await fails(['tenants', 'create', '--name', 'Cli Errors'], 1);
  assert.match(dup.stderr, /HTTP 409/);
  const bad = await fails(['tenants', 'get', 'not-a-uuid'], 1);
  assert.match(bad.stderr, /HTTP 404/);
  const badKey = await fails(['tenants', 'list'], 1, { AP_API_KEY: 'apk_AAAAAAAAAAAAAAAA_' + 'B'.repeat(43) });
  assert.match(badKey.stderr, /invalid API key \(HTTP 401\)/);
  assert.doesNotMatch(badKey.stderr, /BBBB/);
  const noKey = await cli(['tenants', 'list'], { AP_URL: srv.url });
  assert.equal(noKey.code, 1);
  assert.match(noKey.stderr, /no API key/);
  assert.match(noKey.stderr, /hint: .*AP_API_KEY/);
  const down = await fails(['tenants', 'list'], 1, { AP_URL: 'http://127.0.0.1:1' });
  assert.match(down.stderr, /cannot reach the platform/);
  assert.match(down.stderr, /127\.0\.0\.1:1/);
  assert.match(down.stderr, /hint: /);
});

test('usage errors exit 2; --help exits 0', async () => {
  const usage = [
    [],
    ['frobnicate'],
    ['tenants'],
    ['tenants', 'frob'],
    ['tenants', 'get'],
    ['tenants', 'list', 'extra'],
    ['tenants', 'create', '--name'],
    ['tenants', 'create', '--name', 'X', '--colour', 'red'],
    ['tenants', 'update', '0190c2b4-0000-7000-8000-000000000000', '--max-agents', 'many'],
    ['tenants', 'list', '-o', 'yaml'],
    ['tenants', 'list', '-o'],
    ['tenants', 'get', 'a', 'b'],
    ['tenants', 'get', 'a', '--plan', 'team'],
    ['users', 'create', '--tenant'],
    ['keys', 'update', '0190c2b4-0000-7000-8000-000000000000'],
    ['keys', 'delete', '0190c2b4-0000-7000-8000-000000000000'],
    ['tenants', 'revoke', '0190c2b4-0000-7000-8000-000000000000'],
    ['audit'],
    ['audit', 'frob'],
    ['audit', 'list', '--limit', 'ten'],
    ['audit', 'list', '--database-url', 'sqlite:/tmp/x'],
    ['audit', 'list', '-o', 'yaml'],
    ['audit', 'verify', '--action', 'x'],
    ['audit', 'export', '--format', 'csv'],
    ['migrate', '--bogus'],
    ['migrate', 'extra'],
    ['admin', 'frob'],
    ['serve', '--bogus'],
  ];
  for (const args of usage) {
    const r = await fails(args, 2);
    assert.ok(r.stderr.length > 0, `agentprov ${args.join(' ')} said nothing on stderr`);
    assert.equal(r.stdout, '', `agentprov ${args.join(' ')}: usage errors go to stderr`);
  }
  for (const args of [['--help'], ['tenants', '--help'], ['users', '--help'], ['keys', '--help'], ['audit', '--help'], ['migrate', '--help'], ['serve', '--help'], ['admin', '--help']]) {
    const r = await cli(args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stdout, /usage: agentprov/);
  }
  assert.match((await cli(['audit', '--help'])).stdout, /audit list/);
  const v = await cli(['--version']);
  assert.equal(v.code, 0);
  assert.match(v.stdout, /^agentprov \S+\n$/);
});

test('audit list: the API-backed log view with filters, paging and JSON', async () => {
  const t = await tenantWithKeys(srv, 'Cli Audit');
  const admin = t.keys.tenant_admin;
  for (const e of ['a@ca.example', 'b@ca.example']) await ok(['users', 'create', '--email', e, '--role', 'viewer'], admin);
  const api = (await srv.request('GET', `/api/v1/tenants/${t.id}/audit`)).body.data;
  assert.equal(api.length, 8);
  const out = await ok(['audit', 'list', '--tenant', t.id]);
  assert.match(out.split('\n')[0], /^SEQ\s+TIME\s+ACTOR_ID\s+ACTION\s+RESOURCE_TYPE\s+RESOURCE_ID\s+OUTCOME$/);
  const rows = table(out);
  assert.deepEqual(rows.map((r) => [Number(r.seq), r.time, r.actor_id, r.action, r.resource_type, r.resource_id, r.outcome]),
    api.map((e) => [e.seq, e.time, e.actor_id, e.action, e.resource_type, e.resource_id, e.outcome]));
  // the key's own tenant without --tenant; a filter by action prefix
  const j = await ok(['audit', 'list', '--action', 'user.*', '-o', 'json'], t.keys.auditor);
  assert.deepEqual(j.data.map((e) => e.seq), [7, 8]);
  assert.equal(j.next_cursor, null);
  assert.deepEqual((await ok(['audit', 'list', '--tenant', t.id, '--action', 'tenant.create', '-o', 'json'])).data.map((e) => e.seq), [1]);
  assert.deepEqual((await ok(['audit', 'list', '--resource-type', 'api_key', '-o', 'json'], admin)).data.length, 5);
  assert.deepEqual((await ok(['audit', 'list', '--resource-id', api[6].resource_id, '-o', 'json'], admin)).data.map((e) => e.seq), [7]);
  assert.deepEqual((await ok(['audit', 'list', '--actor', api[6].actor_id, '-o', 'json'], admin)).data.map((e) => e.seq), [7, 8]);
  // times with an offset must be encoded ('+' is a space in a query)
  const at = api[6].time;
  const offset = new Date(Date.parse(at) + 3600e3).toISOString().replace('Z', '+01:00');
  const since = await ok(['audit', 'list', '--since', offset, '-o', 'json'], admin);
  assert.deepEqual(since.data.map((e) => e.seq), api.filter((e) => e.time >= at).map((e) => e.seq));
  const until = await ok(['audit', 'list', '--until', at, '-o', 'json'], admin);
  assert.deepEqual(until.data.map((e) => e.seq), api.filter((e) => e.time < at).map((e) => e.seq));
  // paging
  const p1 = await ok(['audit', 'list', '--limit', '3'], admin);
  assert.equal(table(p1).length, 3);
  assert.match(p1, /^\(more: --cursor 3\)$/m);
  const p2 = await ok(['audit', 'list', '--limit', '3', '--cursor', '3', '-o', 'json'], admin);
  assert.deepEqual(p2.data.map((e) => e.seq), [4, 5, 6]);
  // refusals
  const v = await fails(['audit', 'list'], 1, { AP_API_KEY: t.keys.viewer });
  assert.match(v.stderr, /permission denied \(HTTP 403\)/);
  const lim = await fails(['audit', 'list', '--limit', '501'], 1, { AP_API_KEY: admin });
  assert.match(lim.stderr, /invalid limit \(HTTP 400\)/);
  const when = await fails(['audit', 'list', '--since', 'last tuesday'], 1, { AP_API_KEY: admin });
  assert.match(when.stderr, /invalid time/);
  assert.match(when.stderr, /last tuesday/);
  const other = await fails(['audit', 'list', '--tenant', t.id], 1, { AP_API_KEY: (await tenantWithKeys(srv, 'Cli Other')).keys.auditor });
  assert.match(other.stderr, /HTTP 404/);
});

test('audit verify (offline) against the server\'s store', async () => {
  const t = await tenantWithKeys(srv, 'Cli Verify');
  const r = await cli(['audit', 'verify', '--database-url', srv.databaseUrl]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^TENANT\s+OK\s+ENTRIES\s+FIRST_BAD$/m);
  assert.match(r.stdout, new RegExp(`^${t.id}\\s+yes\\s+6\\s+-$`, 'm'));
  const j = await cli(['audit', 'verify', '--tenant', t.id, '-o', 'json', '--database-url', srv.databaseUrl]);
  assert.equal(j.code, 0, j.stderr);
  assert.deepEqual(JSON.parse(j.stdout), [{ tenant_id: t.id, ok: true, entries_checked: 6, first_bad_sequence: null }]);
  // the environment works as well as the flag
  const e = await cli(['audit', 'verify', '--tenant', t.id], { AP_DATABASE_URL: srv.databaseUrl });
  assert.equal(e.code, 0, e.stderr);
  if (BACKEND === 'sqlite') {
    const d = await cli(['audit', 'verify', '--tenant', t.id], { AP_DATA_DIR: srv.dataDir });
    assert.equal(d.code, 0, d.stderr);
  }
  const unreachable = await cli(['audit', 'verify', '--database-url', 'postgres://nobody:secretpw@127.0.0.1:1/none']);
  assert.equal(unreachable.code, 3);
  assert.doesNotMatch(unreachable.stderr, /secretpw/);
});

// A fresh store of the current backend for offline commands: a data dir,
// and for PostgreSQL a new empty database.
function freshStore() {
  const dir = mkdtempSync(join(tmpdir(), 'ap-cli-'));
  let url = `sqlite:${join(dir, 'agentprov.db')}`;
  let db = null;
  if (BACKEND === 'postgres') {
    db = 'cli_' + randomBytes(6).toString('hex');
    execFileSync('psql', [process.env.AP_TEST_PG_ADMIN_URL, '-qAtc', `CREATE DATABASE ${db} OWNER agentprov`]);
    const u = new URL(process.env.AP_TEST_PG_URL);
    u.pathname = '/' + db;
    url = u.toString();
  }
  const sqlExec = (stmt) => {
    const r = db
      ? spawnSync('psql', [url, '-v', 'ON_ERROR_STOP=1', '-qAtc', stmt], { encoding: 'utf8' })
      : spawnSync('sqlite3', [join(dir, 'agentprov.db'), stmt], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout;
  };
  const args = db ? ['--data-dir', dir, '--database-url', url] : ['--data-dir', dir];
  const cleanup = () => {
    if (db) execFileSync('psql', [process.env.AP_TEST_PG_ADMIN_URL, '-qAtc', `DROP DATABASE IF EXISTS ${db}`]);
    rmSync(dir, { recursive: true, force: true });
  };
  return { dir, url, args, sqlExec, cleanup };
}

test('migrate: a fresh store gets the schema; a second run applies nothing', async () => {
  const s = freshStore();
  try {
    const r1 = await cli(['migrate', ...s.args]);
    assert.equal(r1.code, 0, r1.stderr);
    const m = r1.stdout.match(/^schema at version (\d+) \((\d+) applied\)$/m);
    assert.ok(m, r1.stdout);
    const version = Number(m[1]);
    assert.ok(version >= 1);
    assert.equal(Number(m[2]), version, 'every migration applied on a fresh store');
    const ready = await srv.request('GET', '/readyz', { key: null });
    assert.equal(ready.body.schema_version, version);
    const r2 = await cli(['migrate', ...s.args]);
    assert.equal(r2.code, 0, r2.stderr);
    assert.match(r2.stdout, new RegExp(`^schema at version ${version} \\(0 applied\\)$`, 'm'));
    assert.equal(s.sqlExec('SELECT COUNT(*) FROM schema_migrations').trim(), String(version));
    // the environment names the store as well as the flags do
    const r3 = await cli(['migrate'], BACKEND === 'postgres' ? { AP_DATABASE_URL: s.url } : { AP_DATA_DIR: s.dir });
    assert.equal(r3.code, 0, r3.stderr);
    assert.match(r3.stdout, /\(0 applied\)/);
  } finally {
    s.cleanup();
  }
});

test('migrate --database-url sqlite:PATH does not create ./var as a side effect', async () => {
  const cwd = mkdtempSync(join(tmpdir(), 'ap-cwd-'));
  try {
    const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AP_')));
    const r = spawnSync(BIN, ['migrate', '--database-url', `sqlite:${join(cwd, 'elsewhere.db')}`], { cwd, env: base, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /schema at version \d+/);
    assert.deepEqual(readdirSync(cwd).filter((f) => !f.startsWith('elsewhere.db')), []);
  } finally {
    rmSync(cwd, { recursive: true, force: true });
  }
});

test('an older binary refuses a newer schema: migrate, serve, audit verify, admin purge', async () => {
  const s = freshStore();
  try {
    assert.equal((await cli(['migrate', ...s.args])).code, 0);
    s.sqlExec("INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'from the future', '2099-01-01T00:00:00.000Z')");
    const newer = /schema is newer than this binary/;
    const m = await cli(['migrate', ...s.args]);
    assert.equal(m.code, 1, m.stdout + m.stderr);
    assert.match(m.stderr, newer);
    assert.match(m.stderr, /9999/);
    assert.match(m.stderr, /hint: .*newer agentprov/);
    const sv = await cli(['serve', '--listen', '127.0.0.1:0', ...s.args]);
    assert.notEqual(sv.code, 0, 'serve started on a newer schema');
    assert.equal(sv.signal, null);
    assert.match(sv.stderr, newer);
    assert.doesNotMatch(sv.stderr, /"msg":"ready"/);
    const v = await cli(['audit', 'verify', '--database-url', s.url]);
    assert.equal(v.code, 3, v.stderr);
    assert.match(v.stderr, newer);
    const p = await cli(['admin', 'purge', ...s.args]);
    assert.equal(p.code, 1, p.stderr);
    assert.match(p.stderr, newer);
    // nothing was changed by the refused commands
    assert.equal(s.sqlExec('SELECT MAX(version) FROM schema_migrations').trim(), '9999');
  } finally {
    s.cleanup();
  }
});

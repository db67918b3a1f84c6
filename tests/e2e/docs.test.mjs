// The documentation against the binary it documents:
// - docs/permissions.md holds exactly `agentprov admin permissions` between
//   its markers;
// - docs/operations.md names every option of `agentprov serve --help` with
//   its environment variable;
// - the hash chain as docs/operations.md defines it reproduces the hashes
//   of a real server's audit entries.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer, tenantWithKeys } from './lib/server.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = resolve(ROOT, process.env.AP_BIN || 'agentprov');
const doc = (name) => readFileSync(resolve(ROOT, 'docs', name), 'utf8');
const run = (...args) => execFileSync(BIN, args, { encoding: 'utf8' });

const BEGIN = '<!-- matrix:begin -->\n';
const END = '<!-- matrix:end -->';

test('docs/permissions.md holds exactly the output of `agentprov admin permissions`', () => {
  const md = doc('permissions.md');
  const b = md.indexOf(BEGIN);
  const e = md.indexOf(END);
  assert.ok(b >= 0 && e > b, `docs/permissions.md needs the lines ${BEGIN.trim()} and ${END}`);
  assert.equal(md.indexOf(BEGIN, b + 1), -1, 'the begin marker appears twice');
  const block = md.slice(b + BEGIN.length, e);
  const matrix = run('admin', 'permissions');
  assert.equal(block, matrix,
    'docs/permissions.md is out of date: put the output of `agentprov admin permissions` between the markers');
});

test('docs/operations.md names every serve option with its environment variable', () => {
  const help = run('serve', '--help');
  const opts = [...help.matchAll(/^\s+--([a-z-]+)(?: VALUE)?\s.*\n\s+env (AP_[A-Z_]+),/gm)]
    .map((m) => ({ flag: `--${m[1]}`, env: m[2] }));
  assert.ok(opts.length >= 8, `could not read the options from serve --help:\n${help}`);
  const md = doc('operations.md');
  const missing = [];
  for (const { flag, env } of opts) {
    const row = md.split('\n').find((l) => l.startsWith(`| \`${flag}\` |`));
    if (!row) missing.push(`${flag}: no table row`);
    else if (!row.includes(`\`${env}\``)) missing.push(`${flag}: row does not name ${env}`);
  }
  assert.deepEqual(missing, []);
});

// JSON with object keys sorted at every level, no whitespace: how the
// server stores `changes`.
function sortedJson(v) {
  if (Array.isArray(v)) return `[${v.map(sortedJson).join(',')}]`;
  if (v && typeof v === 'object')
    return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${sortedJson(v[k])}`).join(',')}}`;
  return JSON.stringify(v);
}

// The canonical JSON of an entry, as docs/operations.md defines it.
function canonical(entry) {
  const o = {};
  for (const k of Object.keys(entry).sort()) {
    if (k === 'prev_hash' || k === 'hash') continue;
    o[k] = k === 'changes' && entry.changes !== null ? sortedJson(entry.changes) : entry[k];
  }
  return JSON.stringify(o);
}

test('the hash chain as docs/operations.md defines it reproduces the server\'s hashes', async () => {
  const srv = await startServer();
  try {
    const t = await tenantWithKeys(srv, 'Docs Chain Ltd');
    const admin = t.keys.tenant_admin;
    const u = await srv.request('POST', '/api/v1/users', { key: admin, body: { email: 'chain@docs.example', role: 'viewer' } });
    assert.equal(u.status, 201, u.text);
    await srv.request('PATCH', `/api/v1/users/${u.body.id}`, { key: admin, body: { display_name: 'Chain – ünïcode' } });
    await srv.request('GET', '/api/v1/tenants', { key: t.keys.viewer }); // a denial is chained too
    await srv.request('POST', `/api/v1/tenants/${t.id}:suspend`);
    await srv.request('POST', `/api/v1/tenants/${t.id}:resume`);
    const res = await srv.request('GET', `/api/v1/tenants/${t.id}/audit?limit=500`);
    assert.equal(res.status, 200, res.text);
    const entries = res.body.data;
    assert.ok(entries.length >= 10, `expected a chain of at least 10 entries, got ${entries.length}`);
    assert.ok(entries.some((e) => e.action === 'auth.denied'));
    let prev = '0'.repeat(64);
    entries.forEach((e, i) => {
      assert.equal(e.seq, i + 1, 'seq runs 1, 2, 3 … without gaps');
      assert.equal(e.prev_hash, prev, `prev_hash of seq ${e.seq}`);
      const hash = createHash('sha256').update(prev + canonical(e), 'utf8').digest('hex');
      assert.equal(hash, e.hash, `hash of seq ${e.seq} (${e.action}); canonical: ${canonical(e)}`);
      prev = e.hash;
    });
  } finally {
    await srv.stop();
  }
});

// The LLM catalog through the REST API and the CLI: listing with each
// filter and paging, the ?id= lookup, platform administration with its
// audit entries, who may do what, and tenants' private providers (each
// tenant sees only its own; another tenant's answers 404). Also checks that
// the committed seed migration is what scripts/catalog-seed.sh generates.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer, tenantWithKeys, BIN } from './lib/server.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

let srv;
let acme;
let globex;
before(async () => {
  srv = await startServer();
  acme = await tenantWithKeys(srv, 'Catalog Acme');
  globex = await tenantWithKeys(srv, 'Catalog Globex');
});
after(async () => { await srv?.stop(); });

const enc = encodeURIComponent;

async function models(query, key = acme.keys.viewer) {
  const r = await srv.request('GET', `/api/v1/llm/models${query ? `?${query}` : ''}`, { key });
  assert.equal(r.status, 200, `GET /api/v1/llm/models?${query}: ${r.text}`);
  return r.body;
}

async function allModels(query, key) {
  const out = [];
  let cursor = null;
  for (let pages = 0; pages < 100; pages++) {
    const q = [query, 'limit=500', cursor && `cursor=${enc(cursor)}`].filter(Boolean).join('&');
    const page = await models(q, key);
    out.push(...page.data);
    cursor = page.next_cursor;
    if (!cursor) return out;
  }
  throw new Error('paging did not end');
}

test('the seed migration is what scripts/catalog-seed.sh generates', { skip: !!process.env.AP_TEST_EXTERNAL_URL }, () => {
  execFileSync('bash', [resolve(ROOT, 'scripts/catalog-seed.sh'), '--check'], { stdio: 'pipe' });
});

test('every role lists providers and models: at least 20 and 60', async () => {
  for (const role of ['viewer', 'auditor', 'operator', 'project_admin', 'tenant_admin']) {
    const p = await srv.request('GET', '/api/v1/llm/providers?limit=500', { key: acme.keys[role] });
    assert.equal(p.status, 200, p.text);
    assert.ok(p.body.data.length >= 20, `${role}: ${p.body.data.length} providers`);
  }
  const providers = (await srv.request('GET', '/api/v1/llm/providers?limit=500', { key: acme.keys.viewer })).body.data;
  const byId = Object.fromEntries(providers.map((p) => [p.id, p]));
  assert.equal(byId.openai.base_url, 'https://api.openai.com/v1');
  assert.equal(byId.anthropic.wire_protocol, 'anthropic');
  assert.equal(byId.google.wire_protocol, 'gemini');
  assert.equal(byId.builtin.base_url, null);
  assert.equal(byId.bedrock, undefined, 'inactive providers are not listed by default');
  for (const p of providers) {
    assert.equal(p.active, true);
    assert.ok(!('api_key' in p) && !('key' in p), 'a provider never carries a key');
  }
  const all = await allModels('', acme.keys.viewer);
  assert.ok(all.length >= 60, `${all.length} models`);
  const mini = all.find((m) => m.id === 'builtin/agentprov-mini');
  assert.equal(mini.priced, true);
  assert.equal(mini.input_usd_per_mtok, 0);
  const gpt4o = all.find((m) => m.id === 'openai/gpt-4o');
  assert.equal(gpt4o.input_usd_per_mtok, 2.5);
  assert.equal(gpt4o.output_usd_per_mtok, 10);
  assert.equal(gpt4o.context_window, 128000);
  assert.deepEqual([gpt4o.speed_tier, gpt4o.quality_tier, gpt4o.size_category], ['standard', 'best', 'large']);
});

test('each filter narrows the list, and filters combine', async () => {
  const all = await allModels('', acme.keys.viewer);
  const groq = await allModels('provider=groq');
  assert.ok(groq.length >= 5 && groq.every((m) => m.provider_id === 'groq'));
  const tools = await allModels('capability=tools');
  assert.ok(tools.length > 0 && tools.length < all.length && tools.every((m) => m.supports_tools));
  const tv = await allModels(`capability=${enc('tools,vision')}`);
  assert.ok(tv.length > 0 && tv.every((m) => m.supports_tools && m.supports_vision));
  const reasoning = await allModels('capability=reasoning');
  assert.ok(reasoning.length > 0 && reasoning.every((m) => m.supports_reasoning));
  const emb = await allModels('capability=embedding');
  assert.ok(emb.length >= 5 && emb.every((m) => m.mode === 'embedding'));
  const edge = await allModels('capability=edge');
  assert.ok(edge.length > 0 && edge.every((m) => m.edge_optimized));
  const best = await allModels('tier=best');
  assert.ok(best.length > 0 && best.every((m) => m.quality_tier === 'best'));
  const fast = await allModels('tier=fast');
  assert.ok(fast.length > 0 && fast.every((m) => m.speed_tier === 'fast'));
  const xl = await allModels('tier=xl');
  assert.ok(xl.length > 0 && xl.every((m) => m.size_category === 'xl'));
  const cheap = await allModels('max_price=0.5');
  assert.ok(cheap.length > 0 && cheap.length < all.length);
  assert.ok(cheap.every((m) => m.priced && m.input_usd_per_mtok <= 0.5 && m.output_usd_per_mtok <= 0.5));
  const combo = await allModels(`provider=openai&capability=tools&tier=${enc('basic,fast')}&max_price=1`);
  assert.ok(combo.length > 0);
  for (const m of combo) {
    assert.equal(m.provider_id, 'openai');
    assert.ok(m.supports_tools && m.quality_tier === 'basic' && m.speed_tier === 'fast');
    assert.ok(m.output_usd_per_mtok <= 1);
  }
  for (const bad of ['tier=huge', 'capability=flying', `capability=${enc('tools,')}`, 'max_price=cheap', 'max_price=-1', 'include_inactive=yes']) {
    const r = await srv.request('GET', `/api/v1/llm/models?${bad}`, { key: acme.keys.viewer });
    assert.equal(r.status, 400, `${bad}: ${r.text}`);
    assert.equal(r.body.type, 'urn:agentprov:problem:invalid-parameter');
  }
});

test('paging walks every model once, in order', async () => {
  const all = await allModels('', acme.keys.viewer);
  const seen = [];
  let cursor = null;
  let pages = 0;
  do {
    const page = await models(`limit=9${cursor ? `&cursor=${enc(cursor)}` : ''}`);
    assert.ok(page.data.length <= 9);
    seen.push(...page.data.map((m) => m.id));
    cursor = page.next_cursor;
    pages++;
  } while (cursor && pages < 100);
  assert.deepEqual(seen, all.map((m) => m.id));
  assert.ok(pages >= Math.floor(all.length / 9));
  const p = await srv.request('GET', '/api/v1/llm/providers?limit=4', { key: acme.keys.viewer });
  assert.equal(p.body.data.length, 4);
  const p2 = await srv.request('GET', `/api/v1/llm/providers?limit=4&cursor=${enc(p.body.next_cursor)}`, { key: acme.keys.viewer });
  const first = new Set(p.body.data.map((x) => x.id));
  assert.ok(p2.body.data.length > 0 && p2.body.data.every((x) => !first.has(x.id)));
});

test('?id= looks one model up by provider/model or a unique bare id', async () => {
  const full = await models(`id=${enc('openai/gpt-4o')}`);
  assert.equal(full.data.length, 1);
  assert.equal(full.data[0].id, 'openai/gpt-4o');
  const bare = await models('id=gpt-4o');
  assert.deepEqual(bare.data, full.data);
  const nested = await models(`id=${enc('together/meta-llama/Llama-3.3-70B-Instruct-Turbo')}`);
  assert.equal(nested.data[0].model_id, 'meta-llama/Llama-3.3-70B-Instruct-Turbo');
  const amb = await srv.request('GET', '/api/v1/llm/models?id=gpt-oss-120b', { key: acme.keys.viewer });
  assert.equal(amb.status, 400);
  assert.equal(amb.body.type, 'urn:agentprov:problem:ambiguous-model');
  assert.match(amb.body.detail, /cerebras\/gpt-oss-120b/);
  assert.match(amb.body.detail, /sambanova\/gpt-oss-120b/);
  const none = await srv.request('GET', '/api/v1/llm/models?id=no-such-model', { key: acme.keys.viewer });
  assert.equal(none.status, 404);
  assert.match(none.body.detail, /GET \/api\/v1\/llm\/models/);
  const mixed = await srv.request('GET', '/api/v1/llm/models?id=gpt-4o&provider=openai', { key: acme.keys.viewer });
  assert.equal(mixed.status, 400);
});

test('a platform admin adds, reprices and deactivates a model; each change is audited', async () => {
  const c = await srv.request('POST', '/api/v1/llm/models', {
    body: { provider_id: 'openai', model_id: 'gpt-e2e-preview', display_name: 'GPT e2e preview', context_window: 200000, supports_tools: true },
    headers: { 'idempotency-key': 'catalog-e2e-create' },
  });
  assert.equal(c.status, 201, c.text);
  assert.equal(c.body.id, 'openai/gpt-e2e-preview');
  assert.equal(c.body.priced, false, 'no price given: unpriced, not free');
  assert.equal(c.body.input_usd_per_mtok, null);
  assert.equal(c.body.output_usd_per_mtok, null);
  // visible as unpriced to tenants
  const seen = await models(`id=${enc('openai/gpt-e2e-preview')}`);
  assert.equal(seen.data[0].priced, false);
  const again = await srv.request('POST', '/api/v1/llm/models', { body: { provider_id: 'openai', model_id: 'gpt-e2e-preview' } });
  assert.equal(again.status, 409);
  const half = await srv.request('PATCH', '/api/v1/llm/models', { body: { id: 'gpt-e2e-preview', input_usd_per_mtok: 1 } });
  assert.equal(half.status, 400);
  const u = await srv.request('PATCH', '/api/v1/llm/models', {
    body: { id: 'gpt-e2e-preview', input_usd_per_mtok: 1.25, output_usd_per_mtok: 10 },
  });
  assert.equal(u.status, 200, u.text);
  assert.equal(u.body.priced, true);
  assert.equal(u.body.output_usd_per_mtok, 10);
  const typo = await srv.request('PATCH', '/api/v1/llm/models', { body: { id: 'gpt-e2e-preview', input_usd_per_mtk: 1 } });
  assert.equal(typo.status, 400);
  assert.equal(typo.body.type, 'urn:agentprov:problem:unknown-field');
  const d = await srv.request('POST', '/api/v1/llm/models:deactivate', { body: { id: 'openai/gpt-e2e-preview' } });
  assert.equal(d.status, 200, d.text);
  assert.equal(d.body.active, false);
  const d2 = await srv.request('POST', '/api/v1/llm/models:deactivate', { body: { id: 'openai/gpt-e2e-preview' } });
  assert.equal(d2.status, 409);
  // gone from tenants' lists, still there for admins
  assert.ok(!(await allModels('provider=openai')).some((m) => m.id === 'openai/gpt-e2e-preview'));
  const inactive = await allModels('provider=openai&include_inactive=true', srv.adminKey);
  assert.equal(inactive.find((m) => m.id === 'openai/gpt-e2e-preview').active, false);
  const bedrock = await srv.request('GET', '/api/v1/llm/providers?include_inactive=true&limit=500');
  assert.equal(bedrock.body.data.find((p) => p.id === 'bedrock').active, false);
  // reactivate
  const re = await srv.request('PATCH', '/api/v1/llm/models', { body: { id: 'openai/gpt-e2e-preview', active: true } });
  assert.equal(re.body.active, true);

  const audit = await srv.request('GET', '/api/v1/audit?action=llm.model.*&limit=500');
  assert.equal(audit.status, 200, audit.text);
  const mine = audit.body.data.filter((e) => e.resource_id === 'openai/gpt-e2e-preview');
  assert.deepEqual(mine.map((e) => e.action), ['llm.model.create', 'llm.model.update', 'llm.model.deactivate', 'llm.model.update']);
  for (const e of mine) {
    assert.equal(e.tenant_id, '00000000-0000-0000-0000-000000000000');
    assert.equal(e.resource_type, 'llm_model');
    assert.equal(e.actor_role, 'platform_admin');
  }
  assert.deepEqual(mine[1].changes.output_usd_per_mtok, { from: null, to: 10 });
  const v = await srv.request('GET', '/api/v1/audit:verify');
  assert.equal(v.body.ok, true);
});

test('only platform admins change the catalog or see inactive rows', async () => {
  for (const role of ['tenant_admin', 'viewer', 'operator']) {
    const key = acme.keys[role];
    const c = await srv.request('POST', '/api/v1/llm/models', { key, body: { provider_id: 'openai', model_id: 'nope' } });
    assert.equal(c.status, 403, `${role} create: ${c.text}`);
    const u = await srv.request('PATCH', '/api/v1/llm/models', { key, body: { id: 'openai/gpt-4o', input_usd_per_mtok: 0, output_usd_per_mtok: 0 } });
    assert.equal(u.status, 403);
    const d = await srv.request('POST', '/api/v1/llm/models:deactivate', { key, body: { id: 'openai/gpt-4o' } });
    assert.equal(d.status, 403);
    const i = await srv.request('GET', '/api/v1/llm/models?include_inactive=true', { key });
    assert.equal(i.status, 403);
  }
  const still = await models(`id=${enc('openai/gpt-4o')}`);
  assert.equal(still.data[0].input_usd_per_mtok, 2.5);
  assert.equal(still.data[0].active, true);
});

test('a tenant registers its own endpoint; only that tenant sees it', async () => {
  const admin = acme.keys.tenant_admin;
  const c = await srv.request('POST', '/api/v1/llm/private-providers', {
    key: admin,
    body: {
      name: 'acme-vllm',
      base_url: 'http://10.1.2.3:8000/v1/',
      models: ['llama3.1-8b', { model_id: 'Qwen/Qwen3-32B', supports_tools: true, context_window: 32768 }],
    },
  });
  assert.equal(c.status, 201, c.text);
  const pid = c.body.id;
  assert.equal(c.body.private, true);
  assert.equal(c.body.tenant_id, acme.id);
  assert.equal(c.body.base_url, 'http://10.1.2.3:8000/v1');
  assert.equal(c.body.models.length, 2);
  assert.ok(c.body.models.every((m) => m.priced === false && m.tenant_id === acme.id));
  // canonical path, same tenant
  const c2 = await srv.request('POST', `/api/v1/tenants/${acme.id}/llm/providers`, {
    key: admin, body: { name: 'acme-ollama', base_url: 'http://127.0.0.1:11434/v1' },
  });
  assert.equal(c2.status, 201, c2.text);
  const dup = await srv.request('POST', '/api/v1/llm/private-providers', { key: admin, body: { name: 'acme-vllm', base_url: 'http://10.1.2.4/v1' } });
  assert.equal(dup.status, 409);
  // never a key, never credentials in the URL
  const withKey = await srv.request('POST', '/api/v1/llm/private-providers', { key: admin, body: { name: 'k', base_url: 'http://10.1.2.4/v1', api_key: 'sk-secret-value' } });
  assert.equal(withKey.status, 400);
  assert.ok(!withKey.text.includes('sk-secret-value'));
  const creds = await srv.request('POST', '/api/v1/llm/private-providers', { key: admin, body: { name: 'k', base_url: 'http://user:hunter2@10.1.2.4/v1' } });
  assert.equal(creds.status, 400);
  assert.ok(!creds.text.includes('hunter2'));
  // a viewer may read but not register
  const v = await srv.request('POST', '/api/v1/llm/private-providers', { key: acme.keys.viewer, body: { name: 'v', base_url: 'http://10.1.2.4/v1' } });
  assert.equal(v.status, 403);

  // Acme sees it in the catalog, by its short name too
  const list = await srv.request('GET', '/api/v1/llm/private-providers', { key: acme.keys.viewer });
  assert.deepEqual(list.body.data.map((p) => p.name).sort(), ['acme-ollama', 'acme-vllm']);
  const provs = (await srv.request('GET', '/api/v1/llm/providers?limit=500', { key: acme.keys.viewer })).body.data;
  assert.ok(provs.some((p) => p.id === pid && p.private));
  const byName = await models(`id=${enc('acme-vllm/Qwen/Qwen3-32B')}`);
  assert.equal(byName.data[0].id, `${pid}/Qwen/Qwen3-32B`);
  assert.equal(byName.data[0].supports_tools, true);
  const filtered = await allModels('provider=acme-vllm');
  assert.equal(filtered.length, 2);

  // Globex sees none of it
  const g = globex.keys.tenant_admin;
  const gl = await srv.request('GET', '/api/v1/llm/private-providers', { key: g });
  assert.deepEqual(gl.body.data, []);
  const gp = (await srv.request('GET', '/api/v1/llm/providers?limit=500', { key: g })).body.data;
  assert.ok(!gp.some((p) => p.private));
  assert.ok(!(await allModels('', g)).some((m) => m.tenant_id));
  const gm = await srv.request('GET', `/api/v1/llm/models?id=${enc(`${pid}/llama3.1-8b`)}`, { key: g });
  assert.equal(gm.status, 404);
  const gn = await srv.request('GET', `/api/v1/llm/models?id=${enc('acme-vllm/llama3.1-8b')}`, { key: g });
  assert.equal(gn.status, 404);
  // ... and gets 404 on Acme's paths and provider, never 403
  for (const [method, path, body] of [
    ['GET', `/api/v1/tenants/${acme.id}/llm/providers`],
    ['POST', `/api/v1/tenants/${acme.id}/llm/providers`, { name: 'x', base_url: 'http://10.0.0.1/v1' }],
    ['DELETE', `/api/v1/tenants/${acme.id}/llm/providers/${pid}`],
    ['DELETE', `/api/v1/llm/private-providers/${pid}`],
  ]) {
    const r = await srv.request(method, path, { key: g, body });
    assert.equal(r.status, 404, `${method} ${path}: ${r.text}`);
  }
  // Globex may use the same name for its own
  const gc = await srv.request('POST', '/api/v1/llm/private-providers', { key: g, body: { name: 'acme-vllm', base_url: 'http://10.9.9.9/v1', models: ['m'] } });
  assert.equal(gc.status, 201, gc.text);

  // the audit entries are in each tenant's own chain
  const aa = await srv.request('GET', '/api/v1/audit?action=llm.private_provider.*', { key: admin });
  assert.deepEqual(aa.body.data.map((e) => e.action), ['llm.private_provider.create', 'llm.private_provider.create']);
  assert.deepEqual(aa.body.data[0].changes.models, ['llama3.1-8b', 'Qwen/Qwen3-32B']);

  // Acme deletes its provider; its models go with it
  const del = await srv.request('DELETE', `/api/v1/tenants/${acme.id}/llm/providers/${pid}`, { key: admin });
  assert.equal(del.status, 204, del.text);
  const gone = await srv.request('GET', `/api/v1/llm/models?id=${enc('acme-vllm/Qwen/Qwen3-32B')}`, { key: admin });
  assert.equal(gone.status, 404);
  const del2 = await srv.request('DELETE', `/api/v1/llm/private-providers/${pid}`, { key: admin });
  assert.equal(del2.status, 404);
});

test('agentprov llm models|providers print the catalog', async () => {
  const env = { ...process.env, AP_URL: srv.url, AP_API_KEY: acme.keys.viewer };
  const run = (...args) => execFileSync(BIN, ['llm', ...args], { env, encoding: 'utf8' });
  const json = JSON.parse(run('models', '--provider', 'groq', '--capability', 'tools', '-o', 'json'));
  assert.ok(json.data.length >= 5 && json.data.every((m) => m.provider_id === 'groq' && m.supports_tools));
  const table = run('models', '--tier', 'best', '--max-price', '10');
  assert.match(table.split('\n')[0], /^ID\s+MODE\s+CONTEXT\s+IN_USD_MTOK\s+OUT_USD_MTOK/);
  const one = JSON.parse(run('models', '--id', 'together/meta-llama/Llama-3.3-70B-Instruct-Turbo', '-o', 'json'));
  assert.equal(one.data[0].provider_id, 'together');
  const providers = run('providers', '--limit', '500');
  assert.match(providers, /^openai\s+OpenAI\s+openai\s+https:\/\/api\.openai\.com\/v1/m);
  assert.throws(() => execFileSync(BIN, ['llm', 'models', '--tier', 'huge'], { env, stdio: 'pipe' }), (e) => e.status === 1);
  assert.throws(() => execFileSync(BIN, ['llm', 'models', '--bogus', 'x'], { env, stdio: 'pipe' }), (e) => e.status === 2);
});

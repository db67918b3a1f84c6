// docs/api/openapi.yaml against the real binary:
// (a) the spec and the route table (`agentprov admin routes`) list the same
//     method + path pairs, both ways;
// (b) every operation's description names the route's permission, public
//     routes need no credential and every POST takes Idempotency-Key;
// (c) real responses of every GET route (and of a few writes and errors)
//     validate against the response schemas of the spec.
// The validator below implements the part of JSON Schema the spec uses:
// $ref, type (incl. type arrays for null), enum, const, required,
// properties, additionalProperties, items, oneOf/anyOf/allOf, pattern,
// minLength/maxLength, minimum/maximum.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { startServer, tenantWithKeys } from './lib/server.mjs';
import { researchTeam, waitTask } from './lib/team.mjs';
import { makeAgent } from './lib/agents.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = resolve(ROOT, process.env.AP_BIN || 'agentprov');
const SPEC = YAML.parse(readFileSync(resolve(ROOT, 'docs/api/openapi.yaml'), 'utf8'));
const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace'];

function routeTable() {
  const out = execFileSync(BIN, ['admin', 'routes'], { encoding: 'utf8' });
  return out.split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

function specOperations(spec) {
  const ops = [];
  for (const [path, item] of Object.entries(spec.paths || {}))
    for (const m of METHODS)
      if (item[m]) ops.push({ method: m.toUpperCase(), path, op: item[m], item });
  return ops;
}

const key = (method, path) => `${method} ${path}`;

// ---- a small JSON Schema validator -------------------------------------

function deref(root, node) {
  const seen = new Set();
  while (node && typeof node === 'object' && typeof node.$ref === 'string') {
    if (seen.has(node.$ref)) throw new Error(`$ref cycle at ${node.$ref}`);
    seen.add(node.$ref);
    if (!node.$ref.startsWith('#/')) throw new Error(`only local $ref supported: ${node.$ref}`);
    let target = root;
    for (const part of node.$ref.slice(2).split('/'))
      target = target?.[part.replace(/~1/g, '/').replace(/~0/g, '~')];
    if (target === undefined) throw new Error(`unresolved $ref ${node.$ref}`);
    node = target;
  }
  return node;
}

function typeOf(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v; // string, boolean, object
}

function typeMatches(want, v) {
  const t = typeOf(v);
  return t === want || (want === 'number' && t === 'integer');
}

// Returns a list of error strings; empty when value is valid.
export function validate(root, schema, value, at = '$', errors = []) {
  const s = deref(root, schema);
  if (s === true || s === undefined) return errors;
  if (s === false) { errors.push(`${at}: no value is allowed here`); return errors; }
  if (s.type !== undefined) {
    const types = Array.isArray(s.type) ? s.type : [s.type];
    if (!types.some((t) => typeMatches(t, value))) {
      errors.push(`${at}: expected ${types.join(' or ')}, got ${typeOf(value)}`);
      return errors;
    }
  }
  if (s.enum && !s.enum.some((e) => e === value))
    errors.push(`${at}: ${JSON.stringify(value)} is not one of ${JSON.stringify(s.enum)}`);
  if ('const' in s && s.const !== value)
    errors.push(`${at}: ${JSON.stringify(value)} is not ${JSON.stringify(s.const)}`);
  if (typeof value === 'string') {
    if (s.pattern && !new RegExp(s.pattern, 'u').test(value))
      errors.push(`${at}: "${value}" does not match ${s.pattern}`);
    const n = [...value].length;
    if (s.minLength !== undefined && n < s.minLength) errors.push(`${at}: shorter than ${s.minLength}`);
    if (s.maxLength !== undefined && n > s.maxLength) errors.push(`${at}: longer than ${s.maxLength}`);
  }
  if (typeof value === 'number') {
    if (s.minimum !== undefined && value < s.minimum) errors.push(`${at}: ${value} < ${s.minimum}`);
    if (s.maximum !== undefined && value > s.maximum) errors.push(`${at}: ${value} > ${s.maximum}`);
  }
  if (typeOf(value) === 'object') {
    const props = s.properties || {};
    for (const r of s.required || [])
      if (!(r in value)) errors.push(`${at}: missing required property "${r}"`);
    for (const [k, v] of Object.entries(value)) {
      if (k in props) validate(root, props[k], v, `${at}.${k}`, errors);
      else if (s.additionalProperties === false) errors.push(`${at}: unexpected property "${k}"`);
      else if (s.additionalProperties && typeof s.additionalProperties === 'object')
        validate(root, s.additionalProperties, v, `${at}.${k}`, errors);
    }
  }
  if (Array.isArray(value) && s.items)
    value.forEach((v, i) => validate(root, s.items, v, `${at}[${i}]`, errors));
  if (s.allOf) for (const sub of s.allOf) validate(root, sub, value, at, errors);
  if (s.anyOf && !s.anyOf.some((sub) => validate(root, sub, value, at).length === 0))
    errors.push(`${at}: matches none of anyOf`);
  if (s.oneOf) {
    const n = s.oneOf.filter((sub) => validate(root, sub, value, at).length === 0).length;
    if (n !== 1) errors.push(`${at}: matches ${n} of oneOf, not exactly 1`);
  }
  return errors;
}

// The schema the spec gives for (method, path template, status, media type).
function responseSchema(method, path, status, mediaType) {
  const op = SPEC.paths?.[path]?.[method.toLowerCase()];
  assert.ok(op, `no operation ${method} ${path} in the spec`);
  const resp = deref(SPEC, op.responses?.[String(status)]);
  assert.ok(resp, `${method} ${path}: the spec has no ${status} response`);
  const media = resp.content?.[mediaType];
  assert.ok(media, `${method} ${path} ${status}: the spec has no ${mediaType} content`);
  return media.schema;
}

function assertValid(schema, body, what) {
  const errors = validate(SPEC, schema, body);
  assert.deepEqual(errors, [], `${what} does not match the spec:\n${errors.join('\n')}\n` +
    `body: ${JSON.stringify(body).slice(0, 2000)}`);
}

function mediaType(res) {
  return (res.headers.get('content-type') || '').split(';')[0].trim();
}

// Checks a live response against the spec's schema for its status.
function assertResponse(res, method, path) {
  const mt = mediaType(res);
  const schema = responseSchema(method, path, res.status, mt);
  assertValid(schema, res.body, `${method} ${path} → ${res.status} ${mt}`);
}

// ---- (a) and (b): the route table and the spec ------------------------

test('the spec and the route table list the same (method, path) pairs', () => {
  const routes = routeTable();
  assert.ok(routes.length > 0, 'admin routes printed nothing');
  const fromRoutes = new Set(routes.map((r) => key(r.method, r.path)));
  const fromSpec = new Set(specOperations(SPEC).map((o) => key(o.method, o.path)));
  const missingInSpec = [...fromRoutes].filter((k) => !fromSpec.has(k));
  const missingInRoutes = [...fromSpec].filter((k) => !fromRoutes.has(k));
  assert.deepEqual(missingInSpec, [],
    `in the route table (src/api/routes.c) but not in docs/api/openapi.yaml:\n  ${missingInSpec.join('\n  ')}`);
  assert.deepEqual(missingInRoutes, [],
    `in docs/api/openapi.yaml but not in the route table (src/api/routes.c):\n  ${missingInRoutes.join('\n  ')}`);
  assert.equal(fromRoutes.size, routes.length, 'the route table lists a (method, path) twice');
});

test('each operation names its permission; public routes need no credential; POSTs take Idempotency-Key', () => {
  const ops = new Map(specOperations(SPEC).map((o) => [key(o.method, o.path), o]));
  const problems = [];
  for (const r of routeTable()) {
    const o = ops.get(key(r.method, r.path));
    if (!o) continue; // reported by the test above
    const where = `${r.method} ${r.path}`;
    if (!(o.op.description || '').includes(r.permission))
      problems.push(`${where}: description does not mention permission ${r.permission}`);
    if (!o.op.operationId) problems.push(`${where}: no operationId`);
    const publicOp = Array.isArray(o.op.security) && o.op.security.length === 0;
    if ((r.scope === 'public') !== publicOp)
      problems.push(`${where}: scope ${r.scope} but security is ${JSON.stringify(o.op.security)}`);
    if (r.method === 'POST' && r.errors === 'problem') { // the LLM gateway does not replay model calls
      const params = [...(o.item.parameters || []), ...(o.op.parameters || [])].map((p) => deref(SPEC, p));
      if (!params.some((p) => p.in === 'header' && p.name === 'Idempotency-Key'))
        problems.push(`${where}: no Idempotency-Key header parameter`);
    }
    if (r.scope !== 'public' && !(o.op.responses?.['401']))
      problems.push(`${where}: no 401 response`);
  }
  assert.deepEqual(problems, []);
});

test('the validator rejects bodies that do not match', () => {
  const tenant = {
    id: '01a1fdbf-3d89-76ec-bead-48a9d4821d0f', name: 'Acme', slug: 'acme', plan: 'free',
    status: 'active', created_at: '2026-11-21T10:55:31.209Z', updated_at: '2026-11-21T10:55:31.209Z',
    suspended_at: null, deleted_at: null,
    entitlements: { max_agents: 10, max_agent_groups: 5, monthly_token_limit: 1000000, storage_limit_gb: 10,
      max_concurrent_tasks: 0, task_weight: 1 },
  };
  const page = { data: [tenant], next_cursor: null };
  const schema = { $ref: '#/components/schemas/TenantPage' };
  assert.deepEqual(validate(SPEC, schema, page), [], 'a correct page must pass');
  assert.deepEqual(validate(SPEC, schema, { ...page, next_cursor: tenant.id }), []);
  const bad = (body, re) => {
    const errors = validate(SPEC, schema, body);
    assert.ok(errors.some((e) => re.test(e)), `expected an error matching ${re}, got ${JSON.stringify(errors)}`);
  };
  bad({ ...page, next_cursor: 5 }, /next_cursor: expected string or null, got integer/);
  bad({ data: [{ ...tenant, extra: 1 }], next_cursor: null }, /unexpected property "extra"/);
  bad({ data: [{ ...tenant, status: 'paused' }], next_cursor: null }, /\$\.data\[0\]\.status: "paused" is not one of/);
  const { entitlements, ...noEnt } = tenant;
  assert.ok(entitlements);
  bad({ data: [noEnt], next_cursor: null }, /missing required property "entitlements"/);
  bad({ data: [{ ...tenant, entitlements: { ...tenant.entitlements, max_agents: '10' } }], next_cursor: null },
    /max_agents: expected integer, got string/);
  bad({ data: tenant, next_cursor: null }, /\$\.data: expected array, got object/);
  bad({ next_cursor: null }, /missing required property "data"/);
});

// ---- (c): real responses ---------------------------------------------

let srv;
let t;
let ids;
before(async () => {
  srv = await startServer();
  t = await tenantWithKeys(srv, 'OpenAPI Check Co');
  const u = await srv.request('POST', '/api/v1/users', {
    key: t.keys.tenant_admin, body: { email: 'spec@openapi.example', role: 'operator' },
  });
  assert.equal(u.status, 201, u.text);
  assertResponse(u, 'POST', '/api/v1/users');
  const keys = await srv.request('GET', '/api/v1/api-keys', { key: t.keys.tenant_admin });
  assert.equal(keys.status, 200, keys.text);
  const cfg = await srv.request('POST', '/api/v1/llm/configs', {
    key: t.keys.tenant_admin, body: { name: 'spec-config', primary_model: 'builtin/agentprov-mini', temperature: 0.5 },
  });
  assert.equal(cfg.status, 201, cfg.text);
  assertResponse(cfg, 'POST', '/api/v1/llm/configs');
  const ms = await srv.request('POST', '/api/v1/mcp-servers', {
    key: t.keys.tenant_admin, body: { name: 'spec-mcp', url: 'http://127.0.0.1:9/mcp', auth_header: 'Bearer x' },
  });
  assert.equal(ms.status, 201, ms.text);
  assertResponse(ms, 'POST', '/api/v1/mcp-servers');
  const team = researchTeam(srv, t.id);
  const task = await srv.request('POST', '/api/v1/tasks', {
    key: t.keys.operator, body: { group_id: team.group, objective: 'Research the EV battery market and write a one-page brief' },
  });
  assert.equal(task.status, 201, task.text);
  assertResponse(task, 'POST', '/api/v1/tasks');
  await waitTask(srv, `/api/v1/tasks/${task.body.id}`, undefined, 20000, t.keys.viewer);
  const ag = await srv.request('POST', '/api/v1/agents', {
    key: t.keys.tenant_admin,
    body: { name: 'Spec Agent', role: 'Researcher', capabilities: ['research'], tools: ['recall', 'mcp:files/read'],
      memory_config: { embedder: 'builtin', ttl_days: 30 } },
  });
  assert.equal(ag.status, 201, ag.text);
  assertResponse(ag, 'POST', '/api/v1/agents');
  const dep = await srv.request('POST', `/api/v1/agents/${ag.body.id}:validate`, { key: t.keys.tenant_admin });
  assertResponse(dep, 'POST', '/api/v1/agents/{agent_id}:validate');
  const ag2 = await srv.request('POST', '/api/v1/agents', { key: t.keys.tenant_admin, body: { name: 'Spec Boss', role: 'Manager' } });
  assert.equal(ag2.status, 201, ag2.text);
  const grp = await srv.request('POST', '/api/v1/agent-groups', {
    key: t.keys.tenant_admin,
    body: { name: 'Spec Team', goal: 'check the spec', members: [ag.body.id, ag2.body.id], escalation_rules: { min_confidence: 0.5, escalate_to: 'human' } },
  });
  assert.equal(grp.status, 201, grp.text);
  assertResponse(grp, 'POST', '/api/v1/agent-groups');
  const rel = await srv.request('POST', '/api/v1/agent-relationships', {
    key: t.keys.tenant_admin,
    body: { from_agent_id: ag2.body.id, to_agent_id: ag.body.id, relationship_type: 'supervises', group_id: grp.body.id, trust_level: 0.8 },
  });
  assert.equal(rel.status, 201, rel.text);
  assertResponse(rel, 'POST', '/api/v1/agent-relationships');
  const col = await srv.request('POST', '/api/v1/agent-relationships', {
    key: t.keys.tenant_admin, body: { from_agent_id: ag.body.id, to_agent_id: ag2.body.id, relationship_type: 'consults' },
  });
  assert.equal(col.status, 201, col.text);
  const sk = await srv.request('POST', `/api/v1/agents/${ag.body.id}/skills`, {
    key: t.keys.tenant_admin, body: { skill_name: 'research', proficiency: 0.6, examples: ['found three sources'] },
  });
  assert.equal(sk.status, 201, sk.text);
  assertResponse(sk, 'POST', '/api/v1/agents/{agent_id}/skills');
  ids = { tenant_id: t.id, user_id: u.body.id, key_id: keys.body.data[0].id, config_id: cfg.body.id,
    agent_id: ag.body.id, version: '1', group_id: grp.body.id, relationship_id: rel.body.id, skill_id: sk.body.id,
    task_id: task.body.id, server_id: ms.body.id };
  // the spec agent gets a memory, a hot context and knowledge, for the memory routes
  const m = await srv.request('POST', `/api/v1/tenants/${t.id}/agents/${ids.agent_id}/memory`, {
    key: t.keys.tenant_admin, body: { content: 'The spec agent likes YAML', memory_type: 'preference' },
  });
  assert.equal(m.status, 201, m.text);
  assertResponse(m, 'POST', '/api/v1/tenants/{tenant_id}/agents/{agent_id}/memory');
  ids.memory_id = m.body.id;
  ids.conversation_id = 'spec-conversation';
  const c = await srv.request('POST', `/api/v1/tenants/${t.id}/agents/${ids.agent_id}/context`, {
    key: t.keys.tenant_admin, body: { conversation_id: ids.conversation_id, content: 'hello' },
  });
  assertResponse(c, 'POST', '/api/v1/tenants/{tenant_id}/agents/{agent_id}/context');
  const e = await srv.request('POST', `/api/v1/tenants/${t.id}/knowledge/entities`, {
    key: t.keys.tenant_admin,
    body: { entity_type: 'format', name: 'YAML', attributes: { kind: 'text' },
      relations: [{ relation_type: 'related_to', to: { entity_type: 'format', name: 'JSON' } }] },
  });
  assert.equal(e.status, 201, e.text);
  assertResponse(e, 'POST', '/api/v1/tenants/{tenant_id}/knowledge/entities');
  ids.entity_id = e.body.id;
  for (const [path, body, template] of [
    [`/api/v1/tenants/${t.id}/agents/${ids.agent_id}/memory:recall`, { query: 'yaml' }, '/api/v1/tenants/{tenant_id}/agents/{agent_id}/memory:recall'],
    ['/api/v1/memory:consolidate', { agent_id: ids.agent_id, dry_run: true }, '/api/v1/memory:consolidate'],
    ['/api/v1/knowledge/relations', { from_entity_id: ids.entity_id, to: { entity_type: 'format', name: 'TOML' }, relation_type: 'related_to' }, '/api/v1/knowledge/relations'],
  ]) {
    const r = await srv.request('POST', path, { key: t.keys.tenant_admin, body });
    assert.ok(r.status < 300, `${path}: ${r.text}`);
    assertResponse(r, 'POST', template);
  }
});
after(async () => { await srv?.stop(); });

test('every GET route answers a body that matches the spec', async () => {
  const gets = routeTable().filter((r) => r.method === 'GET');
  assert.ok(gets.length >= 10);
  for (const r of gets) {
    const path = r.path.replace(/\{(\w+)\}/g, (_, name) => {
      assert.ok(ids[name], `no id to put in {${name}} of ${r.path}`);
      return ids[name];
    });
    // platform routes need the platform admin; tenant routes use the tenant's admin
    const k = r.scope === 'public' ? null : r.scope === 'platform' ? srv.adminKey : t.keys.tenant_admin;
    const res = await srv.request('GET', path, { key: k });
    assert.equal(res.status, 200, `GET ${path}: ${res.text}`);
    if (r.path === '/metrics') {
      assert.equal(mediaType(res), 'text/plain');
      responseSchema('GET', r.path, 200, 'text/plain');
      assert.match(res.text, /^agentprov_build_info\{version="[^"]*"\} 1$/m);
      continue;
    }
    assertResponse(res, 'GET', r.path);
  }
});

test('the platform admin\'s alias lists (platform tenant) match the spec', async () => {
  for (const path of ['/api/v1/users', '/api/v1/api-keys', '/api/v1/audit', '/api/v1/audit:verify']) {
    const res = await srv.request('GET', path);
    assert.equal(res.status, 200, `GET ${path}: ${res.text}`);
    assertResponse(res, 'GET', path);
  }
  const self = await srv.request('GET', '/api/v1/tenant');
  assert.equal(self.status, 404, 'the platform tenant is never returned, as the spec says');
  assertResponse(self, 'GET', '/api/v1/tenant');
});

test('filtered and paged lists match the spec', async () => {
  const cases = [
    ['/api/v1/tenants', '/api/v1/tenants?status=active&limit=1', srv.adminKey],
    ['/api/v1/tenants', '/api/v1/tenants?status=deleted', srv.adminKey],
    ['/api/v1/audit', '/api/v1/audit?action=api_key.*&limit=2', t.keys.tenant_admin],
    ['/api/v1/audit', `/api/v1/audit?resource_type=user&resource_id=${ids.user_id}`, t.keys.tenant_admin],
    ['/api/v1/audit', '/api/v1/audit?since=2000-01-01T00:00:00Z&until=2999-01-01T00:00:00Z', t.keys.tenant_admin],
    ['/api/v1/users', '/api/v1/users?limit=1', t.keys.tenant_admin],
  ];
  for (const [template, path, k] of cases) {
    const res = await srv.request('GET', path, { key: k });
    assert.equal(res.status, 200, `GET ${path}: ${res.text}`);
    assertResponse(res, 'GET', template);
  }
  const paged = await srv.request('GET', '/api/v1/audit?limit=1', { key: t.keys.tenant_admin });
  assert.equal(typeof paged.body.next_cursor, 'string', 'the tenant has more than one entry');
  const next = await srv.request('GET', `/api/v1/audit?limit=1&cursor=${paged.body.next_cursor}`, { key: t.keys.tenant_admin });
  assertResponse(next, 'GET', '/api/v1/audit');
  assert.equal(next.body.data[0].seq, paged.body.data[0].seq + 1);
});

test('writes and their idempotent replays match the spec', async () => {
  const c = await srv.request('POST', '/api/v1/tenants', { body: { name: 'Spec Writes', plan: 'team', max_agents: 3 } });
  assert.equal(c.status, 201, c.text);
  assertResponse(c, 'POST', '/api/v1/tenants');
  const tid = c.body.id;
  const p = await srv.request('PATCH', `/api/v1/tenants/${tid}`, { body: { storage_limit_gb: 20 } });
  assertResponse(p, 'PATCH', '/api/v1/tenants/{tenant_id}');
  const s = await srv.request('POST', `/api/v1/tenants/${tid}:suspend`);
  assertResponse(s, 'POST', '/api/v1/tenants/{tenant_id}:suspend');
  assert.equal(s.body.status, 'suspended');
  const body = { name: 'spec key', role: 'viewer', expires_at: null };
  const headers = { 'idempotency-key': 'openapi-spec-1' };
  const k1 = await srv.request('POST', `/api/v1/tenants/${t.id}/api-keys`, { key: t.keys.tenant_admin, body, headers });
  assert.equal(k1.status, 201, k1.text);
  assertResponse(k1, 'POST', '/api/v1/tenants/{tenant_id}/api-keys');
  assert.ok(k1.body.key);
  const k2 = await srv.request('POST', `/api/v1/tenants/${t.id}/api-keys`, { key: t.keys.tenant_admin, body, headers });
  assert.equal(k2.status, 201, k2.text);
  assert.equal(k2.headers.get('idempotent-replayed'), 'true');
  assertResponse(k2, 'POST', '/api/v1/tenants/{tenant_id}/api-keys');
  assert.equal(k2.body.key, undefined, 'a replay never carries the secret');
  const rv = await srv.request('POST', `/api/v1/api-keys/${k1.body.id}:revoke`, { key: t.keys.tenant_admin });
  assertResponse(rv, 'POST', '/api/v1/api-keys/{key_id}:revoke');
  const d = await srv.request('DELETE', `/api/v1/users/${ids.user_id}`, { key: t.keys.tenant_admin });
  assert.equal(d.status, 204);
  assert.equal(d.text, '');
});

test('problems match the Problem schema and the statuses the spec declares', async () => {
  const cases = [
    ['GET', '/api/v1/tenants', '/api/v1/tenants', { key: null }, 401],
    ['GET', '/api/v1/tenants', '/api/v1/tenants', { key: t.keys.viewer }, 403],
    ['GET', '/api/v1/tenants', '/api/v1/tenants?limit=0', {}, 400],
    ['GET', '/api/v1/users/{user_id}', `/api/v1/users/${ids.tenant_id}`, { key: t.keys.viewer }, 404],
    ['POST', '/api/v1/tenants', '/api/v1/tenants', { body: { nmae: 'typo' } }, 400],
    ['POST', '/api/v1/tenants', '/api/v1/tenants', { rawBody: 'name=x', headers: { 'content-type': 'text/plain' } }, 415],
    ['POST', '/api/v1/tenants/{tenant_id}:resume', `/api/v1/tenants/${t.id}:resume`, {}, 409],
  ];
  for (const [method, template, path, opts, status] of cases) {
    const res = await srv.request(method, path, opts);
    assert.equal(res.status, status, `${method} ${path}: ${res.text}`);
    assert.equal(mediaType(res), 'application/problem+json');
    assertResponse(res, method, template);
    assert.equal(res.body.request_id, res.headers.get('x-request-id'));
  }
  // 405 is answered for methods the spec does not declare, so it has no
  // operation to hang on: check the body against the Problem schema itself.
  const na = await srv.request('PUT', '/api/v1/tenants');
  assert.equal(na.status, 405);
  assert.equal(na.headers.get('allow'), 'POST, GET');
  assertValid({ $ref: '#/components/schemas/Problem' }, na.body, 'PUT /api/v1/tenants → 405');
});

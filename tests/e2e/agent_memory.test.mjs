// Memory and MCP tools in the agent loop (docs/tasks.md "Tools"): on the
// built-in model an agent granted remember / learn_entity records what an
// objective states, and a later task gets it back in its context
// ("# Recalled memories", "# Knowledge facts") and answers from it; on the
// fake upstream (whose x-fake-tool-call header scripts the model's call)
// an agent calls query_knowledge and tools of
// @modelcontextprotocol/server-everything and server-memory over stdio.  The fake repeats
// its scripted call on every turn, so those tasks end at their max_steps:
// the assertions are on the tool_result steps.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { resolve, join } from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { startServer, tenantWithKeys } from './lib/server.mjs';
import { startFake } from './lib/fake.mjs';
import { addAgent, sql, waitTask } from './lib/team.mjs';

const NODE = process.execPath;
const EVERYTHING = resolve('node_modules/@modelcontextprotocol/server-everything/dist/index.js');
const MEMORY = resolve('node_modules/@modelcontextprotocol/server-memory/dist/index.js');
const memDir = mkdtempSync(join(tmpdir(), 'agentprov-mcp-memory-'));

let srv, fake, T, fakeCfg;
before(async () => {
  fake = await startFake();
  srv = await startServer({
    env: {
      AP_PROVIDER_OPENAI_BASE_URL: `${fake.url}/v1`,
      AP_PROVIDER_OPENAI_API_KEY: 'sk-fake-memory-0123456789',
      AP_FORWARD_HEADERS: 'x-fake-',
      AP_MCP_STDIO_ALLOW: JSON.stringify({
        everything: [NODE, EVERYTHING, 'stdio'],
        memory: { argv: [NODE, MEMORY], env: { MEMORY_FILE_PATH: join(memDir, 'memory.jsonl') } },
      }),
    },
  });
  T = await tenantWithKeys(srv, 'Agent Memory Tenant');
  const cfg = await srv.request('POST', `/api/v1/tenants/${T.id}/llm/configs`, {
    key: T.keys.tenant_admin, body: { name: 'fake-gpt', primary_model: 'openai/gpt-4o-mini' },
  });
  assert.equal(cfg.status, 201, cfg.text);
  fakeCfg = cfg.body.id;
});
after(async () => { await srv?.stop(); await fake?.stop(); rmSync(memDir, { recursive: true, force: true }); });

function agent(name, tools, { fakeModel = false, autonomy } = {}) {
  const id = addAgent(srv, T.id, { name, role: 'assistant', capabilities: ['notes'], autonomy });
  sql(srv, `UPDATE agents SET tools = '${JSON.stringify(tools)}'${fakeModel ? `, llm_config_id = '${fakeCfg}'` : ''} WHERE id = '${id}'`);
  return id;
}
async function run(agentId, objective, extra = {}) {
  const r = await srv.request('POST', `/api/v1/tenants/${T.id}/tasks`, {
    key: T.keys.operator, body: { assigned_agent_id: agentId, objective, ...extra },
  });
  assert.equal(r.status, 201, r.text);
  return waitTask(srv, `/api/v1/tenants/${T.id}/tasks/${r.body.id}`, undefined, 30000);
}
const steps = async (id) => (await srv.request('GET', `/api/v1/tenants/${T.id}/tasks/${id}/steps`)).body.data;
const scripted = (call) => ({ context: { _llm_headers: { 'x-fake-tool-call': call } }, max_steps: 4 });

test('grants come from the deployed version: an agent made through the API with tools [remember] remembers', async () => {
  const mk = await srv.request('POST', `/api/v1/tenants/${T.id}/agents`, {
    key: T.keys.tenant_admin, body: { name: 'Api Keeper', role: 'assistant', tools: ['remember'] },
  });
  assert.equal(mk.status, 201, mk.text);
  for (const step of ['validate', 'deploy']) {
    const r = await srv.request('POST', `/api/v1/tenants/${T.id}/agents/${mk.body.id}:${step}`, { key: T.keys.tenant_admin });
    assert.equal(r.status, 200, r.text);
  }
  // a later draft without the grant does not change what the deployed version may do
  const up = await srv.request('PATCH', `/api/v1/tenants/${T.id}/agents/${mk.body.id}`, { key: T.keys.tenant_admin, body: { tools: [] } });
  assert.equal(up.status, 200, up.text);
  const t = await run(mk.body.id, 'Remember that the budget is 5 million euros.');
  assert.equal(t.status, 'completed', JSON.stringify(t.error));
  const st = await steps(t.id);
  assert.ok(st.some((s) => s.kind === 'tool_result' && s.name === 'remember' && s.result.is_error === false),
    JSON.stringify(st.map((s) => [s.kind, s.name])));
});

test('remember in one task, recalled into the context of a later one, which answers from it', async () => {
  const a = agent('Keeper', ['remember', 'recall']);
  const t1 = await run(a, 'Remember that the launch date is March 3.');
  assert.equal(t1.status, 'completed', JSON.stringify(t1.error));
  const s1 = await steps(t1.id);
  const call = s1.find((s) => s.kind === 'tool_call' && s.name === 'remember');
  assert.ok(call, JSON.stringify(s1.map((s) => [s.kind, s.name])));
  assert.equal(call.input.arguments.content, 'The launch date is March 3.');
  const res = s1.find((s) => s.kind === 'tool_result' && s.name === 'remember');
  assert.equal(res.result.is_error, false, JSON.stringify(res.result));
  assert.equal(res.result.content.memory_type, 'fact');
  assert.equal(res.result.content.source_task_id, t1.id, 'the memory names the task it came from');
  assert.match(t1.output, /Noted: The launch date is March 3\./);
  // the memory service holds it, as the agent's own
  const mem = await srv.request('GET', `/api/v1/tenants/${T.id}/agents/${a}/memory`);
  assert.equal(mem.status, 200, mem.text);
  assert.ok(mem.body.data.some((m) => m.content === 'The launch date is March 3.'), mem.text);

  const t2 = await run(a, 'When is the launch date?');
  assert.equal(t2.status, 'completed', JSON.stringify(t2.error));
  const ctx = (await steps(t2.id)).find((s) => s.kind === 'context');
  assert.match(ctx.result.system, /# Recalled memories\n- The launch date is March 3\.\n/);
  assert.equal(ctx.result.recalled.memories.length, 1);
  assert.equal(t2.output, 'The launch date is March 3.');
  // an agent without memories gets no such section
  const other = agent('Stranger', []);
  const t3 = await run(other, 'When is the launch date?');
  const ctx3 = (await steps(t3.id)).find((s) => s.kind === 'context');
  assert.doesNotMatch(ctx3.result.system, /Recalled memories/);
  assert.match(t3.output, /I have no information about/);
});

test('learn_entity in one task; the entity\'s facts enter a later task\'s context, and query_knowledge finds it', async () => {
  const a = agent('Cartographer', ['learn_entity', 'query_knowledge']);
  const t1 = await run(a, 'Note that Zephyr Labs is based in Lyon.');
  assert.equal(t1.status, 'completed', JSON.stringify(t1.error));
  const s1 = await steps(t1.id);
  const res = s1.find((s) => s.kind === 'tool_result' && s.name === 'learn_entity');
  assert.ok(res, JSON.stringify(s1.map((s) => [s.kind, s.name])));
  assert.equal(res.result.is_error, false, JSON.stringify(res.result));
  assert.equal(res.result.content.name, 'Zephyr Labs');
  assert.equal(res.result.content.attributes.description, 'Zephyr Labs is based in Lyon.');

  // any agent of the tenant: the graph is the tenant's
  const b = agent('Guide', []);
  const t2 = await run(b, 'Where is Zephyr Labs based?');
  assert.equal(t2.status, 'completed', JSON.stringify(t2.error));
  const ctx = (await steps(t2.id)).find((s) => s.kind === 'context');
  assert.match(ctx.result.system, /# Knowledge facts\n- Zephyr Labs is based in Lyon\.\n/);
  assert.deepEqual(ctx.result.recalled.facts, ['Zephyr Labs']);
  assert.equal(t2.output, 'Zephyr Labs is based in Lyon.');

  // query_knowledge, called by a (scripted) model
  const q = agent('Librarian', ['query_knowledge'], { fakeModel: true });
  const t3 = await run(q, 'Look up Zephyr', scripted('query_knowledge:{"name":"zephyr"}'));
  const s3 = await steps(t3.id);
  const qr = s3.find((s) => s.kind === 'tool_result' && s.name === 'query_knowledge');
  assert.ok(qr, JSON.stringify(s3.map((s) => [s.kind, s.name])));
  assert.equal(qr.result.is_error, false, JSON.stringify(qr.result));
  assert.deepEqual(qr.result.content.data.map((e) => e.name), ['Zephyr Labs']);
  const last = await fake.last('/v1/chat/completions');
  const tools = last.body.tools.map((x) => x.function.name);
  assert.ok(tools.includes('query_knowledge') && !tools.includes('remember'), `only granted tools are offered: ${tools}`);
});

test('a memory tool\'s error is a tool result the model sees, not a failed task step', async () => {
  const a = agent('Careless', ['remember'], { fakeModel: true });
  const t = await run(a, 'Store a note', scripted('remember:{"content":"x","memory_type":"gossip"}'));
  const st = await steps(t.id);
  const r = st.find((s) => s.kind === 'tool_result' && s.name === 'remember');
  assert.ok(r, JSON.stringify(st.map((s) => [s.kind, s.name])));
  assert.equal(r.result.is_error, true);
  assert.match(r.result.content.error, /memory_type/);
  // an ungranted tool is refused the same way
  const b = agent('Ungranted', [], { fakeModel: true });
  const t2 = await run(b, 'Store a note', scripted('remember:{"content":"x"}'));
  const r2 = (await steps(t2.id)).find((s) => s.kind === 'tool_result' && s.name === 'remember');
  assert.equal(r2.result.is_error, true);
  assert.match(r2.result.content.error, /unknown or unavailable tool/);
});

test('an agent granted an MCP tool of server-everything (stdio) calls it; the result is the tool result', async () => {
  const reg = await srv.request('POST', `/api/v1/tenants/${T.id}/mcp-servers`, {
    key: T.keys.tenant_admin, body: { name: 'everything', command: 'everything' },
  });
  assert.equal(reg.status, 201, reg.text);
  const d = await srv.request('POST', `/api/v1/tenants/${T.id}/mcp-servers/${reg.body.id}:discover`, { key: T.keys.tenant_admin });
  assert.equal(d.status, 200, d.text);
  const a = agent('Echoer', ['mcp:everything/echo'], { fakeModel: true });
  const t = await run(a, 'Echo a greeting', scripted('mcp__everything__echo:{"message":"hello from a task"}'));
  const last = await fake.last('/v1/chat/completions');
  const offered = last.body.tools.find((x) => x.function.name === 'mcp__everything__echo');
  assert.ok(offered, 'the granted MCP tool is offered under a provider-safe name');
  assert.equal(offered.function.parameters.properties.message.type, 'string');
  const st = await steps(t.id);
  const r = st.find((s) => s.kind === 'tool_result' && s.name === 'mcp__everything__echo');
  assert.ok(r, JSON.stringify(st.map((s) => [s.kind, s.name])));
  assert.equal(r.result.is_error, false, JSON.stringify(r.result));
  assert.equal(r.result.content.output, 'Echo: hello from a task');
  // the call is audited with the agent as the actor
  const au = await srv.request('GET', `/api/v1/tenants/${T.id}/audit?action=mcp.client.call`, { key: T.keys.tenant_admin });
  assert.equal(au.status, 200, au.text);
  assert.ok(au.body.data.some((e) => e.actor_id === a), au.text);

  // under autonomy "supervised" the call waits for a person's approval
  const s = agent('Supervised Echoer', ['mcp:everything/echo'], { fakeModel: true, autonomy: 'supervised' });
  const t2r = await srv.request('POST', `/api/v1/tenants/${T.id}/tasks`, {
    key: T.keys.operator, body: { assigned_agent_id: s, objective: 'Echo', ...scripted('mcp__everything__echo:{"message":"hi"}'), max_steps: 8 },
  });
  const t2 = await waitTask(srv, `/api/v1/tenants/${T.id}/tasks/${t2r.body.id}`, (x) => x.status === 'waiting_input', 20000);
  assert.equal(t2.approval_state, 'pending');
  assert.ok(!(await steps(t2.id)).some((s) => s.kind === 'tool_result'), 'nothing ran before the approval');
  const ap = await srv.request('POST', `/api/v1/tenants/${T.id}/tasks/${t2.id}:approve`, { key: T.keys.tenant_admin, body: {} });
  assert.equal(ap.status, 200, ap.text);
  // approved, the call runs (and the scripted model asks again: the next call waits again)
  const end = Date.now() + 20000;
  let r2;
  while (Date.now() < end && !r2) {
    r2 = (await steps(t2.id)).find((s) => s.kind === 'tool_result' && s.name === 'mcp__everything__echo');
    if (!r2) await new Promise((res) => setTimeout(res, 50));
  }
  assert.ok(r2, 'the approved call ran: ' + JSON.stringify((await steps(t2.id)).map((s) => [s.kind, s.name, s.state, s.result])) + JSON.stringify((await srv.request('GET', `/api/v1/tenants/${T.id}/tasks/${t2.id}`)).body));
  assert.equal(r2.result.content.output, 'Echo: hi');
});

test('an agent granted a tool of server-memory (stdio) records an entity in a task; the server keeps it', async () => {
  const reg = await srv.request('POST', `/api/v1/tenants/${T.id}/mcp-servers`, {
    key: T.keys.tenant_admin, body: { name: 'kg', command: 'memory' },
  });
  assert.equal(reg.status, 201, reg.text);
  const d = await srv.request('POST', `/api/v1/tenants/${T.id}/mcp-servers/${reg.body.id}:discover`, { key: T.keys.tenant_admin });
  assert.equal(d.status, 200, d.text);
  const a = agent('Graph Keeper', ['mcp:kg/create_entities'], { fakeModel: true });
  const args = { entities: [{ name: 'Acme Batteries', entityType: 'company', observations: ['makes LFP cells'] }] };
  const t = await run(a, 'Record Acme Batteries', scripted(`mcp__kg__create_entities:${JSON.stringify(args)}`));
  const r = (await steps(t.id)).find((s) => s.kind === 'tool_result' && s.name === 'mcp__kg__create_entities');
  assert.ok(r, 'the agent called create_entities');
  assert.equal(r.result.is_error, false, JSON.stringify(r.result));
  assert.match(JSON.stringify(r.result.content), /Acme Batteries/);
  // the external server has it: read it back through the REST call
  const rg = await srv.request('POST', `/api/v1/tenants/${T.id}/mcp-servers/${reg.body.id}/tools/read_graph:call`, {
    key: T.keys.operator, body: {},
  });
  assert.equal(rg.status, 200, rg.text);
  assert.match(rg.text, /Acme Batteries/);
  assert.match(rg.text, /makes LFP cells/);
});

// The platform as an MCP server, through the official MCP TypeScript SDK
// client over Streamable HTTP (/mcp) and over stdio (`agentprov mcp
// --stdio`), and the transport's rules checked byte by byte with fetch.
//
// Agents are made through the agents API: one deployed, one draft.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { startServer, tenantWithKeys, BIN } from './lib/server.mjs';

const LIVE_TOOLS = ['create_task', 'delegate_to_agent', 'escalate_to_supervisor', 'get_task', 'learn_entity', 'list_agents',
  'query_agent', 'query_knowledge', 'recall', 'remember'];

let srv;
let T; // { id, keys }
const agents = {};

async function mkAgent(tid, name, deploy) {
  const a = await srv.request('POST', `/api/v1/tenants/${tid}/agents`, {
    body: { name, role: 'Analyst', capabilities: ['research'] },
  });
  assert.equal(a.status, 201, a.text);
  for (const step of deploy ? ['validate', 'deploy'] : []) {
    const r = await srv.request('POST', `/api/v1/tenants/${tid}/agents/${a.body.id}:${step}`);
    assert.equal(r.status, 200, r.text);
  }
  return a.body.id;
}
async function httpClient(key, name = 'e2e-http') {
  const transport = new StreamableHTTPClientTransport(new URL(`${srv.url}/mcp`), {
    requestInit: { headers: { authorization: `Bearer ${key}` } },
  });
  const client = new Client({ name, version: '1.0.0' });
  await client.connect(transport);
  return { client, transport };
}

function text(result) {
  assert.equal(result.content[0].type, 'text');
  return result.content[0].text;
}

// Every live tool, listed and called, through one connected client.
async function exerciseTools(client, tenantId, { sameProcess = true } = {}) {
  const tag = randomUUID().slice(0, 8);
  const { tools } = await client.listTools();
  assert.deepEqual(tools.map((t) => t.name).sort(), LIVE_TOOLS);
  for (const t of tools) {
    assert.equal(t.inputSchema.type, 'object', t.name);
    assert.equal(t.inputSchema.additionalProperties, false, t.name);
    assert.ok(t.description.length > 20, t.name);
  }
  const ct = tools.find((t) => t.name === 'create_task');
  assert.deepEqual(ct.inputSchema.required, ['objective']);
  assert.ok(ct.inputSchema.properties.assigned_agent_id.description);
  assert.deepEqual(ct.inputSchema.properties.priority.enum, ['critical', 'high', 'normal', 'low', 'background']);

  const la = await client.callTool({ name: 'list_agents', arguments: {} });
  assert.equal(la.isError, false, text(la));
  const names = la.structuredContent.agents.map((a) => a.name).sort();
  assert.deepEqual(names, ['boss', 'drafty', 'researcher']);
  assert.deepEqual(JSON.parse(text(la)), la.structuredContent);
  // deployed agents are "running" while a task of theirs is in flight
  // (an earlier test's tasks may still be): the two filters together
  // hold exactly the deployed agents, each with its status
  const dep = await client.callTool({ name: 'list_agents', arguments: { status: 'deployed' } });
  const run = await client.callTool({ name: 'list_agents', arguments: { status: 'running' } });
  for (const a of dep.structuredContent.agents) assert.equal(a.status, 'deployed');
  for (const a of run.structuredContent.agents) assert.equal(a.status, 'running');
  const live = [...dep.structuredContent.agents, ...run.structuredContent.agents];
  assert.deepEqual(live.map((a) => a.id).sort(), [agents.boss, agents.researcher].sort());
  assert.deepEqual(live.find((a) => a.id === agents.researcher).capabilities, ['research']);

  const objective = `summarise the quarter ${randomUUID()}`;
  const ctr = await client.callTool({
    name: 'create_task',
    arguments: { assigned_agent_id: agents.researcher, objective, priority: 'high', context: { region: 'EMEA' } },
  });
  assert.equal(ctr.isError, false, text(ctr));
  const task = ctr.structuredContent;
  assert.ok(['queued', 'thinking', 'executing', 'completed'].includes(task.status), task.status);
  assert.equal(task.assigned_agent_id, agents.researcher);

  const gt = await client.callTool({ name: 'get_task', arguments: { task_id: task.id } });
  assert.equal(gt.isError, false, text(gt));
  assert.equal(gt.structuredContent.objective, objective);
  assert.equal(gt.structuredContent.priority, 'high');
  assert.deepEqual(gt.structuredContent.context, { region: 'EMEA' });
  assert.equal(gt.structuredContent.agent_version, 1);

  // failures are tool results with isError and words that say what to change
  const draft = await client.callTool({ name: 'create_task', arguments: { assigned_agent_id: agents.drafty, objective: 'x' } });
  assert.equal(draft.isError, true);
  assert.match(text(draft), /agent is not deployed.*deploy the agent first/);
  const missing = await client.callTool({ name: 'get_task', arguments: { task_id: randomUUID() } });
  assert.equal(missing.isError, true);
  assert.match(text(missing), /task not found/);
  const typo = await client.callTool({ name: 'create_task', arguments: { agent: agents.researcher, objective: 'x' } });
  assert.equal(typo.isError, true);
  assert.match(text(typo), /field "agent" is not accepted/);
  const range = await client.callTool({ name: 'list_agents', arguments: { limit: 1000 } });
  assert.equal(range.isError, true);
  assert.match(text(range), /limit.*between 1 and 200/);
  // an unknown tool is a protocol error (-32602)
  await assert.rejects(client.callTool({ name: 'run_shell', arguments: {} }),
    (e) => e.code === -32602 && /unknown tool "run_shell"/.test(e.message));

  // memory: remember, then recall by meaning
  const fact = `the quarterly report is due on the ${tag} of March`;
  const rem = await client.callTool({ name: 'remember', arguments: { agent_id: agents.researcher, content: fact, memory_type: 'fact', importance: 0.9 } });
  assert.equal(rem.isError, false, text(rem));
  assert.equal(rem.structuredContent.content, fact);
  const rec = await client.callTool({ name: 'recall', arguments: { agent_id: agents.researcher, query: `when is the quarterly report due ${tag}` } });
  assert.equal(rec.isError, false, text(rec));
  assert.equal(rec.structuredContent.data[0].content, fact);
  const other = await client.callTool({ name: 'recall', arguments: { agent_id: agents.drafty, query: 'quarterly report' } });
  assert.ok(!JSON.stringify(other.structuredContent).includes(tag), 'another agent recalls nothing of it');
  const noAgent = await client.callTool({ name: 'remember', arguments: { agent_id: '00000000-0000-7000-8000-000000000000', content: 'x', memory_type: 'fact' } });
  assert.equal(noAgent.isError, true);
  assert.match(text(noAgent), /agent not found/);
  // knowledge graph: learn, then query
  const ent = `Acme ${tag}`;
  const le = await client.callTool({ name: 'learn_entity', arguments: { entity_type: 'company', name: ent, attributes: { industry: 'anvils' } } });
  assert.equal(le.isError, false, text(le));
  const qk = await client.callTool({ name: 'query_knowledge', arguments: { name: tag } });
  assert.equal(qk.isError, false, text(qk));
  assert.deepEqual(qk.structuredContent.data.map((e) => e.name), [ent]);

  // agent-to-agent acts for a person, on a task waiting for review
  const rv = await client.callTool({ name: 'create_task', arguments: { assigned_agent_id: agents.researcher, objective: `review me ${tag}`, requires_approval: true } });
  assert.equal(rv.isError, false, text(rv));
  const end = Date.now() + 20000;
  let st;
  while (Date.now() < end) {
    st = (await srv.request('GET', `/api/v1/tenants/${tenantId}/tasks/${rv.structuredContent.id}`)).body;
    if (st.status === 'reviewing') break;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(st.status, 'reviewing');
  // delegate: a subtask of it
  const dl = await client.callTool({ name: 'delegate_to_agent', arguments: { agent_id: agents.researcher, objective: `check the numbers ${tag}`, parent_task_id: st.id, from_agent_id: agents.boss } });
  assert.equal(dl.isError, false, text(dl));
  assert.equal(dl.structuredContent.parent_task_id, st.id);
  assert.equal(dl.structuredContent.depth, 1);
  assert.equal(dl.structuredContent.assigned_agent_id, agents.researcher);
  const nodl = await client.callTool({ name: 'delegate_to_agent', arguments: { agent_id: agents.boss, objective: 'x', from_agent_id: agents.researcher } });
  assert.equal(nodl.isError, true);
  assert.match(text(nodl), /delegation not allowed.*may not delegate/);
  // query: a one-shot task; the agent answers from the memory remembered above
  const qa = await client.callTool({ name: 'query_agent', arguments: { agent_id: agents.researcher, question: 'When is the quarterly report due?', timeout_ms: 20000 } });
  assert.equal(qa.isError, false, text(qa));
  assert.equal(qa.structuredContent.status, 'completed');
  // (over stdio the memory was written by another process than the node that
  // runs the query, whose vector index loaded the agent's partition earlier:
  // it answers from the memory of the first run)
  if (sameProcess) assert.ok(qa.structuredContent.answer.includes(tag), qa.structuredContent.answer);
  else assert.match(qa.structuredContent.answer, /The quarterly report is due on the \w+ of March/);
  // escalate: the task waiting for review goes to the agent's supervisor
  const es = await client.callTool({ name: 'escalate_to_supervisor', arguments: { task_id: st.id, reason: 'needs a manager' } });
  assert.equal(es.isError, false, text(es));
  assert.equal(es.structuredContent.assigned_agent_id, agents.boss);
  assert.equal(es.structuredContent.context.escalated_from, 'researcher');
  const noSup = await client.callTool({ name: 'escalate_to_supervisor', arguments: { task_id: randomUUID(), reason: 'x' } });
  assert.equal(noSup.isError, true);
  assert.match(text(noSup), /task not found/);
  await client.ping();
  return task.id;
}

before(async () => {
  srv = await startServer();
  T = await tenantWithKeys(srv, 'Mcp Server Tenant');
  agents.researcher = await mkAgent(T.id, 'researcher', true);
  agents.drafty = await mkAgent(T.id, 'drafty', false);
  agents.boss = await mkAgent(T.id, 'boss', true);
  const rel = await srv.request('POST', `/api/v1/tenants/${T.id}/agent-relationships`, {
    body: { from_agent_id: agents.boss, to_agent_id: agents.researcher, relationship_type: 'supervises' },
  });
  assert.equal(rel.status, 201, rel.text);
});
after(async () => { await srv?.stop(); });

test('the official SDK client over Streamable HTTP lists and calls every tool', async () => {
  const { client, transport } = await httpClient(T.keys.operator);
  assert.equal(client.getServerVersion().name, 'agentprov');
  assert.match(transport.sessionId, /^[0-9a-f]{32}$/);
  const taskId = await exerciseTools(client, T.id);
  await transport.terminateSession();
  await client.close();
  // every call is in the audit chain as the operator's key; the task too
  const a = await srv.request('GET', '/api/v1/audit?action=mcp.tool.call&limit=500', { key: T.keys.auditor });
  assert.equal(a.status, 200, a.text);
  const calls = a.body.data.filter((e) => e.actor_role === 'operator');
  assert.equal(calls.length, 21, "one entry per tool call (the unknown tool is a protocol error)");
  assert.ok(calls.some((e) => e.resource_id === 'create_task' && e.outcome === 'success'));
  assert.ok(calls.some((e) => e.resource_id === 'create_task' && e.outcome === 'failure'));
  const tc = await srv.request('GET', '/api/v1/audit?action=task.create', { key: T.keys.auditor });
  assert.ok(tc.body.data.some((e) => e.resource_id === taskId && e.actor_role === 'operator'), tc.text);
});

test('the official SDK client over stdio (agentprov mcp --stdio) lists and calls every tool', async () => {
  const transport = new StdioClientTransport({
    command: BIN,
    args: ['mcp', '--stdio', '--database-url', srv.databaseUrl, '--log-level', 'error'],
    env: { ...process.env, AP_API_KEY: T.keys.tenant_admin },
    stderr: 'pipe',
  });
  let stderr = '';
  transport.stderr.on('data', (c) => { stderr += c; });
  const client = new Client({ name: 'e2e-stdio', version: '1.0.0' });
  await client.connect(transport);
  assert.equal(client.getServerVersion().name, 'agentprov');
  try {
    await exerciseTools(client, T.id, { sameProcess: false });
  } catch (e) {
    e.message += `\nstderr of agentprov mcp --stdio:\n${stderr}`;
    throw e;
  } finally {
    await client.close(); // ends the child, also when an assertion failed
  }
  assert.ok(!/apk_[A-Za-z0-9_-]{16}_/.test(stderr), 'the key appeared on stderr');
});

test('stdio: exits 0 at end of input, answers only JSON lines, refuses bad keys and roles', async () => {
  const run = (key, input) => spawnSync(BIN, ['mcp', '--stdio', '--database-url', srv.databaseUrl], {
    input, encoding: 'utf8', env: { ...process.env, AP_API_KEY: key },
  });
  const lines = [
    JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-03-26', capabilities: {}, clientInfo: { name: 'raw', version: '0' } } }),
    JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
    JSON.stringify([{ jsonrpc: '2.0', id: 2, method: 'ping' }, { jsonrpc: '2.0', id: 3, method: 'nope' }]),
    '{not json',
    JSON.stringify({ jsonrpc: '2.0', id: 4, method: 'tools/call', params: { name: 'get_task', arguments: { task_id: 'x' } } }),
  ].join('\n') + '\n';
  const ok = run(T.keys.operator, lines);
  assert.equal(ok.status, 0, ok.stderr);
  const out = ok.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(out.length, 4);
  assert.equal(out[0].result.protocolVersion, '2025-03-26');
  assert.deepEqual(out[1].map((m) => m.id), [2, 3]);
  assert.equal(out[1][1].error.code, -32601);
  assert.equal(out[2].error.code, -32700);
  assert.equal(out[2].id, null);
  assert.equal(out[3].result.isError, true);
  const viewer = run(T.keys.viewer, lines);
  assert.equal(viewer.status, 1);
  assert.equal(viewer.stdout, '');
  assert.match(viewer.stderr, /role viewer lacks permission mcp\.use/);
  const bad = run('apk_nope', lines);
  assert.equal(bad.status, 1);
  assert.equal(bad.stdout, '');
});

// ---- the transport, byte by byte -----------------------------------------

const ACCEPT = 'application/json, text/event-stream';
const INIT = (v = '2025-06-18') => ({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: v, capabilities: {}, clientInfo: { name: 'raw', version: '0' } } });

async function post(body, { key = T.keys.operator, session, headers = {}, raw } = {}) {
  const h = { authorization: `Bearer ${key}`, 'content-type': 'application/json', accept: ACCEPT, ...headers };
  if (session) h['mcp-session-id'] = session;
  const res = await fetch(`${srv.url}/mcp`, { method: 'POST', headers: h, body: raw ?? JSON.stringify(body) });
  const t = await res.text();
  let json = null;
  try { json = t ? JSON.parse(t) : null; } catch { json = null; }
  return { status: res.status, headers: res.headers, body: json, text: t };
}

async function open(version, key) {
  const r = await post(INIT(version), { key });
  assert.equal(r.status, 200, r.text);
  return { sid: r.headers.get('mcp-session-id'), result: r.body.result };
}

test('initialize negotiates the version; sessions are required, per key, and end with DELETE', async () => {
  const { sid, result } = await open('2025-06-18');
  assert.equal(result.protocolVersion, '2025-06-18');
  assert.deepEqual(result.capabilities, { tools: { listChanged: false } });
  assert.equal((await open('2025-03-26')).result.protocolVersion, '2025-03-26');
  // a version the server does not speak: it offers its latest
  assert.equal((await open('2099-01-01')).result.protocolVersion, '2025-06-18');

  const none = await post({ jsonrpc: '2.0', id: 1, method: 'ping' });
  assert.equal(none.status, 400);
  assert.equal(none.body.id, null);
  assert.match(none.body.error.message, /Mcp-Session-Id/);
  const unknown = await post({ jsonrpc: '2.0', id: 1, method: 'ping' }, { session: 'f'.repeat(32) });
  assert.equal(unknown.status, 404);
  assert.equal(unknown.body.error.code, -32004);
  // another key of the same tenant, and a key of another tenant: as unknown
  const other = await post({ jsonrpc: '2.0', id: 1, method: 'ping' }, { session: sid, key: T.keys.tenant_admin });
  assert.equal(other.status, 404);
  assert.deepEqual({ ...other.body.error, data: null }, { ...unknown.body.error, data: null });
  const U = await tenantWithKeys(srv, 'Mcp Other Tenant');
  const cross = await post({ jsonrpc: '2.0', id: 1, method: 'ping' }, { session: sid, key: U.keys.operator });
  assert.equal(cross.status, 404);

  const ping = await post({ jsonrpc: '2.0', id: 'p', method: 'ping' }, { session: sid, headers: { 'mcp-protocol-version': '2025-06-18' } });
  assert.equal(ping.status, 200);
  assert.deepEqual(ping.body, { jsonrpc: '2.0', id: 'p', result: {} });
  const badVer = await post({ jsonrpc: '2.0', id: 1, method: 'ping' }, { session: sid, headers: { 'mcp-protocol-version': '1999-01-01' } });
  assert.equal(badVer.status, 400);
  assert.match(badVer.body.error.message, /unsupported protocol version/);

  const del = await fetch(`${srv.url}/mcp`, { method: 'DELETE', headers: { authorization: `Bearer ${T.keys.operator}`, 'mcp-session-id': sid } });
  assert.equal(del.status, 204);
  const after = await post({ jsonrpc: '2.0', id: 1, method: 'ping' }, { session: sid });
  assert.equal(after.status, 404);
  const get = await fetch(`${srv.url}/mcp`, { headers: { authorization: `Bearer ${T.keys.operator}`, accept: 'text/event-stream' } });
  assert.equal(get.status, 405);
  assert.match(get.headers.get('allow'), /POST/);
});

test('JSON-RPC: errors by code, notifications 202, batches only before 2025-06-18, SSE when asked', async () => {
  const { sid } = await open('2025-06-18');
  const parse = await post(null, { session: sid, raw: '{"jsonrpc":' });
  assert.equal(parse.status, 400);
  assert.equal(parse.body.error.code, -32700);
  const invalid = await post({ jsonrpc: '1.0', id: 7, method: 'ping' }, { session: sid });
  assert.equal(invalid.body.error.code, -32600);
  assert.equal(invalid.body.id, 7);
  const nomethod = await post({ jsonrpc: '2.0', id: 8, method: 'resources/list' }, { session: sid });
  assert.equal(nomethod.body.error.code, -32601);
  const params = await post({ jsonrpc: '2.0', id: 9, method: 'tools/call', params: { arguments: {} } }, { session: sid });
  assert.equal(params.body.error.code, -32602);
  const note = await post({ jsonrpc: '2.0', method: 'notifications/initialized' }, { session: sid });
  assert.equal(note.status, 202);
  assert.equal(note.text, '');
  const batch = [{ jsonrpc: '2.0', id: 1, method: 'ping' }, { jsonrpc: '2.0', id: 2, method: 'tools/list' }];
  const refused = await post(batch, { session: sid });
  assert.equal(refused.status, 400);
  assert.match(refused.body.error.message, /batches are not part of protocol version 2025-06-18/);

  const old = await open('2025-03-26');
  const ok = await post([...batch, { jsonrpc: '2.0', method: 'notifications/initialized' }, 5], { session: old.sid });
  assert.equal(ok.status, 200, ok.text);
  assert.deepEqual(ok.body.map((m) => m.id), [1, 2, null]);
  assert.equal(ok.body[2].error.code, -32600);
  assert.equal(ok.body[1].result.tools.length, LIVE_TOOLS.length);
  const empty = await post([], { session: old.sid });
  assert.equal(empty.status, 400);
  const initInBatch = await post([INIT('2025-03-26')], { session: old.sid });
  assert.equal(initInBatch.status, 400);

  const sse = await post({ jsonrpc: '2.0', id: 'e', method: 'tools/call', params: { name: 'list_agents', arguments: { status: 'draft' } } },
    { session: sid, headers: { accept: 'text/event-stream' } });
  assert.equal(sse.status, 200);
  assert.equal(sse.headers.get('content-type'), 'text/event-stream');
  const m = sse.text.match(/^event: message\ndata: (.*)\n\n$/);
  assert.ok(m, sse.text);
  const ev = JSON.parse(m[1]);
  assert.equal(ev.id, 'e');
  assert.deepEqual(ev.result.structuredContent.agents.map((a) => a.name), ['drafty']);
  const na = await post({ jsonrpc: '2.0', id: 1, method: 'ping' }, { session: sid, headers: { accept: 'text/html' } });
  assert.equal(na.status, 406);
  const ct = await post(null, { session: sid, raw: 'x', headers: { 'content-type': 'text/plain' } });
  assert.equal(ct.status, 415);
  const origin = await post({ jsonrpc: '2.0', id: 1, method: 'ping' }, { session: sid, headers: { origin: 'http://evil.example' } });
  assert.equal(origin.status, 403);
  const viewer = await post(INIT(), { key: T.keys.viewer });
  assert.equal(viewer.status, 403);
  assert.match(viewer.body.error.message, /viewer.*mcp\.use/);
  const anon = await fetch(`${srv.url}/mcp`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(INIT()) });
  assert.equal(anon.status, 401);
  assert.equal((await anon.json()).error.code, -32001);
});

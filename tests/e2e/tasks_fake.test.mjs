// Agent tasks on a model reached over HTTP: the fake upstream (tests/fake)
// stands in for OpenAI and scripts each task's model turns through the
// task's `_llm_headers` (x-fake-*, forwarded as AP_FORWARD_HEADERS allows).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startServer, tenantWithKeys } from './lib/server.mjs';
import { startFake } from './lib/fake.mjs';
import { relate, researchTeam, sql, waitTask } from './lib/team.mjs';

let srv, fake, T, team;
before(async () => {
  fake = await startFake();
  srv = await startServer({
    env: {
      AP_PROVIDER_OPENAI_BASE_URL: `${fake.url}/v1`,
      AP_PROVIDER_OPENAI_API_KEY: 'sk-fake-tasks-0123456789',
      AP_FORWARD_HEADERS: 'x-fake-',
      AP_RETRY_MAX: '0', // the runner's own retries are under test
      AP_BREAKER_THRESHOLD: '1000', // and the dead-letter test must not open the circuit for the others
    },
  });
  T = await tenantWithKeys(srv, 'Fake Model Tenant');
  team = researchTeam(srv, T.id);
  // the Writer runs on the fake OpenAI model (an LLM configuration); the
  // Manager and the Researcher on the built-in model
  const cfg = await srv.request('POST', `/api/v1/tenants/${T.id}/llm/configs`, {
    key: T.keys.tenant_admin, body: { name: 'fake-gpt', primary_model: 'openai/gpt-4o-mini' },
  });
  assert.equal(cfg.status, 201, cfg.text);
  sql(srv, `UPDATE agents SET llm_config_id = '${cfg.body.id}' WHERE id = '${team.writer}'`);
});
after(async () => { await srv?.stop(); await fake?.stop(); });

async function run(objective, headers, extra = {}) {
  const r = await srv.request('POST', `/api/v1/tenants/${T.id}/tasks`, {
    key: T.keys.operator,
    body: { assigned_agent_id: team.writer, group_id: team.group, objective, context: { _llm_headers: headers }, ...extra },
  });
  assert.equal(r.status, 201, r.text);
  return waitTask(srv, `/api/v1/tenants/${T.id}/tasks/${r.body.id}`, undefined, 30000);
}
const steps = async (id) => (await srv.request('GET', `/api/v1/tenants/${T.id}/tasks/${id}/steps`)).body.data;

test('a scripted complete_task: the model\'s call finishes the task; the request carried the agent\'s context and tools', async () => {
  const t = await run('Write the launch note', {
    'x-fake-tool-call': 'complete_task:{"output":"Launch note written.","confidence":0.9}',
  });
  assert.equal(t.status, 'completed', JSON.stringify(t.error));
  assert.equal(t.output, 'Launch note written.');
  assert.equal(t.confidence, 0.9);
  const st = await steps(t.id);
  assert.deepEqual(st.map((s) => s.kind), ['context', 'model_call', 'tool_call', 'tool_result']);
  assert.equal(st[1].name, 'fake-gpt');
  assert.equal(st[1].state, 'done');
  assert.ok(st[1].tokens > 0);
  const last = await fake.last('/v1/chat/completions');
  assert.equal(last.body.model, 'gpt-4o-mini');
  assert.match(last.body.messages[0].content, /^You are Writer, writer\./);
  assert.match(last.body.messages[0].content, /# Shared context\n- The EV battery market grew 40%/);
  assert.equal(last.body.messages[1].content, 'Objective: Write the launch note\n');
  const tools = last.body.tools.map((x) => x.function.name).sort();
  assert.deepEqual(tools, ['complete_task', 'escalate_to_supervisor', 'request_approval']);
  assert.equal(last.headers['x-fake-tool-call'].startsWith('complete_task:'), true, 'the task\'s header reached the provider');
});

test('a scripted escalate_to_supervisor hands the task to the Manager, who answers on the built-in model', async () => {
  const t = await run('What is the capital of Freedonia?', {
    'x-fake-tool-call': 'escalate_to_supervisor:{"reason":"outside my field"}',
  });
  assert.equal(t.status, 'completed', JSON.stringify(t.error));
  assert.equal(t.assigned_agent_id, team.manager);
  assert.equal(t.context.escalation_reason, 'outside my field');
  const st = await steps(t.id);
  assert.deepEqual(st.filter((s) => s.kind === 'model_call').map((s) => s.name), ['fake-gpt', 'builtin/agentprov-mini']);
  const msgs = (await srv.request('GET', `/api/v1/tenants/${T.id}/tasks/${t.id}/messages`)).body.data;
  assert.ok(msgs.some((m) => m.message_type === 'escalation' && m.content.reason === 'outside my field'));
});

test('transient provider failures are retried by the runner with backoff, then the task completes', async () => {
  const t = await run('Write the status update', {
    'x-fake-fail-first': '2', 'x-fake-key': randomUUID(), 'x-fake-status': '503',
    'x-fake-tool-call': 'complete_task:{"output":"Status update written.","confidence":0.8}',
  });
  assert.equal(t.status, 'completed', JSON.stringify(t.error));
  assert.equal(t.attempts, 2);
  const ev = (await srv.request('GET', `/api/v1/tenants/${T.id}/tasks/${t.id}/events?type=task.status&limit=100`)).body.data;
  const retries = ev.filter((e) => e.data.status === 'queued' && /^retrying/.test(e.data.reason || ''));
  assert.equal(retries.length, 2, JSON.stringify(ev.map((e) => e.data)));
  // the model call step was written once, started, and redone in place
  const st = await steps(t.id);
  assert.equal(st.filter((s) => s.kind === 'model_call').length, 1);
});

test('a model that keeps failing fails the task with its reason (dead letter), inspectable', async () => {
  const t = await run('Write the memo', { 'x-fake-status': '503' });
  assert.equal(t.status, 'failed');
  assert.equal(t.error.code, 'model_unavailable');
  assert.match(t.error.detail, /after 5 attempt\(s\)/);
  const dl = await srv.request('GET', `/api/v1/tenants/${T.id}/tasks?status=failed&agent_id=${team.writer}`, { key: T.keys.viewer });
  assert.ok(dl.body.data.some((x) => x.id === t.id));
});

test('a model that never finishes hits max_steps and fails with step_limit', async () => {
  // the Writer may now ask the Researcher; the script asks on every turn
  relate(srv, T.id, team.writer, team.researcher, 'collaborates_with', team.group);
  const t = await run('Loop forever', {
    'x-fake-tool-call': `query_agent:{"agent_id":"${team.researcher}","question":"How much did the market grow?"}`,
  }, { max_steps: 8 });
  assert.equal(t.status, 'failed');
  assert.equal(t.error.code, 'step_limit');
  assert.match(t.error.detail, /8 steps/);
  const st = await steps(t.id);
  const answers = st.filter((s) => s.kind === 'tool_result' && s.name === 'query_agent');
  assert.ok(answers.length >= 2);
  assert.match(answers[0].result.content.output, /grew 40% in 2024/, 'the colleague answered from the shared context');
  const msgs = (await srv.request('GET', `/api/v1/tenants/${T.id}/tasks/${t.id}/messages`)).body.data;
  assert.ok(msgs.some((m) => m.message_type === 'question' && m.to_agent_id === team.researcher));
});

test('a task waiting on a slow model holds no runner: with one worker another task runs meanwhile', async () => {
  const s = await startServer({
    env: {
      AP_PROVIDER_OPENAI_BASE_URL: `${fake.url}/v1`,
      AP_PROVIDER_OPENAI_API_KEY: 'sk-fake-tasks-0123456789',
      AP_FORWARD_HEADERS: 'x-fake-',
      AP_TASK_WORKERS: '1',
    },
  });
  try {
    const U = await tenantWithKeys(s, 'One Worker');
    const tm = researchTeam(s, U.id);
    const cfg = await s.request('POST', `/api/v1/tenants/${U.id}/llm/configs`, {
      key: U.keys.tenant_admin, body: { name: 'slow-gpt', primary_model: 'openai/gpt-4o-mini' },
    });
    assert.equal(cfg.status, 201, cfg.text);
    sql(s, `UPDATE agents SET llm_config_id = '${cfg.body.id}' WHERE id = '${tm.writer}'`);
    const slow = await s.request('POST', `/api/v1/tenants/${U.id}/tasks`, {
      key: U.keys.operator,
      body: { assigned_agent_id: tm.writer, objective: 'Write slowly', context: { _llm_headers: {
        'x-fake-latency-ms': '2500', 'x-fake-tool-call': 'complete_task:{"output":"Slow but done.","confidence":0.9}',
      } } },
    });
    assert.equal(slow.status, 201, slow.text);
    // the slow task is waiting on its model call
    await waitTask(s, `/api/v1/tenants/${U.id}/tasks/${slow.body.id}/steps`,
      (x) => x.data.some((st) => st.kind === 'model_call' && st.state === 'started'), 10000, U.keys.viewer);
    const t0 = Date.now();
    const quick = await s.request('POST', `/api/v1/tenants/${U.id}/tasks`, {
      key: U.keys.operator, body: { assigned_agent_id: tm.researcher, objective: 'How much did the EV battery market grow?' },
    });
    const q = await waitTask(s, `/api/v1/tenants/${U.id}/tasks/${quick.body.id}`, undefined, 10000, U.keys.viewer);
    assert.equal(q.status, 'completed');
    assert.ok(Date.now() - t0 < 2000, 'the quick task did not wait for the slow model call');
    const sl = await waitTask(s, `/api/v1/tenants/${U.id}/tasks/${slow.body.id}`, undefined, 15000, U.keys.viewer);
    assert.equal(sl.status, 'completed', JSON.stringify(sl.error));
    assert.equal(sl.output, 'Slow but done.');
    assert.ok(q.completed_at < sl.completed_at);
  } finally { await s.stop(); }
});

test('SIGTERM while a model call is in flight: a clean stop, and the task completes after the restart', async () => {
  const env = {
    AP_PROVIDER_OPENAI_BASE_URL: `${fake.url}/v1`,
    AP_PROVIDER_OPENAI_API_KEY: 'sk-fake-tasks-0123456789',
    AP_FORWARD_HEADERS: 'x-fake-',
    AP_TASK_LEASE_MS: '1000',
    AP_TASK_SCAN_MS: '200',
  };
  const s1 = await startServer({ env });
  const U = await tenantWithKeys(s1, 'Stopping');
  const tm = researchTeam(s1, U.id);
  const cfg = await s1.request('POST', `/api/v1/tenants/${U.id}/llm/configs`, {
    key: U.keys.tenant_admin, body: { name: 'slow-gpt', primary_model: 'openai/gpt-4o-mini' },
  });
  sql(s1, `UPDATE agents SET llm_config_id = '${cfg.body.id}' WHERE id = '${tm.writer}'`);
  const t = await s1.request('POST', `/api/v1/tenants/${U.id}/tasks`, {
    key: U.keys.operator,
    body: { assigned_agent_id: tm.writer, objective: 'Write slowly', context: { _llm_headers: {
      'x-fake-latency-ms': '1500', 'x-fake-tool-call': 'complete_task:{"output":"Done after all.","confidence":0.9}',
    } } },
  });
  await waitTask(s1, `/api/v1/tenants/${U.id}/tasks/${t.body.id}/steps`,
    (x) => x.data.some((st) => st.kind === 'model_call' && st.state === 'started'), 10000, U.keys.viewer);
  // a clean stop: the in-flight call is cancelled; no leak, exit 0 (checked by stop())
  const keep = s1.dataDir;
  s1.child.kill('SIGTERM');
  const ex = await s1.exited;
  assert.equal(ex.code, 0, s1.raw.join('').slice(-3000));
  const s2 = await startServer({ env, dataDir: keep, db: s1.db });
  try {
    const fin = await waitTask(s2, `/api/v1/tenants/${U.id}/tasks/${t.body.id}`, undefined, 20000, U.keys.viewer);
    assert.equal(fin.status, 'completed', JSON.stringify(fin.error));
    assert.equal(fin.output, 'Done after all.');
    const st = (await s2.request('GET', `/api/v1/tenants/${U.id}/tasks/${t.body.id}/steps`, { key: U.keys.viewer })).body.data;
    assert.equal(st.filter((x) => x.kind === 'model_call').length, 1, 'the started call was redone in place');
  } finally { await s2.stop(); }
});

// Agent tasks end to end on the built-in model: delegation and collection,
// the depth limit, escalation, approvals, cancel, the event stream (SSE,
// resumable) and recovery after kill -9 with no step lost or repeated.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, tenantWithKeys } from './lib/server.mjs';
import { addAgent, addGroup, relate, researchTeam, waitTask } from './lib/team.mjs';

const OBJECTIVE = 'Research the EV battery market and write a one-page brief';
const TERMINAL = ['completed', 'failed', 'cancelled'];

let srv;
let T; // { id, keys }
before(async () => {
  srv = await startServer();
  T = await tenantWithKeys(srv, 'Task Runners');
});
after(async () => { await srv?.stop(); });

const api = (path) => `/api/v1/tenants/${T.id}${path}`;
async function create(body, key = T.keys.operator, s = srv, tenant = T) {
  const r = await s.request('POST', `/api/v1/tenants/${tenant.id}/tasks`, { key, body });
  assert.equal(r.status, 201, r.text);
  return r.body;
}
const done = (id, s = srv, tenant = T) => waitTask(s, `/api/v1/tenants/${tenant.id}/tasks/${id}`);
async function steps(id, s = srv, tenant = T) {
  const r = await s.request('GET', `/api/v1/tenants/${tenant.id}/tasks/${id}/steps`);
  assert.equal(r.status, 200, r.text);
  return r.body.data;
}

// Reads a text/event-stream answer until it ends or `until` says stop.
async function readSse(url, key, { lastEventId, until = () => false, ms = 20000 } = {}) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), ms);
  const headers = { authorization: `Bearer ${key}`, accept: 'text/event-stream' };
  if (lastEventId !== undefined) headers['last-event-id'] = String(lastEventId);
  const res = await fetch(url, { headers, signal: ctl.signal });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /text\/event-stream/);
  const events = [];
  let comments = 0;
  let buf = '';
  const dec = new TextDecoder();
  try {
    for await (const chunk of res.body) {
      buf += dec.decode(chunk, { stream: true });
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (block.startsWith(':')) { comments++; continue; }
        const ev = {};
        for (const line of block.split('\n')) {
          const c = line.indexOf(': ');
          ev[line.slice(0, c)] = line.slice(c + 2);
        }
        ev.data = JSON.parse(ev.data);
        events.push(ev);
        if (until(ev, events)) { ctl.abort(); return { events, comments }; }
      }
    }
  } catch (e) {
    if (e.name !== 'AbortError') throw e;
  } finally { clearTimeout(timer); }
  return { events, comments };
}

test('a manager splits a research objective, delegates to two specialists, collects and completes', async () => {
  const team = researchTeam(srv, T.id);
  const task = await create({ group_id: team.group, objective: OBJECTIVE, priority: 'high', task_type: 'research' });
  assert.equal(task.status, 'queued');
  assert.equal(task.assigned_agent_id, team.manager, 'the group\'s top supervisor takes a group task');
  // follow it live while it runs
  const sse = readSse(`${srv.url}${api(`/tasks/${task.id}/events`)}`, T.keys.viewer);
  const t = await done(task.id);
  assert.equal(t.status, 'completed', JSON.stringify(t.error));
  assert.match(t.output, /grew 40% in 2024/, 'the researcher\'s finding is collected');
  assert.match(t.output, /one-page brief states/, 'the writer\'s part is collected');
  assert.ok(t.confidence > 0 && t.confidence <= 1);
  const tree = (await srv.request('GET', api(`/tasks/${task.id}/tree`))).body;
  assert.equal(tree.subtasks.length, 2);
  const byAgent = Object.fromEntries(tree.subtasks.map((s) => [s.assigned_agent_id, s]));
  assert.equal(byAgent[team.researcher].objective, 'Research the EV battery market');
  assert.equal(byAgent[team.writer].objective, 'Write a one-page brief');
  for (const s of tree.subtasks) {
    assert.equal(s.status, 'completed');
    assert.equal(s.parent_task_id, task.id);
    assert.equal(s.depth, 1);
    assert.equal(s.created_by_agent_id, team.manager);
    assert.equal(s.priority, 'high');
    assert.ok(s.tokens_used > 0);
  }
  assert.equal(t.tokens_total, t.tokens_used + tree.subtasks.reduce((n, s) => n + s.tokens_total, 0),
    'tokens_total sums the tree');
  assert.ok(t.reasoning.length >= 2);
  const kinds = (await steps(task.id)).map((s) => `${s.kind}:${s.name}`);
  assert.deepEqual(kinds, ['context:Manager', 'model_call:builtin/agentprov-mini',
    'tool_call:delegate_to_agent', 'tool_result:delegate_to_agent',
    'tool_call:delegate_to_agent', 'tool_result:delegate_to_agent', 'note:subtask_results',
    'model_call:builtin/agentprov-mini', 'tool_call:complete_task', 'tool_result:complete_task']);
  // messages: a request to each specialist and their responses
  const msgs = (await srv.request('GET', api('/messages?limit=500'), { key: T.keys.viewer })).body.data
    .filter((m) => tree.subtasks.some((s) => s.id === m.task_id));
  assert.deepEqual(msgs.map((m) => m.message_type).sort(), ['request', 'request', 'response', 'response']);
  // the stream saw the whole story and ended with the root's completion
  const { events } = await sse;
  const last = events.at(-1);
  assert.equal(last.event, 'task.status');
  assert.equal(last.data.task_id, task.id);
  assert.equal(last.data.data.status, 'completed');
  assert.ok(events.some((e) => e.event === 'tool.call' && e.data.data.name === 'delegate_to_agent'));
  assert.ok(events.some((e) => e.event === 'task.status' && e.data.data.status === 'delegated'));
  const ids = events.map((e) => Number(e.id));
  assert.deepEqual(ids, [...ids].sort((a, b) => a - b), 'ids increase');
  // resuming after an event id replays exactly what came after it
  const mid = ids[Math.floor(ids.length / 2)];
  const again = await readSse(`${srv.url}${api(`/tasks/${task.id}/events`)}`, T.keys.viewer, { lastEventId: mid });
  assert.deepEqual(again.events.map((e) => Number(e.id)), ids.filter((i) => i > mid));
  // skills: each specialist practised task_type "research"
  // the board filters
  const board = await srv.request('GET', api(`/tasks?parent_task_id=${task.id}&status=completed`), { key: T.keys.viewer });
  assert.equal(board.body.data.length, 2);
  const byGroup = await srv.request('GET', `/api/v1/tasks?group_id=${team.group}&agent_id=${team.manager}`, { key: T.keys.viewer });
  assert.deepEqual(byGroup.body.data.map((x) => x.id), [task.id]);
  const bad = await srv.request('GET', api('/tasks?status=sleeping'), { key: T.keys.viewer });
  assert.equal(bad.status, 400);
  assert.match(bad.body.detail, /status/);
});

test('a delegation beyond the caller\'s max_delegation_depth is refused and the model sees why', async () => {
  const team = researchTeam(srv, T.id, { managerDepth: 0, suffix: ' D' });
  const task = await create({ assigned_agent_id: team.manager, objective: OBJECTIVE });
  const t = await done(task.id);
  assert.equal(t.status, 'completed');
  const st = await steps(task.id);
  const refused = st.filter((s) => s.kind === 'tool_result' && s.name === 'delegate_to_agent');
  assert.ok(refused.length >= 1);
  for (const s of refused) {
    assert.equal(s.result.is_error, true);
    assert.match(s.result.content.error, /delegation depth limit/);
  }
  const tree = (await srv.request('GET', api(`/tasks/${task.id}/tree`))).body;
  assert.equal(tree.subtasks.length, 0, 'no subtask was created');
  assert.match(t.output, /failed: refused/);
});

test('low confidence escalates to the supervisor per the group\'s escalation_rules', async () => {
  const team = researchTeam(srv, T.id, { escalation: { min_confidence: 0.5 }, suffix: ' E' });
  const task = await create({ assigned_agent_id: team.writer, group_id: team.group, objective: 'What is the capital of Freedonia?' });
  const t = await done(task.id);
  assert.equal(t.status, 'completed');
  assert.equal(t.assigned_agent_id, team.manager, 'the supervisor took the task over');
  assert.equal(t.context.escalated_from, 'Writer E');
  assert.match(t.context.escalation_reason, /low confidence 0\.10 < 0\.50/);
  const msgs = (await srv.request('GET', api(`/tasks/${task.id}/messages`))).body.data;
  const esc = msgs.find((m) => m.message_type === 'escalation');
  assert.ok(esc, JSON.stringify(msgs));
  assert.equal(esc.from_agent_id, team.writer);
  assert.equal(esc.to_agent_id, team.manager);
  const kinds = (await steps(task.id)).map((s) => `${s.kind}:${s.name}`);
  assert.equal(kinds.filter((k) => k.startsWith('context:')).length, 2, kinds.join(' '));
  assert.ok(kinds.includes('note:escalated'));
  assert.ok(kinds.includes('context:Manager E'));
  // the supervisor answers the question; the escalation is not knowledge
  assert.doesNotMatch(t.output, /Writer E/);
  assert.match(t.output, /capital of Freedonia/);
  const ctx = (await steps(task.id)).find((x) => x.kind === 'context' && x.name === 'Manager E');
  assert.match(ctx.result.system, /^# Escalation\nEscalated by Writer E \(low confidence 0\.10 < 0\.50/m);
  assert.doesNotMatch(ctx.result.user, /Writer E/);
});

test('requires_approval: the output waits in reviewing; approve completes, reject fails', async () => {
  const w = addAgent(srv, T.id, { name: 'Reviewer-bound writer', role: 'writer', capabilities: ['writing'] });
  const a = await create({ assigned_agent_id: w, objective: 'Write a haiku', requires_approval: true });
  const b = await create({ assigned_agent_id: w, objective: 'Write a limerick', requires_approval: true });
  for (const x of [a, b]) {
    const t = await waitTask(srv, api(`/tasks/${x.id}`), (v) => v.status === 'reviewing');
    assert.equal(t.approval_state, 'pending');
    assert.ok(t.output);
  }
  const denied = await srv.request('POST', api(`/tasks/${a.id}:approve`), { key: T.keys.operator, body: {} });
  assert.equal(denied.status, 403, 'an operator may not approve');
  const ok = await srv.request('POST', api(`/tasks/${a.id}:approve`), { key: T.keys.project_admin, body: { comment: 'fine' } });
  assert.equal(ok.status, 200, ok.text);
  assert.equal(ok.body.status, 'completed');
  assert.equal(ok.body.approval_state, 'approved');
  const no = await srv.request('POST', api(`/tasks/${b.id}:reject`), { key: T.keys.tenant_admin, body: { comment: 'too long' } });
  assert.equal(no.status, 200, no.text);
  assert.equal(no.body.status, 'failed');
  assert.deepEqual(no.body.error, { code: 'rejected', detail: 'too long' });
  const twice = await srv.request('POST', api(`/tasks/${b.id}:approve`), { key: T.keys.tenant_admin, body: {} });
  assert.equal(twice.status, 409);
  // audited with the comment
  const au = await srv.request('GET', `/api/v1/audit?action=task.*&resource_id=${b.id}`, { key: T.keys.auditor });
  assert.ok(au.body.data.some((e) => e.action === 'task.reject' && e.changes.comment === 'too long'), au.text);
  // the dead-letter view lists it with its reason
  const dl = await srv.request('GET', api('/tasks?status=failed&limit=500'), { key: T.keys.viewer });
  assert.ok(dl.body.data.some((x) => x.id === b.id && x.error.code === 'rejected'));
});

test('autonomy approval_required parks before the start; supervised asks before each delegation', async () => {
  const gated = addAgent(srv, T.id, { name: 'Gated analyst', role: 'analyst', autonomy: 'approval_required' });
  const g1 = await create({ assigned_agent_id: gated, objective: 'Summarise the quarter' });
  const g2 = await create({ assigned_agent_id: gated, objective: 'Summarise the year' });
  for (const x of [g1, g2]) await waitTask(srv, api(`/tasks/${x.id}`), (v) => v.status === 'waiting_input');
  const req = (await srv.request('GET', api(`/tasks/${g1.id}/messages`))).body.data;
  assert.equal(req[0].message_type, 'approval_request');
  assert.equal(req[0].content.kind, 'start');
  assert.equal((await srv.request('POST', api(`/tasks/${g1.id}:approve`), { key: T.keys.tenant_admin })).status, 200);
  assert.equal((await done(g1.id)).status, 'completed');
  const rj = await srv.request('POST', api(`/tasks/${g2.id}:reject`), { key: T.keys.tenant_admin, body: { comment: 'not now' } });
  assert.equal(rj.body.status, 'failed');
  assert.equal((await steps(g2.id)).filter((s) => s.kind === 'model_call').length, 0, 'a rejected task never ran');

  const team = researchTeam(srv, T.id, { autonomy: 'supervised', suffix: ' S' });
  const t = await create({ assigned_agent_id: team.manager, objective: OBJECTIVE });
  let approvals = 0;
  for (;;) {
    const v = await waitTask(srv, api(`/tasks/${t.id}`), (x) => TERMINAL.includes(x.status) || x.status === 'waiting_input');
    if (v.status !== 'waiting_input') break;
    approvals++;
    const ap = await srv.request('POST', api(`/tasks/${t.id}:approve`), { key: T.keys.project_admin, body: { comment: `ok ${approvals}` } });
    assert.equal(ap.status, 200, ap.text);
  }
  assert.equal(approvals, 2, 'one approval per delegate_to_agent call');
  const fin = await done(t.id);
  assert.equal(fin.status, 'completed');
  const st = await steps(t.id);
  assert.equal(st.filter((s) => s.kind === 'approval' && s.name === 'approved').length, 2);
  assert.equal(st.filter((s) => s.kind === 'tool_call').length, 3, 'each call once, no repeat after approval');
});

test('cancel works in every state and cascades to subtasks', async () => {
  const slow = await startServer({ env: { AP_TASK_STEP_DELAY_MS: '300' } });
  try {
    const U = await tenantWithKeys(slow, 'Slow Tenant');
    const team = researchTeam(slow, U.id);
    const t = await create({ group_id: team.group, objective: OBJECTIVE }, U.keys.operator, slow, U);
    await waitTask(slow, `/api/v1/tenants/${U.id}/tasks/${t.id}/tree`, (x) => x.subtasks.length === 2);
    const c = await slow.request('POST', `/api/v1/tasks/${t.id}:cancel`, { key: U.keys.operator, body: { reason: 'changed my mind' } });
    assert.equal(c.status, 200, c.text);
    assert.equal(c.body.status, 'cancelled');
    assert.deepEqual(c.body.error, { code: 'cancelled', detail: 'changed my mind' });
    const tree = (await slow.request('GET', `/api/v1/tasks/${t.id}/tree`, { key: U.keys.viewer })).body;
    for (const s of tree.subtasks) assert.equal(s.status, 'cancelled');
    // nothing moves afterwards
    await new Promise((r) => setTimeout(r, 1200));
    const later = (await slow.request('GET', `/api/v1/tasks/${t.id}/tree`, { key: U.keys.viewer })).body;
    assert.deepEqual(later, tree);
    // cancelling a finished task changes nothing
    const again = await slow.request('POST', `/api/v1/tasks/${t.id}:cancel`, { key: U.keys.operator });
    assert.equal(again.status, 200);
    assert.equal(again.body.completed_at, c.body.completed_at);
    // a queued task and one waiting for approval cancel too
    const gated = addAgent(slow, U.id, { name: 'Gate', role: 'analyst', autonomy: 'approval_required' });
    const w = await create({ assigned_agent_id: gated, objective: 'Wait for me' }, U.keys.operator, slow, U);
    await waitTask(slow, `/api/v1/tasks/${w.id}`, (x) => x.status === 'waiting_input', 20000, U.keys.viewer);
    const cw = await slow.request('POST', `/api/v1/tasks/${w.id}:cancel`, { key: U.keys.operator });
    assert.equal(cw.body.status, 'cancelled');
  } finally { await slow.stop(); }
});

test('kill -9 mid-task: after a restart the task completes with no step lost or repeated', async () => {
  const env = { AP_TASK_STEP_DELAY_MS: '120', AP_TASK_LEASE_MS: '1000', AP_TASK_SCAN_MS: '200' };
  const s1 = await startServer({ env });
  const U = await tenantWithKeys(s1, 'Crash Tenant');
  const team = researchTeam(s1, U.id);
  const t = await create({ group_id: team.group, objective: OBJECTIVE }, U.keys.operator, s1, U);
  // kill while the subtasks are in flight
  const before = await waitTask(s1, `/api/v1/tasks/${t.id}/tree`,
    (x) => x.subtasks.length === 2 && x.subtasks.some((s) => s.steps > 0 && !TERMINAL.includes(s.status)),
    20000, U.keys.viewer);
  s1.child.kill('SIGKILL');
  const inFlight = [before, ...before.subtasks].filter((x) => ['thinking', 'executing'].includes(x.status));
  const { signal } = await s1.exited;
  assert.equal(signal, 'SIGKILL');
  const mid = await (async () => {
    const s2 = await startServer({ env, dataDir: s1.dataDir, db: s1.db });
    return s2;
  })();
  try {
    const fin = await waitTask(mid, `/api/v1/tasks/${t.id}`, (x) => TERMINAL.includes(x.status), 30000, U.keys.viewer);
    assert.equal(fin.status, 'completed', JSON.stringify(fin.error));
    assert.match(fin.output, /grew 40% in 2024/);
    const tree = (await mid.request('GET', `/api/v1/tasks/${t.id}/tree`, { key: U.keys.viewer })).body;
    assert.equal(tree.subtasks.length, 2, 'no subtask was created twice');
    for (const task of [tree, ...tree.subtasks]) {
      const st = await steps(task.id, mid, U);
      assert.deepEqual(st.map((s) => s.seq), st.map((_, i) => i + 1), 'seqs are dense');
      assert.ok(st.every((s) => s.state === 'done'), 'every step finished');
      assert.equal(st.filter((s) => s.kind === 'context').length, 1, 'the context was built once');
      const calls = st.filter((s) => s.kind === 'tool_call').map((s) => JSON.stringify(s.input));
      assert.equal(new Set(calls).size, calls.length, 'no tool call repeated');
      assert.equal(st.filter((s) => s.kind === 'tool_result').length, calls.length);
      assert.equal(st.at(-1).name, 'complete_task');
    }
    const ev = await mid.request('GET', `/api/v1/tasks/${t.id}/events?limit=1000`, { key: U.keys.viewer });
    // each task that was running when the process died was resumed by the new one; one
    // that the snapshot saw running may still have finished before the kill landed (its
    // end then precedes every resume): that one had nothing to resume
    const resumes = ev.body.data.filter((e) => e.type === 'task.status' && e.data.reason === 'resumed after its lease expired');
    const firstResume = Math.min(...resumes.map((e) => e.seq));
    for (const x of inFlight) {
      const endedBefore = ev.body.data.some((e) => e.type === 'task.status' && e.task_id === x.id
        && TERMINAL.includes(e.data.status) && e.seq < firstResume);
      assert.ok(endedBefore || resumes.some((e) => e.task_id === x.id), `task ${x.id} (${x.status}) was not resumed`);
    }
  } finally { await mid.stop(); }
});

test('bad input: unknown agent, undeployed agent, empty objective, unknown field', async () => {
  const r1 = await srv.request('POST', api('/tasks'), { key: T.keys.operator, body: { assigned_agent_id: 'nobody', objective: 'x' } });
  assert.equal(r1.status, 400);
  assert.match(r1.body.detail, /assigned_agent_id "nobody"/);
  const draft = addAgent(srv, T.id, { name: 'Drafty', role: 'x', status: 'draft' });
  const r2 = await srv.request('POST', api('/tasks'), { key: T.keys.operator, body: { assigned_agent_id: draft, objective: 'x' } });
  assert.equal(r2.status, 409);
  assert.match(r2.body.detail, /draft/);
  const r3 = await srv.request('POST', api('/tasks'), { key: T.keys.operator, body: { objective: 'x' } });
  assert.equal(r3.status, 400);
  assert.match(r3.body.detail, /assigned_agent_id/);
  const r4 = await srv.request('POST', api('/tasks'), { key: T.keys.operator, body: { assigned_agent_id: draft, objectve: 'x' } });
  assert.equal(r4.status, 400);
  assert.match(r4.body.detail, /objectve/);
  const r5 = await srv.request('GET', api('/events?after=abc'), { key: T.keys.viewer });
  assert.equal(r5.status, 400);
  const m = await srv.request('POST', api('/messages'), { key: T.keys.operator, body: { message_type: 'shout', content: {} } });
  assert.equal(m.status, 400);
  assert.match(m.body.detail, /message_type/);
});

test('tenant-wide events: filter by type, JSON pages, and a live stream', async () => {
  const p1 = await srv.request('GET', api('/events?type=task.*&limit=5'), { key: T.keys.viewer });
  assert.equal(p1.status, 200);
  assert.equal(p1.body.data.length, 5);
  assert.ok(p1.body.data.every((e) => e.type.startsWith('task.')));
  const p2 = await srv.request('GET', api(`/events?type=task.*&limit=5&after=${p1.body.next_cursor}`), { key: T.keys.viewer });
  assert.ok(p2.body.data[0].seq > p1.body.data[4].seq);
  // a live stream sees a new message
  const head = (await srv.request('GET', api('/events?limit=1000'), { key: T.keys.viewer })).body.data.at(-1).seq;
  const live = readSse(`${srv.url}${api('/events?type=message.created')}`, T.keys.viewer,
    { lastEventId: head, until: (e) => e.data.data.content?.text === 'hello team' });
  await new Promise((r) => setTimeout(r, 200));
  const post = await srv.request('POST', '/api/v1/messages', { key: T.keys.operator, body: { message_type: 'update', content: { text: 'hello team' } } });
  assert.equal(post.status, 201, post.text);
  const { events } = await live;
  assert.equal(events.at(-1).data.data.content.text, 'hello team');
  assert.ok(events.every((e) => e.event === 'message.created'));
});

test('heartbeats are comment lines on an idle stream', async () => {
  const s = await startServer({ env: { AP_SSE_HEARTBEAT_MS: '200' } });
  try {
    const U = await tenantWithKeys(s, 'Quiet Tenant');
    const r = await readSse(`${s.url}/api/v1/events`, U.keys.viewer, { ms: 900 });
    assert.equal(r.events.length, 0);
    assert.ok(r.comments >= 3, `comments: ${r.comments}`);
  } finally { await s.stop(); }
});

test('a tenant flooding the queue does not starve another', async () => {
  const s = await startServer({ env: { AP_TASK_WORKERS: '2', AP_TASK_STEP_DELAY_MS: '20' } });
  try {
    const A = await tenantWithKeys(s, 'Flooder');
    const B = await tenantWithKeys(s, 'Patient');
    const wa = addAgent(s, A.id, { name: 'Flood worker', role: 'worker' });
    const wb = addAgent(s, B.id, { name: 'Patient worker', role: 'worker' });
    const flood = [];
    for (let i = 0; i < 60; i++) flood.push(create({ assigned_agent_id: wa, objective: `Flood item ${i}` }, A.keys.operator, s, A));
    await Promise.all(flood);
    const t0 = Date.now();
    const b = await create({ assigned_agent_id: wb, objective: 'My single task' }, B.keys.operator, s, B);
    const fin = await waitTask(s, `/api/v1/tasks/${b.id}`, (x) => x.status === 'completed', 20000, B.keys.viewer);
    assert.ok(fin);
    const queued = (await s.request('GET', '/api/v1/tasks?status=queued&limit=500', { key: A.keys.viewer })).body.data.length;
    assert.ok(queued > 20, `A still has ${queued} queued: B did not wait for them`);
    assert.ok(Date.now() - t0 < 5000);
  } finally { await s.stop(); }
});

test('max_concurrent_tasks 1: the tenant runs one task at a time, another tenant several', async () => {
  const s = await startServer({ env: { AP_TASK_WORKERS: '4', AP_TASK_STEP_DELAY_MS: '60' } });
  try {
    const A = await tenantWithKeys(s, 'One At A Time');
    const B = await tenantWithKeys(s, 'Several At Once');
    const pa = await s.request('PATCH', `/api/v1/tenants/${A.id}`, { body: { max_concurrent_tasks: 1, task_weight: 2 } });
    assert.equal(pa.status, 200, pa.text);
    assert.equal(pa.body.entitlements.max_concurrent_tasks, 1);
    assert.equal(pa.body.entitlements.task_weight, 2);
    const bad = await s.request('PATCH', `/api/v1/tenants/${A.id}`, { body: { task_weight: 0 } });
    assert.equal(bad.status, 400);
    assert.match(bad.body.detail, /task_weight/);
    const wa = addAgent(s, A.id, { name: 'Serial worker', role: 'worker' });
    const wb = addAgent(s, B.id, { name: 'Parallel worker', role: 'worker' });
    const ids = { [A.id]: [], [B.id]: [] };
    for (let i = 0; i < 4; i++) {
      ids[A.id].push((await create({ assigned_agent_id: wa, objective: `Serial item ${i}` }, A.keys.operator, s, A)).id);
      ids[B.id].push((await create({ assigned_agent_id: wb, objective: `Parallel item ${i}` }, B.keys.operator, s, B)).id);
    }
    const most = { [A.id]: 0, [B.id]: 0 };
    const deadline = Date.now() + 30000;
    for (let finished = false; !finished && Date.now() < deadline;) {
      finished = true;
      for (const T2 of [A, B]) {
        const l = await s.request('GET', '/api/v1/tasks?limit=500', { key: T2.keys.viewer });
        assert.equal(l.status, 200, l.text);
        const mine = l.body.data.filter((x) => ids[T2.id].includes(x.id));
        const active = mine.filter((x) => x.status === 'thinking' || x.status === 'executing').length;
        most[T2.id] = Math.max(most[T2.id], active);
        if (mine.some((x) => !TERMINAL.includes(x.status))) finished = false;
      }
    }
    for (const id of [...ids[A.id], ...ids[B.id]]) {
      const key = ids[A.id].includes(id) ? A.keys.viewer : B.keys.viewer;
      assert.equal((await s.request('GET', `/api/v1/tasks/${id}`, { key })).body.status, 'completed');
    }
    assert.equal(most[A.id], 1, 'A never ran two tasks at once');
    assert.ok(most[B.id] >= 2, `B ran up to ${most[B.id]} at once (platform quota 3)`);
  } finally { await s.stop(); }
});

test('an agent is running while a task of its is in flight (even waiting for approval), deployed after; a pause wins', async () => {
  const agentOf = async (id) => (await srv.request('GET', api(`/agents/${id}`), { key: T.keys.viewer })).body;
  const gated = addAgent(srv, T.id, { name: 'Status gated', role: 'analyst', autonomy: 'approval_required' });
  assert.equal((await agentOf(gated)).status, 'deployed');
  const g = await create({ assigned_agent_id: gated, objective: 'Summarise the month' });
  await waitTask(srv, api(`/tasks/${g.id}`), (v) => v.status === 'waiting_input');
  assert.equal((await agentOf(gated)).status, 'running', 'waiting for an approval is in flight');
  assert.equal((await srv.request('POST', api(`/tasks/${g.id}:approve`), { key: T.keys.tenant_admin })).status, 200);
  assert.equal((await done(g.id)).status, 'completed');
  assert.equal((await agentOf(gated)).status, 'deployed');
  // two tasks: the agent stays running until the last one ends
  const w = addAgent(srv, T.id, { name: 'Status reviewer-bound', role: 'writer' });
  const a = await create({ assigned_agent_id: w, objective: 'Write a haiku', requires_approval: true });
  const b = await create({ assigned_agent_id: w, objective: 'Write a limerick', requires_approval: true });
  for (const x of [a, b]) await waitTask(srv, api(`/tasks/${x.id}`), (v) => v.status === 'reviewing');
  assert.equal((await agentOf(w)).status, 'running');
  assert.equal((await srv.request('POST', api(`/tasks/${a.id}:approve`), { key: T.keys.tenant_admin })).status, 200);
  assert.equal((await agentOf(w)).status, 'running', 'one task still in review');
  // a person pauses it: the end of its last task leaves it paused
  const p = await srv.request('POST', api(`/agents/${w}:pause`), { key: T.keys.tenant_admin });
  assert.equal(p.status, 200, p.text);
  assert.equal((await srv.request('POST', api(`/tasks/${b.id}:reject`), { key: T.keys.tenant_admin, body: {} })).status, 200);
  assert.equal((await agentOf(w)).status, 'paused');
});

test('a provider outage falls back (AP_FALLBACK_MODELS) and the task completes', async () => {
  const s = await startServer({ env: {
    AP_TASK_MODEL: 'openai/gpt-4o-mini',
    AP_PROVIDER_OPENAI_BASE_URL: 'http://127.0.0.1:9/v1', // nothing listens: connection refused
    AP_PROVIDER_OPENAI_API_KEY: 'sk-test-outage',
    AP_FALLBACK_MODELS: 'builtin/agentprov-mini',
    AP_RETRY_BASE_MS: '10',
  } });
  try {
    const U = await tenantWithKeys(s, 'Outage Tenant');
    const team = researchTeam(s, U.id);
    const t = await create({ group_id: team.group, objective: OBJECTIVE }, U.keys.operator, s, U);
    const fin = await done(t.id, s, U);
    assert.equal(fin.status, 'completed', JSON.stringify(fin.error));
    const st = await steps(t.id, s, U);
    const calls = st.filter((x) => x.kind === 'model_call');
    assert.ok(calls.length >= 2);
    for (const c of calls) {
      assert.equal(c.name, 'openai/gpt-4o-mini', 'the agent asked for its model');
      assert.match(c.result.model, /agentprov-mini$/, 'the fallback served');
    }
    // metered per task and agent
    const u = await s.request('GET', '/api/v1/llm/usage?group_by=model', { key: U.keys.tenant_admin });
    assert.equal(u.status, 200, u.text);
  } finally { await s.stop(); }
});

test('the CLI runs a task and follows it live: agentprov tasks run --agent NAME --follow', async () => {
  const { spawnSync } = await import('node:child_process');
  const { BIN } = await import('./lib/server.mjs');
  researchTeam(srv, T.id, { suffix: ' CLI' });
  const env = { ...process.env, AP_URL: srv.url, AP_API_KEY: T.keys.operator };
  const r = spawnSync(BIN, ['tasks', 'run', '--agent', 'Manager CLI', '--follow', OBJECTIVE], { env, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr + r.stdout);
  assert.match(r.stdout, /calls delegate_to_agent \{"agent_id":"[0-9a-f-]+","objective":"Research the EV battery market"\}/);
  assert.match(r.stdout, /Researcher CLI +queued → thinking/);
  assert.match(r.stdout, /executing → delegated {2}waiting for 2 subtask\(s\)/);
  assert.match(r.stdout, /status: +completed/);
  assert.match(r.stdout, /^## Research the EV battery market \(Researcher CLI\)\nThe EV battery market grew 40%/m);
  const id = r.stdout.match(/^task ([0-9a-f-]{36}) queued/m)[1];
  const g = spawnSync(BIN, ['tasks', 'tree', id], { env, encoding: 'utf8' });
  assert.equal(g.status, 0, g.stderr);
  assert.equal(JSON.parse(g.stdout).subtasks.length, 2);
  const c = spawnSync(BIN, ['tasks', 'cancel', id, '--reason', 'late'], { env, encoding: 'utf8' });
  assert.equal(c.status, 0, c.stderr);
  assert.match(c.stdout, /status +completed/, 'a finished task stays as it was');
  const bad = spawnSync(BIN, ['tasks', 'run', '--agent', 'Nobody', 'x'], { env, encoding: 'utf8' });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /assigned_agent_id "Nobody"/);
});

test('the README\'s first task on the demo team: split between both specialists, composed into a brief', async () => {
  const { spawnSync } = await import('node:child_process');
  const { readFileSync } = await import('node:fs');
  const { BIN } = await import('./lib/server.mjs');
  const s = await startServer({ env: { AP_DEMO: '1' } });
  try {
    const key = readFileSync(`${s.dataDir}/demo.key`, 'utf8').trim();
    const env = { ...process.env, AP_URL: s.url, AP_API_KEY: key };
    const r = spawnSync(BIN, ['tasks', 'run', '--agent', 'Manager', '--follow',
      'Research the EV battery market and write a one-page brief'], { env, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr + r.stdout);
    // one delegation per part, in one turn: research → Researcher, the brief → Analyst
    const calls = r.stdout.split('\n').filter((l) => /Manager +calls delegate_to_agent/.test(l));
    assert.equal(calls.length, 2, r.stdout);
    assert.match(calls[0], /"objective":"Research the EV battery market"/);
    assert.match(calls[1], /"objective":"Write a one-page brief"/);
    assert.match(r.stdout, /Researcher +created: Research the EV battery market$/m);
    assert.match(r.stdout, /Analyst +created: Write a one-page brief$/m);
    // the workers answer from the sample knowledge base: nobody escalates
    assert.doesNotMatch(r.stdout, /escalat/);
    assert.doesNotMatch(r.stdout, /I have no information/);
    // the composed brief: a title, a section per specialist, the sample data
    assert.match(r.stdout, /^output: +# Research the EV battery market and write a one-page brief$/m);
    assert.match(r.stdout, /^## Research the EV battery market \(Researcher\)\n.*EV battery market.*\(sample data\)/m);
    assert.match(r.stdout, /^## Write a one-page brief \(Analyst\)\n.*\(sample data\)/m);
    const conf = Number(r.stdout.match(/^confidence: +([0-9.]+)$/m)[1]);
    assert.ok(conf >= 0.5, `confidence ${conf}`);
    assert.match(r.stdout, /status: +completed/);
    // numbers read as written: no 0.10000000000000001 in the event lines
    assert.doesNotMatch(r.stdout, /\d\.\d{12,}/);
  } finally { await s.stop(); }
});

test('a task runs the agent\'s deployed version, not a newer draft', async () => {
  const k = T.keys.tenant_admin;
  // the seeded teams of the tests above count against max_agents
  const ent = await srv.request('PATCH', `/api/v1/tenants/${T.id}`, { body: { max_agents: 1000 } });
  assert.equal(ent.status, 200, ent.text);
  const a = await srv.request('POST', '/api/v1/agents', { key: k, body: { name: 'Versioned', role: 'Analyst', capabilities: ['numbers'] } });
  assert.equal(a.status, 201, a.text);
  for (const op of ['validate', 'deploy'])
    assert.equal((await srv.request('POST', `/api/v1/agents/${a.body.id}:${op}`, { key: k })).status, 200);
  const up = await srv.request('PATCH', `/api/v1/agents/${a.body.id}`, { key: k, body: { role: 'Poet' } });
  assert.equal(up.status, 200, up.text);
  const t = await create({ assigned_agent_id: 'Versioned', objective: 'Count the numbers' });
  assert.equal(t.agent_version, 1);
  await done(t.id);
  const ctx = (await steps(t.id))[0];
  assert.equal(ctx.kind, 'context');
  assert.match(ctx.result.system, /^You are Versioned, Analyst\./, 'version 1, not the draft v2 (Poet)');
});

// Races between people and the task runner: approvals, rejections,
// cancels and posted messages land while the runner is stepping the same task trees (charging
// parents, waking them, writing events and audit entries).  None of them
// may come back 503 "database is busy" (a deadlock or serialization
// failure): writers of task trees take their locks in one order.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, tenantWithKeys } from './lib/server.mjs';
import { researchTeam, waitTask } from './lib/team.mjs';

const OBJECTIVE = 'Research the EV battery market and write a one-page brief';
const TERMINAL = ['completed', 'failed', 'cancelled'];

let srv;
let T;
before(async () => {
  srv = await startServer({ env: { AP_TASK_WORKERS: '4', AP_TASK_SCAN_MS: '50' } });
  T = await tenantWithKeys(srv, 'Race Tenant');
});
after(async () => { await srv?.stop(); });

const api = (p) => `/api/v1/tenants/${T.id}${p}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function create(body) {
  const r = await srv.request('POST', api('/tasks'), { key: T.keys.operator, body });
  assert.equal(r.status, 201, r.text);
  return r.body;
}

test('approve, reject, cancel and messages racing the runner never answer 503', async () => {
  const team = researchTeam(srv, T.id, { autonomy: 'supervised', suffix: ' R' });
  const plain = researchTeam(srv, T.id, { suffix: ' P' });
  const ROUNDS = 12;
  const busy = [];
  const check = (what, r) => {
    if (r.status === 503) busy.push(`${what}: ${r.text}`);
    assert.notEqual(r.status, 500, r.text);
  };
  // supervised trees: approve each delegation as soon as it is asked for,
  // while the subtasks already delegated keep running
  const approveTree = async (t, i) => {
    const deadline = Date.now() + 60000;
    while (Date.now() < deadline) {
      const v = (await srv.request('GET', api(`/tasks/${t.id}`), { key: T.keys.viewer })).body;
      if (TERMINAL.includes(v.status)) return;
      if (v.status === 'waiting_input') {
        const act = i % 5 === 4 ? ':reject' : ':approve';
        check(act, await srv.request('POST', api(`/tasks/${t.id}${act}`), { key: T.keys.project_admin, body: { comment: 'go' } }));
      } else await sleep(5);
    }
    throw new Error(`task ${t.id} did not finish`);
  };
  // plain trees: cancel at a random moment while subtasks run
  const cancelTree = async (t, i) => {
    await sleep(20 + (i * 37) % 200);
    check(':cancel', await srv.request('POST', api(`/tasks/${t.id}:cancel`), { key: T.keys.operator, body: { reason: 'race' } }));
  };
  // messages posted on the trees while they run
  const chatter = async (t) => {
    for (let k = 0; k < 4; k++) {
      await sleep(15 * k);
      const r = await srv.request('POST', api('/messages'), { key: T.keys.operator, body: { task_id: t.id, message_type: 'update', content: { k } } });
      check('message', r);
      assert.equal(r.status, 201, r.text);
    }
  };
  const jobs = [];
  for (let i = 0; i < ROUNDS; i++) {
    const a = await create({ assigned_agent_id: team.manager, objective: OBJECTIVE });
    const b = await create({ group_id: plain.group, objective: OBJECTIVE });
    jobs.push(approveTree(a, i), cancelTree(b, i), chatter(i % 2 ? a : b));
  }
  await Promise.all(jobs);
  assert.deepEqual(busy, [], 'no request met a busy database');
  // everything settles
  const all = (await srv.request('GET', api('/tasks?limit=500'), { key: T.keys.viewer })).body.data;
  for (const t of all) await waitTask(srv, api(`/tasks/${t.id}`), (x) => TERMINAL.includes(x.status), 60000, T.keys.viewer);
});

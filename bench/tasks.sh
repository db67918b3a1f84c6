#!/usr/bin/env bash
# bench/tasks.sh: the task runner on SQLite with the built-in model
# (bench/tasks/tasks_bench.c), several runs; writes (replaces) the
# "## Tasks" section of bench/RESULTS.md.  `make bench` runs it after the
# REST part; it also runs standalone:
#
#   bash bench/tasks.sh          # TASKS_RUNS=3 TASKS_N=5000 TASKS_FLOOD=10000 TASKS_WORKERS=2
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
RUNS=${TASKS_RUNS:-3}
N=${TASKS_N:-5000}
FLOOD=${TASKS_FLOOD:-10000}
WORKERS=${TASKS_WORKERS:-2}
make --no-print-directory build/bench/tasks_bench >/dev/null
DATA="$(mktemp -d /tmp/agentprov-tasks-bench.XXXXXX)"
trap 'rm -rf "$DATA"' EXIT
rows=""
for i in $(seq "$RUNS"); do
  rm -rf "$DATA/d"; mkdir -p "$DATA/d"
  out=$(build/bench/tasks_bench "$DATA/d" --tasks "$N" --flood "$FLOOD" --workers "$WORKERS")
  rows+=$(node -e '
    const r = JSON.parse(process.argv[1]); const f = (x, d = 0) => Number(x).toFixed(d);
    console.log(`| run ${process.argv[2]} | ${f(r.end_to_end_per_s)} | ${f(r.live_end_to_end_per_s)} | ${f(r.run_per_s)} | ${f(r.ms_per_transition_wall, 3)} ms | ${f(r.sched_push_pop_us, 2)} µs | ${f(r.fairness_b_start_p50_ms)} / ${f(r.fairness_b_start_p99_ms)} / ${f(r.fairness_b_start_max_ms)} ms (A queued: ${r.fairness_a_queued_at_start}) | ${f(r.scenario_completion_rate * 100, 1)}% of ${r.scenario_tasks} | ${f(r.scenario_mean_task_ms)} ms |`);
  ' "$out" "$i")$'\n'
done
section=$(cat <<EOT
## Tasks

Written by \`bash bench/tasks.sh\` (part of \`make bench\`) on $(date -u +%Y-%m-%dT%H:%MZ).
Machine: $(nproc) cores, $(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | sed 's/^ //'), $(uname -sr).
Command: \`build/bench/tasks_bench DIR --tasks $N --flood $FLOOD --workers $WORKERS\` (release build, SQLite WAL,
built-in model, in process: no HTTP), $RUNS runs.

- **End to end**: $N simple tasks (a worker agent reads its context, calls the model once and
  completes: 4 steps, 3 status changes each) created through \`ap_orch_task_create\`, then run by
  $WORKERS runner threads until all are completed; *live*: creation and running at the same time.
  *Run only*: the runner's part.
- **Per transition**: the runner's wall time divided by the status transitions it made (everything
  included: claim, steps, events); *scheduler*: one in-memory push + pop.
- **Fairness**: tenant A enqueues $FLOOD tasks; while they run, tenant B creates one task every
  20 ms (100 tasks); B's start latency (started_at − created_at) p50 / p99 / max, default tenant
  quota (three quarters of the runners). *A queued*: A's tasks still queued when B's first
  task was created.
- **Scenarios**: 40 × 5 root tasks (a manager delegating to two specialists and collecting, a
  depth-limited manager, an escalation on low confidence, a worker question, a manager with
  nothing to delegate), all queued at once: completion rate and mean task time (root tasks).

| run | end to end tasks/s | live tasks/s | run only tasks/s | per transition | scheduler | fairness: B start p50 / p99 / max | scenarios completed | mean task time |
|---|---|---|---|---|---|---|---|---|
${rows}
Targets (2 cores, SQLite): ≥ 1,000 simple tasks/s end to end; ≤ 0.2 ms scheduling overhead per
transition; B's single task starts within 1 s at p99 while A has 10,000 queued; ≥ 90 % of the
scenario tasks complete, mean task time < 30 s.

Notes: steps of a task share one transaction (up to 16), and the built-in model answers inside
it; with a remote model each model call is its own durable step (written *started* before the
call), so tasks/s then follow the provider's latency. SQLite serialises writers, so more runner
threads do not add throughput on this backend.
EOT
)
f=bench/RESULTS.md
if grep -q '^## Tasks' "$f" 2>/dev/null; then
  # replace from "## Tasks" to the next "## " heading (or the end)
  awk -v sec="$section" '
    /^## Tasks/ {print sec; skip=1; next}
    skip && /^## / {skip=0}
    !skip {print}' "$f" >"$f.tmp" && mv "$f.tmp" "$f"
else
  printf '\n%s\n' "$section" >>"$f"
fi
echo "$section"

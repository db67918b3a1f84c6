#!/usr/bin/env bash
# make bench: drives the release build with wrk on a fresh SQLite data dir
# and writes bench/RESULTS.md (machine, commands, figures).
#
# Figures: GET of one tenant-scoped resource with key auth (64 connections),
# POST that writes a row and its audit entry, idle RSS, start-to-ready.
# wrk runs on the same 2 cores as the server, so the figures are a floor.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DUR=${BENCH_SECONDS:-10}
CONNS=${BENCH_CONNECTIONS:-64}
DATA="$(mktemp -d /tmp/agentprov-bench.XXXXXX)"
LOG="$DATA/server.log"
cleanup() { [ -n "${PID:-}" ] && kill -TERM "$PID" 2>/dev/null; sleep 0.3; rm -rf "$DATA"; }
trap cleanup EXIT

run_case() { # label log_level
  local label=$1 level=$2
  rm -rf "$DATA/d"
  eval "$(BENCH_LOG_LEVEL=$level node bench/setup.mjs ./agentprov "$DATA/d" "$LOG")"
  sleep 1
  local rss_idle
  rss_idle=$(awk '/VmRSS/ {print $2}' /proc/$PID/status)
  local get_cmd="wrk -t2 -c$CONNS -d${DUR}s --latency -H 'Authorization: Bearer \$KEY' $URL/api/v1/users/\$USER"
  local get_out post_out
  get_out=$(wrk -t2 -c"$CONNS" -d"${DUR}s" --latency -H "Authorization: Bearer $KEY" "$URL/api/v1/users/$USER")
  post_out=$(wrk -t2 -c"$CONNS" -d"${DUR}s" --latency -s bench/post_user.lua -H "Authorization: Bearer $KEY" "$URL")
  local rss_after
  rss_after=$(awk '/VmRSS/ {print $2}' /proc/$PID/status)
  kill -TERM "$PID"; wait_gone "$PID"; PID=
  local get_rps get_p50 get_p99 post_rps post_p50 post_p99 errs
  get_rps=$(awk '/Requests\/sec/ {print $2}' <<<"$get_out")
  get_p50=$(awk '$1=="50%" {print $2}' <<<"$get_out")
  get_p99=$(awk '$1=="99%" {print $2}' <<<"$get_out")
  post_rps=$(awk '/Requests\/sec/ {print $2}' <<<"$post_out")
  post_p50=$(awk '$1=="50%" {print $2}' <<<"$post_out")
  post_p99=$(awk '$1=="99%" {print $2}' <<<"$post_out")
  errs=$(grep -h "Non-2xx" <<<"$get_out$post_out" || true)
  printf '| %s | %s | %s | %s | %s | %s | %s | %s MB | %s MB | %s ms |\n' "$label" "$level" \
    "$get_rps" "$get_p50" "$get_p99" "$post_rps" "$post_p50 / $post_p99" \
    "$(awk "BEGIN{printf \"%.1f\", $rss_idle/1024}")" "$(awk "BEGIN{printf \"%.1f\", $rss_after/1024}")" "$START_MS" >>"$DATA/rows"
  [ -z "$errs" ] || echo "  $label: $errs" >>"$DATA/notes"
  echo "$get_cmd" >"$DATA/get_cmd"
}
wait_gone() { for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.05; done; }

make --no-print-directory agentprov >/dev/null
: >"$DATA/rows"; : >"$DATA/notes"
for i in 1 2 3; do run_case "run $i" info; done
run_case "run 4" warn

{
  echo "# Benchmarks"
  echo
  echo "Written by \`make bench\` (bench/run.sh) on $(date -u +%Y-%m-%dT%H:%MZ)."
  echo
  echo "Machine: $(nproc) cores, $(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | sed 's/^ //'), $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -sr)."
  echo "Server: release build (\`-O2\`), SQLite (WAL) in a fresh data dir, $(nproc) server workers (\`--threads\`)."
  echo "Load: wrk (Debian), 2 threads, $CONNS connections, ${DUR}s per case, on the same cores as the server."
  echo
  echo "- GET: \`wrk -t2 -c$CONNS -d${DUR}s --latency -H 'Authorization: Bearer <tenant_admin key>' <url>/api/v1/users/<id>\` — key lookup + tenant check + one tenant-scoped read."
  echo "- POST: \`wrk ... -s bench/post_user.lua <url>\` — POST /api/v1/users with a new email each time: a user row and its hash-chained audit entry in one transaction."
  echo "- Idle RSS: VmRSS one second after start-up and set-up; after-load RSS once both loads ran."
  echo "- Start to ready: from spawning the process to the first 200 of /readyz (bench/setup.mjs; includes migration of an empty database and writing the admin key)."
  echo
  echo "| case | log level | GET req/s | GET p50 | GET p99 | POST req/s | POST p50 / p99 | idle RSS | RSS after load | start to ready |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  cat "$DATA/rows"
  echo
  echo "Targets (2 cores, SQLite): GET ≥ 30,000 req/s with p99 ≤ 5 ms at 64 connections; POST ≥ 5,000/s; idle RSS ≤ 20 MB; start to ready ≤ 100 ms."
  if [ -s "$DATA/notes" ]; then echo; echo "Non-2xx responses seen:"; cat "$DATA/notes"; fi
  if [ -f bench/NOTES.md ]; then echo; cat bench/NOTES.md; fi
} >bench/RESULTS.md
# the gateway comparison (fake direct / agentprov / Portkey) appends its
# "## Gateway" section; BENCH_SKIP_GATEWAY=1 leaves it out
if [ "${BENCH_SKIP_GATEWAY:-0}" != 1 ]; then
  echo >>bench/RESULTS.md
  bash bench/gateway.sh >/dev/null
fi
# the task runner (bench/tasks.sh) appends its "## Tasks" section;
# BENCH_SKIP_TASKS=1 leaves it out
if [ "${BENCH_SKIP_TASKS:-0}" != 1 ]; then
  bash bench/tasks.sh >/dev/null
fi
# the vector index against hnswlib (bench/vec/run.sh) appends its
# "## Vector index" section; BENCH_SKIP_VEC=1 leaves it out
if [ "${BENCH_SKIP_VEC:-0}" != 1 ]; then
  bash bench/vec/run.sh >/dev/null
fi
# agent memory through the API (bench/memory/run.sh) appends "## Agent
# memory"; BENCH_SKIP_MEMORY=1 leaves it out
if [ "${BENCH_SKIP_MEMORY:-0}" != 1 ]; then
  echo >>bench/RESULTS.md
  bash bench/memory/run.sh
  # in process: the hot tier with many conversations, and the memory
  # index's scan and graph path (bench/memory/hot.sh, blend.sh)
  {
    echo
    echo "### Hot context (\`bash bench/memory/hot.sh\`, $(date -u +%Y-%m-%dT%H:%MZ))"
    echo
    bash bench/memory/hot.sh 2>/dev/null
    echo
    echo "### The scan and the graph in process (\`BENCH_BLEND_SIZES=100000 BENCH_BLEND_KINDS=\"text clustered\" bash bench/memory/blend.sh\`)"
    echo
    BENCH_BLEND_SIZES=100000 BENCH_BLEND_KINDS="text clustered" bash bench/memory/blend.sh 2>/dev/null
  } >>bench/RESULTS.md
fi
cat bench/RESULTS.md

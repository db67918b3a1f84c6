#!/usr/bin/env bash
# Agent memory through the API: for each size of BENCH_MEMORIES (default
# "10000 100000"), a fresh server, that many memories loaded into one agent
# with the builtin embedder, then recall (POST …/memory:recall, limit 10)
# measured with wrk at 1 and BENCH_MEMORY_CONNECTIONS connections.  A
# partition of --memory-hnsw-min (20,000) memories or more gets an HNSW
# graph in the background and is calibrated on the first recalls (the
# graph, or the scan where the graph costs more, docs/memory.md); the run
# waits for both before measuring.  Then the server is restarted on the
# same data directory: the partition file saved at shutdown is loaded at
# start.  Appends "## Agent memory" to bench/RESULTS.md.  The in-process
# benchmark of the graph path against the scan is bench/memory/blend.sh;
# the pure vector index, bench/vec.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
SIZES=${BENCH_MEMORIES:-10000 100000}
DUR=${BENCH_SECONDS:-10}
CONNS=${BENCH_MEMORY_CONNECTIONS:-8}
DATA="$(mktemp -d /tmp/agentprov-membench.XXXXXX)"
PID=""
cleanup() { [ -n "$PID" ] && kill -TERM "$PID" 2>/dev/null; sleep 0.5; rm -rf "$DATA"; }
trap cleanup EXIT
make --no-print-directory agentprov >/dev/null

wait_log() { # pattern, seconds
  for _ in $(seq "$(( $2 * 10 ))"); do grep -q "$1" "$LOG" && return 0; sleep 0.1; done
  return 1
}

ROWS=""
NOTES=""
ERRS=""
for N in $SIZES; do
  D="$DATA/d$N"
  LOG="$DATA/server$N.log"
  eval "$(BENCH_LOG_LEVEL=info node bench/setup.mjs ./agentprov "$D" "$LOG")"
  AGENT=$(node -e 'console.log(crypto.randomUUID())')
  NOW=$(date -u +%Y-%m-%dT%H:%M:%S.000Z)
  sqlite3 -cmd ".timeout 10000" "$D/agentprov.db" \
    "INSERT INTO agents (id, tenant_id, name, role, created_at, updated_at) VALUES ('$AGENT', '$TENANT', 'bench-agent', 'worker', '$NOW', '$NOW');"
  eval "$(node bench/memory/load.mjs "$URL" "$TENANT" "$AGENT" "$KEY" "$N" "$DATA/vocab")"
  RSS_LOADED=$(awk '/VmRSS/ {print $2}' /proc/$PID/status)
  export PATH_RECALL="/api/v1/tenants/$TENANT/agents/$AGENT/memory:recall" VOCAB="$DATA/vocab"
  # the first recall loads the agent's partition from the database
  T0=$(date +%s%N)
  curl -sf -o /dev/null -H "Authorization: Bearer $KEY" -H 'content-type: application/json' \
    -d '{"query":"warm up"}' "$URL$PATH_RECALL"
  COLD_MS=$(( ($(date +%s%N) - T0) / 1000000 ))
  PATHNOTE="no graph below 20,000 memories: the int8 scan answers"
  if [ "$N" -ge 20000 ]; then
    T0=$(date +%s)
    wait_log '"memory index graphs built"' 1800 || { echo "no graph after 30 min" >&2; exit 1; }
    GRAPH_S=$(( $(date +%s) - T0 ))
    eval "$(node bench/memory/calibrate.mjs "$URL" "$PATH_RECALL" "$KEY" "$VOCAB" "$LOG" 3000)"
    PATHNOTE="HNSW graph built in the background in ${GRAPH_S} s; calibrated on $CAL_RECALLS recalls: $CAL_SEARCH$([ "$CAL_SEARCH" = graph ] && echo " at ef $CAL_EF" || true)"
  fi
  for C in 1 "$CONNS"; do
    FROM=$(wc -l <"$LOG")
    OUT=$(wrk -t1 -c"$C" -d"${DUR}s" --latency -s bench/memory/recall.lua -H "Authorization: Bearer $KEY" "$URL")
    RPS=$(awk '/Requests\/sec/ {print $2}' <<<"$OUT")
    P50=$(awk '$1=="50%" {print $2}' <<<"$OUT")
    P90=$(awk '$1=="90%" {print $2}' <<<"$OUT")
    P99=$(awk '$1=="99%" {print $2}' <<<"$OUT")
    # the server's own time per recall (its request log), without the client's
    SRV=$(tail -n +"$((FROM + 1))" "$LOG" | grep -h 'memory:recall' |
      sed -n 's/.*"duration_ms":\([0-9.]*\).*/\1/p' | sort -n |
      awk '{v[NR]=$1} END {if (NR) printf "%.2fms / %.2fms", v[int(NR*0.5+0.5)], v[int(NR*0.99+0.5)]}')
    ROWS+="| $N | $C | $RPS | $P50 | $P90 | $P99 | $SRV | $(cut -d' ' -f1 /proc/loadavg) |"$'\n'
    ERRS+=$(grep -h "Non-2xx" <<<"$OUT" || true)
  done
  RSS_AFTER=$(awk '/VmRSS/ {print $2}' /proc/$PID/status)
  # a restart: the partition file written at shutdown is loaded at start
  kill -TERM "$PID"
  for _ in $(seq 600); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
  PID=""
  START=""
  if [ "$N" -ge 20000 ]; then
    : >"$LOG"
    T0=$(date +%s%N)
    PID=$(node -e '
      const { spawn } = require("node:child_process"); const fs = require("node:fs");
      const out = fs.openSync(process.argv[3], "a");
      const c = spawn(process.argv[1], ["serve", "--listen", process.argv[4], "--data-dir", process.argv[2]],
        { stdio: ["ignore", "ignore", out], detached: true });
      console.log(c.pid); c.unref();' ./agentprov "$D" "$LOG" "${URL#http://}")
    wait_log '"memory index loaded"' 600 || true
    LOADED_MS=$(( ($(date +%s%N) - T0) / 1000000 ))
    FILE_LINE=$(grep -h '"memory index file loaded"' "$LOG" | head -1 || true)
    FILE_MS=$(sed -n 's/.*"ms":\([0-9.]*\).*/\1/p' <<<"$FILE_LINE" | cut -d. -f1)
    T0=$(date +%s%N)
    curl -sf -o /dev/null -H "Authorization: Bearer $KEY" -H 'content-type: application/json' \
      -d '{"query":"after the restart"}' "$URL$PATH_RECALL"
    FIRST_MS=$(( ($(date +%s%N) - T0) / 1000000 ))
    START="; after a restart the partition file (written at shutdown) was loaded at start in ${FILE_MS:-?} ms (start to partitions loaded: ${LOADED_MS} ms; graph kept: $(grep -q '"memory index graphs built"' "$LOG" && echo no || echo yes)), the first recall then took ${FIRST_MS} ms"
    kill -TERM "$PID"
    for _ in $(seq 600); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    PID=""
  fi
  NOTES+="- $N memories: $REMEMBER_PER_S remember/s; first recall ${COLD_MS} ms (loads the partition from the database); $PATHNOTE$START. RSS $(awk "BEGIN{printf \"%.0f\", $RSS_LOADED/1024}") MB after the load, $(awk "BEGIN{printf \"%.0f\", $RSS_AFTER/1024}") MB after the recalls."$'\n'
done
{
  echo "## Agent memory"
  echo
  echo "Written by \`make bench\` (bench/memory/run.sh) on $(date -u +%Y-%m-%dT%H:%MZ); same machine and server as above (log level info)."
  echo
  echo "- Load: memories into one agent through \`POST /api/v1/tenants/{t}/agents/{a}/memory\` (16 in flight; builtin embedder, 384 dimensions; each a row, its embedding, the agent's change sequence and an audit entry)."
  echo "- Recall: \`wrk -t1 -c<connections> -d${DUR}s --latency -s bench/memory/recall.lua\` — \`POST …/memory:recall\` with three random vocabulary words, limit 10: the agent and its change sequence (one read transaction), the query embedded, the partition searched (the scan or the calibrated graph, with the recall filters and the blended score), the hits re-read by id; access counts are written by the flusher afterwards."
  printf '%s' "$NOTES"
  echo
  echo "| memories | connections | recall req/s | p50 | p90 | p99 | server p50 / p99 | load average |"
  echo "|---|---|---|---|---|---|---|---|"
  printf '%s' "$ROWS"
  echo
  echo "Target: recall p99 ≤ 10 ms at 100k memories with the builtin embedder."
  [ -z "$ERRS" ] || echo "Non-2xx responses: $ERRS"
} >>bench/RESULTS.md

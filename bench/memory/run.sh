#!/usr/bin/env bash
# Agent memory through the API: loads BENCH_MEMORIES (default 100000)
# memories into one agent with the builtin embedder, then measures recall
# (POST …/memory:recall, limit 10) with wrk.  Appends "## Agent memory" to
# bench/RESULTS.md.  The pure vector-index benchmark is bench/vec.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
N=${BENCH_MEMORIES:-100000}
DUR=${BENCH_SECONDS:-10}
CONNS=${BENCH_MEMORY_CONNECTIONS:-8}
DATA="$(mktemp -d /tmp/agentprov-membench.XXXXXX)"
cleanup() { [ -n "${PID:-}" ] && kill -TERM "$PID" 2>/dev/null; sleep 0.5; rm -rf "$DATA"; }
trap cleanup EXIT
make --no-print-directory agentprov >/dev/null
eval "$(BENCH_LOG_LEVEL=info node bench/setup.mjs ./agentprov "$DATA/d" "$DATA/server.log")"
AGENT=$(node -e 'console.log(crypto.randomUUID())')
NOW=$(date -u +%Y-%m-%dT%H:%M:%S.000Z)
sqlite3 -cmd ".timeout 10000" "$DATA/d/agentprov.db" \
  "INSERT INTO agents (id, tenant_id, name, role, created_at, updated_at) VALUES ('$AGENT', '$TENANT', 'bench-agent', 'worker', '$NOW', '$NOW');"
eval "$(node bench/memory/load.mjs "$URL" "$TENANT" "$AGENT" "$KEY" "$N" "$DATA/vocab")"
RSS_LOADED=$(awk '/VmRSS/ {print $2}' /proc/$PID/status)
# the first recall loads the agent's partition of the index from the database
T0=$(date +%s%N)
curl -sf -o /dev/null -H "Authorization: Bearer $KEY" -H 'content-type: application/json' \
  -d '{"query":"warm up"}' "$URL/api/v1/tenants/$TENANT/agents/$AGENT/memory:recall"
COLD_MS=$(( ($(date +%s%N) - T0) / 1000000 ))
# with AP_MEMORY_HNSW_MIN set, a partition that large gets an HNSW graph,
# built in the background: wait for it (up to 15 minutes)
GRAPH="no HNSW graph (AP_MEMORY_HNSW_MIN unset: the int8 scan chooses the candidates)"
if [ -n "${AP_MEMORY_HNSW_MIN:-}" ] && [ "$N" -ge "$AP_MEMORY_HNSW_MIN" ]; then
  T0=$(date +%s)
  for _ in $(seq 900); do grep -q '"memory index graphs built"' "$DATA/server.log" && break; sleep 1; done
  GRAPH="HNSW graph (AP_MEMORY_HNSW_MIN=$AP_MEMORY_HNSW_MIN) built in the background in $(( $(date +%s) - T0 )) s before the recalls below"
fi
export PATH_RECALL="/api/v1/tenants/$TENANT/agents/$AGENT/memory:recall" VOCAB="$DATA/vocab"
ROWS=""
ERRS=""
for C in 1 "$CONNS"; do
  OUT=$(wrk -t1 -c"$C" -d"${DUR}s" --latency -s bench/memory/recall.lua -H "Authorization: Bearer $KEY" "$URL")
  RPS=$(awk '/Requests\/sec/ {print $2}' <<<"$OUT")
  P50=$(awk '$1=="50%" {print $2}' <<<"$OUT")
  P90=$(awk '$1=="90%" {print $2}' <<<"$OUT")
  P99=$(awk '$1=="99%" {print $2}' <<<"$OUT")
  ROWS+="| $N | $C | $RPS | $P50 | $P90 | $P99 |"$'\n'
  ERRS+=$(grep -h "Non-2xx" <<<"$OUT" || true)
done
RSS_AFTER=$(awk '/VmRSS/ {print $2}' /proc/$PID/status)
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)
{
  echo "## Agent memory"
  echo
  echo "Written by \`make bench\` (bench/memory/run.sh) on $(date -u +%Y-%m-%dT%H:%MZ); same machine and server as above (log level info)."
  echo
  echo "- Load: $N memories into one agent through \`POST /api/v1/tenants/{t}/agents/{a}/memory\` (16 in flight; builtin embedder, 384 dimensions; each a row, its embedding and an audit entry): $REMEMBER_PER_S remember/s."
  echo "- First recall after the load: ${COLD_MS} ms (loads the agent's index partition from the database); $GRAPH."
  echo "- Recall: \`wrk -t1 -c<connections> -d${DUR}s --latency -s bench/memory/recall.lua\` — \`POST …/memory:recall\` with three random vocabulary words, limit 10: embed the query, choose 72 candidates (an int8 scan of all, or the HNSW graph), re-score them exactly with filters and the blended score, re-read and count the 10 hits in one write transaction."
  echo "- RSS: $(awk "BEGIN{printf \"%.0f\", $RSS_LOADED/1024}") MB after the load (index not loaded yet), $(awk "BEGIN{printf \"%.0f\", $RSS_AFTER/1024}") MB after the recalls (the partition holds float vectors and int8 codes: about 2 KB per memory). Load average during the run: $LOADAVG (the machine is shared)."
  echo
  echo "| memories | connections | recall req/s | p50 | p90 | p99 |"
  echo "|---|---|---|---|---|---|"
  printf '%s' "$ROWS"
  echo
  echo "Target: recall p99 ≤ 10 ms at 100k memories with the builtin embedder."
  [ -z "$ERRS" ] || echo "Non-2xx responses: $ERRS"
} >>bench/RESULTS.md

#!/usr/bin/env bash
# bench/gateway.sh: the LLM gateway's overhead, in one run on one machine
# with one load tool: the fake upstream directly, through agentprov, and
# through Portkey's open-source gateway (@portkey-ai/gateway, a devDependency).
# Writes (replaces) the "## Gateway" section at the end of bench/RESULTS.md.
# `make bench` runs it after bench/run.sh's part; it also runs standalone.
#
#   bash bench/gateway.sh            # GW_RUNS=3 GW_SECONDS=5 GW_RATES="2000 500"
#
# 1. paced latency: wrk + bench/gateway/chat.lua at GW_RATES req/s (50 conns);
#    added latency = through a gateway minus direct, same run, same settings;
# 2. maximum throughput: wrk -t2 -c64, closed loop;
# 3. streaming time to first token: bench/gateway/stream.mjs ttft;
# 4. GW_SOAK_STREAMS (default 5000) concurrent streams through agentprov,
#    ~10 s each: completions, errors, agentprov's peak VmRSS.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
RUNS=${GW_RUNS:-3}
DUR=${GW_SECONDS:-5}
RATES=${GW_RATES:-2000 500}
PACE_CONNS=${GW_PACE_CONNECTIONS:-50}
CONNS=${GW_CONNECTIONS:-64}
SOAK=${GW_SOAK_STREAMS:-5000}
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

[ -f node_modules/@portkey-ai/gateway/build/start-server.js ] ||
  { echo "gateway.sh: @portkey-ai/gateway missing: run npm ci (scripts/deps.sh)" >&2; exit 1; }
# GW_AGENTPROV_BIN: measure another build (e.g. one of the last commit while
# src/ has uncommitted work); default: `make agentprov` of this tree
if [ -n "${GW_AGENTPROV_BIN:-}" ]; then make --no-print-directory build/fake-upstream >/dev/null
else make --no-print-directory agentprov build/fake-upstream >/dev/null; fi

WORK="$(mktemp -d /tmp/agentprov-gwbench.XXXXXX)"
# copies, so a rebuild during the run cannot change what is measured
cp "${GW_AGENTPROV_BIN:-agentprov}" "$WORK/agentprov"; cp build/fake-upstream "$WORK/fake-upstream"
OUT="$WORK/results"; : >"$OUT"
cleanup() {
  for p in ${PK_PID:-} ${AP_PID:-} ${FAKE_PID:-}; do kill -TERM "$p" 2>/dev/null || true; done
  sleep 0.5; rm -rf "$WORK"
}
trap cleanup EXIT
eval "$(node bench/gateway/start.mjs "$WORK/agentprov" "$WORK/fake-upstream" "$WORK")"
echo "gateway.sh: fake $FAKE_URL (pid $FAKE_PID), agentprov $AP_URL (pid $AP_PID), portkey $PK_URL (pid $PK_PID)" >&2

PK_ROUTE=(-H 'x-portkey-provider: openai' -H "x-portkey-custom-host: $FAKE_URL/v1")
PK_FWD='x-portkey-forward-headers: x-fake-chunks,x-fake-chunk-delay-ms,x-fake-latency-ms'
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
pid_of() { case $1 in fake) echo "$FAKE_PID";; agentprov) echo "$AP_PID";; portkey) echo "$PK_PID";; esac; }
wrk_target() { # target wrk-args...  (URL, model and auth per target)
  local t=$1; shift
  case $t in
    fake) GW_MODEL=gpt-4o-mini wrk "$@" -s bench/gateway/chat.lua -H "Authorization: Bearer $UPSTREAM_KEY" "$FAKE_URL" ;;
    agentprov) GW_MODEL=openai/gpt-4o-mini wrk "$@" -s bench/gateway/chat.lua -H "Authorization: Bearer $AP_KEY" "$AP_URL" ;;
    portkey) GW_MODEL=gpt-4o-mini wrk "$@" -s bench/gateway/chat.lua -H "Authorization: Bearer $UPSTREAM_KEY" "${PK_ROUTE[@]}" "$PK_URL" ;;
  esac
}
stream_target() { # target mode args...
  local t=$1 mode=$2; shift 2
  case $t in
    fake) node bench/gateway/stream.mjs "$mode" --url "$FAKE_URL" --header "authorization: Bearer $UPSTREAM_KEY" "$@" ;;
    agentprov) node bench/gateway/stream.mjs "$mode" --url "$AP_URL" --model openai/gpt-4o-mini --header "authorization: Bearer $AP_KEY" "$@" ;;
    portkey) node bench/gateway/stream.mjs "$mode" --url "$PK_URL" --header "authorization: Bearer $UPSTREAM_KEY" \
               --header 'x-portkey-provider: openai' --header "x-portkey-custom-host: $FAKE_URL/v1" --header "$PK_FWD" "$@" ;;
  esac
}

# warm-up: a few seconds through each target (Node's JIT, connection pools)
for t in fake agentprov portkey; do wrk_target $t -t2 -c16 -d2s >/dev/null; done

for run in $(seq "$RUNS"); do
  for rate in $RATES; do
    for t in fake agentprov portkey; do
      echo "gateway.sh: run $run: $t paced at $rate req/s" >&2
      r=$(GW_RATE=$rate GW_THREADS=2 wrk_target $t -t2 -c"$PACE_CONNS" -d"${DUR}s" | grep '^GWRESULT' | cut -d' ' -f2-)
      echo "paced $t $run $rate $r" >>"$OUT"
    done
  done
  for t in fake agentprov portkey; do
    echo "gateway.sh: run $run: $t max throughput" >&2
    declare -A c0=(); for p in fake agentprov portkey; do c0[$p]=$(cpu_ticks "$(pid_of $p)"); done
    r=$(wrk_target $t -t2 -c"$CONNS" -d"${DUR}s" | grep '^GWRESULT' | cut -d' ' -f2-)
    cpu=""; for p in fake agentprov portkey; do cpu+=" cpu_$p=$(( $(cpu_ticks "$(pid_of $p)") - ${c0[$p]} ))"; done
    echo "max $t $run $CONNS $r$cpu hz=$(getconf CLK_TCK) secs=$DUR" >>"$OUT"
  done
  for t in fake agentprov portkey; do
    echo "gateway.sh: run $run: $t streaming time to first token" >&2
    r=$(stream_target $t ttft --n 400 --concurrency 8 --chunks 5 --delay 20)
    echo "ttft $t $run 0 $r" >>"$OUT"
  done
done

echo "gateway.sh: $SOAK concurrent streams through agentprov" >&2
r=$(stream_target agentprov soak --n "$SOAK" --chunks 20 --delay 500 --ramp-ms 2000 --pid "$AP_PID")
echo "soak agentprov 1 $SOAK $r" >>"$OUT"
if [ "${GW_SOAK_PORTKEY:-1}" = 1 ]; then
  echo "gateway.sh: $SOAK concurrent streams through portkey" >&2
  r=$(stream_target portkey soak --n "$SOAK" --chunks 20 --delay 500 --ramp-ms 2000 --pid "$PK_PID")
  echo "soak portkey 1 $SOAK $r" >>"$OUT"
fi
cp "$OUT" "${GW_RAW_OUT:-/dev/null}" 2>/dev/null || true

node bench/gateway/report.mjs "$OUT" "$RUNS" "$DUR" "$PACE_CONNS" "$CONNS" >"$WORK/section.md"
# replace an earlier Gateway section, keep everything above it
if [ -f bench/RESULTS.md ]; then
  awk '/^## Gateway/ {exit} {print}' bench/RESULTS.md >"$WORK/top.md"
else
  printf '# Benchmarks\n\n' >"$WORK/top.md"
fi
cat "$WORK/top.md" "$WORK/section.md" >bench/RESULTS.md
cat "$WORK/section.md"

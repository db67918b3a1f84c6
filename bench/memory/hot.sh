#!/usr/bin/env bash
# The hot tier (src/memory/hot.c) with many live conversations, in process
# (bench/memory/hot_bench.c): for each count of BENCH_HOT_CONVERSATIONS
# (default "1000 100000") and each of 1 and 2 threads, BENCH_HOT_OPS
# operations per thread (default 400000; three pushes for each read of a
# whole context), p50 / p99 / p99.9 / max per operation.  Prints a
# markdown table (bench/RESULTS.md, "Agent memory", has the figures).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
make --no-print-directory build/bench/mem_hot_bench >/dev/null
OPS=${BENCH_HOT_OPS:-400000}
echo "load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| conversations | threads | operation | p50 | p99 | p99.9 | max | operations/s (all threads) |"
echo "|---|---|---|---|---|---|---|---|"
for N in ${BENCH_HOT_CONVERSATIONS:-1000 100000}; do
  for T in 1 2; do
    build/bench/mem_hot_bench "$N" "$OPS" "$T"
  done
done

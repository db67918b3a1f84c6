#!/usr/bin/env bash
# The memory index's graph path (the bounded blend, calibration) against
# its exact scan, in process (bench/memory/blend_bench.c): for each kind of
# BENCH_BLEND_KINDS (default "text clustered random") and size of
# BENCH_BLEND_SIZES (default "10000 100000"), recall@10 against the scan,
# candidates pulled and CPU per query at each beam, and what the
# calibration chooses.  Partitions are built once and kept in
# BENCH_BLEND_CACHE (default /tmp/agentprov-blend).  Prints markdown tables
# (bench/RESULTS.md, "Agent memory", has the figures).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
make --no-print-directory build/bench/mem_blend_bench >/dev/null
CACHE=${BENCH_BLEND_CACHE:-/tmp/agentprov-blend}
META=${BENCH_BLEND_META:-fresh}
for N in ${BENCH_BLEND_SIZES:-10000 100000}; do
  for K in ${BENCH_BLEND_KINDS:-text clustered random}; do
    Q=$([ "$N" -ge 1000000 ] && echo 100 || echo 200)
    echo "### $K, $N memories ($META metadata, $Q queries; load average $(cut -d' ' -f1-3 /proc/loadavg))"
    echo
    build/bench/mem_blend_bench "$K" "$N" "$Q" "$CACHE" "$META" 32 64 128 256 512 1024 2048
    echo
  done
done

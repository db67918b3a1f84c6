#!/usr/bin/env bash
# bench/vec/run.sh - the vector index (src/vec) against hnswlib on the same
# vectors in the same run; writes the "## Vector index" section of
# bench/RESULTS.md (replacing an earlier one).  Run by `make bench` (skip
# with BENCH_SKIP_VEC=1) or alone: `make bench-vec`.
#
# 1. Data: bench/vec/gen.c writes N base vectors and NQ queries of DIM
#    dimensions (a Gaussian mixture by default, see gen.c) and the exact
#    top 10 of every query.  Embedding time is not part of any figure.
# 2. Both drivers are compiled with the same flags (BENCH_VEC_CFLAGS,
#    default -O2 -march=native: hnswlib picks its AVX/AVX-512 kernels from
#    them, gcc vectorises our loop with them), insert on one thread and
#    answer single queries on one thread for each ef of the sweep.
# 3. hnswlib is Debian's libhnswlib-dev (header-only), installed here when
#    missing; `make test` does not need it.
#
# Knobs: BENCH_VEC_SIZES ("10000 100000 1000000"), BENCH_VEC_QUERIES (1000),
# BENCH_VEC_DIM (384), BENCH_VEC_M (16), BENCH_VEC_EFC (100),
# BENCH_VEC_EF (the ef sweep), BENCH_VEC_KIND (clustered | uniform),
# BENCH_VEC_SKIP_HNSWLIB=1 (ours only).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
SIZES=${BENCH_VEC_SIZES:-"10000 100000 1000000"}
NQ=${BENCH_VEC_QUERIES:-1000}
DIM=${BENCH_VEC_DIM:-384}
M=${BENCH_VEC_M:-16}
EFC=${BENCH_VEC_EFC:-100}
EFS=${BENCH_VEC_EF:-"10 16 24 32 48 64 96 128 192 256 384 512"}
KIND=${BENCH_VEC_KIND:-clustered}
FLAGS=${BENCH_VEC_CFLAGS:-"-O2 -march=native"}
SKIP_HNSWLIB=${BENCH_VEC_SKIP_HNSWLIB:-0}
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
WORK="$(mktemp -d /tmp/agentprov-vec-bench.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
OUT=build/bench
mkdir -p "$OUT"

if [ "$SKIP_HNSWLIB" != 1 ] &&
    ! dpkg-query -W -f='${Status}' libhnswlib-dev 2>/dev/null | grep -q "ok installed"; then
  sudo=(); [ "$(id -u)" = 0 ] || sudo=(sudo)
  echo "bench/vec: installing libhnswlib-dev" >&2
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libhnswlib-dev >&2 ||
    { "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update >&2 &&
      "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
          libhnswlib-dev >&2; }
fi

# shellcheck disable=SC2086 # FLAGS is a word list on purpose
{
  cc -std=c17 -D_GNU_SOURCE $FLAGS -Isrc -Ibench/vec bench/vec/gen.c src/vec/vec.c \
     src/core/err.c -o "$OUT/vec_gen" -lm -lpthread
  cc -std=c17 -D_GNU_SOURCE $FLAGS -Isrc -Ibench/vec bench/vec/vec_bench.c src/vec/vec.c \
     src/core/err.c -o "$OUT/vec_bench" -lm -lpthread
  [ "$SKIP_HNSWLIB" = 1 ] ||
    c++ -std=c++17 $FLAGS -Ibench/vec bench/vec/hnswlib_bench.cpp -o "$OUT/hnswlib_bench" -lpthread
}

RAW="$WORK/raw.tsv"
: >"$RAW"
for n in $SIZES; do
  echo "bench/vec: $n vectors of $DIM dimensions ($KIND)" >&2
  "$OUT/vec_gen" "$KIND" "$n" "$NQ" "$DIM" 7 "$WORK/d" >&2
  efs="$EFS"
  [ "$n" -gt 100000 ] || efs="$EFS exact" # brute force for comparison where it is quick
  # shellcheck disable=SC2086
  "$OUT/vec_bench" "$WORK/d" "$M" "$EFC" $efs | sed "s/^/$n\t/" >>"$RAW"
  if [ "$SKIP_HNSWLIB" != 1 ]; then
    # shellcheck disable=SC2086
    "$OUT/hnswlib_bench" "$WORK/d" "$M" "$EFC" $EFS | sed "s/^/$n\t/" >>"$RAW"
  fi
  rm -f "$WORK"/d.*
done

hv=$(dpkg-query -W -f='${Version}' libhnswlib-dev 2>/dev/null || echo "not installed")
node -e '
const [date, machine, data, build, method, ...commands] = process.argv.slice(1);
console.log(JSON.stringify({date, machine, data, build, method, commands, notes: []}));
' "$(date -u +%Y-%m-%dT%H:%MZ)" \
  "$(nproc) cores, $(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | sed 's/^ //'), $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -sr); shared with other work: load average (1, 5, 15 min) $LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end" \
  "$KIND, $DIM dimensions, $NQ queries, exact top 10 by inner product as ground truth (bench/vec/gen.c; clustered = Gaussian mixture of max(16, N/1000) unit centres, noise 0.6/sqrt(dim) per component, normalised)." \
  "\`$FLAGS\` (gcc $(cc -dumpfullversion)); M=$M, ef_construction=$EFC; hnswlib $hv (InnerProductSpace); ours with exact_threshold=0 so every size uses the graph." \
  "insert from memory on one thread (rate = N / build time); then for each ef, ${NQ} single queries on one thread, wall and CPU time per query, recall@10 against the exact top 10. The two libraries run one after the other on the same data files." \
  "BENCH_VEC_SIZES=\"$SIZES\" BENCH_VEC_QUERIES=$NQ BENCH_VEC_M=$M BENCH_VEC_EFC=$EFC bash bench/vec/run.sh" \
  "build/bench/vec_gen $KIND N $NQ $DIM 7 PREFIX" \
  "build/bench/vec_bench PREFIX $M $EFC $EFS exact" \
  "build/bench/hnswlib_bench PREFIX $M $EFC $EFS" >"$WORK/meta.json"
node bench/vec/report.mjs "$RAW" "$WORK/meta.json" >"$WORK/section.md"
if [ -f bench/vec/NOTES.md ]; then echo >>"$WORK/section.md"; cat bench/vec/NOTES.md >>"$WORK/section.md"; fi

# Replace the section (from its heading to the next "## " heading) or append it.
touch bench/RESULTS.md
awk -v sect="$WORK/section.md" '
  /^## / { if (skip) skip = 0; if ($0 == "## Vector index") { skip = 1; next } }
  !skip { print }
' bench/RESULTS.md >"$WORK/results.md"
# drop trailing blank lines, then one blank line and the section
sed -e :a -e '/^\n*$/{$d;N;ba' -e '}' "$WORK/results.md" >"$WORK/r2.md"
{ cat "$WORK/r2.md"; [ -s "$WORK/r2.md" ] && echo; cat "$WORK/section.md"; } >bench/RESULTS.md
cat "$WORK/section.md"

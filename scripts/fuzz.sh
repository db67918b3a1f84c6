#!/usr/bin/env bash
# scripts/fuzz.sh FILE... — builds each libFuzzer target and runs it.
#
# 1. A target tests/fuzz/NAME_fuzz.c names the sources it needs on a line
#    " * FUZZ_SOURCES: src/... src/..." of its opening comment; it is built
#    with clang, libFuzzer, ASan and UBSan (UB aborts, so it counts as a
#    crash) into build/fuzz/NAME_fuzz.
# 2. Each runs for ${FUZZ_SECONDS:-10} seconds on a working corpus in
#    build/fuzz/corpus/NAME, seeded from the committed tests/fuzz/corpus/NAME
#    (new inputs never land in the source tree).  Crash inputs are written
#    to build/fuzz/artifacts/.
# 3. Every target runs even when an earlier one fails; the script fails if
#    any build failed or any target found a crash, leak or timeout.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

[ $# -gt 0 ] || { echo "usage: $0 tests/fuzz/NAME_fuzz.c..." >&2; exit 2; }
CLANG="${FUZZ_CC:-clang}"
SECS="${FUZZ_SECONDS:-10}"
command -v "$CLANG" >/dev/null ||
    { echo "fuzz.sh: $CLANG not found (scripts/deps.sh installs clang, libclang-rt-14-dev)" >&2; exit 1; }

CFLAGS=(-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
        -std=c17 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-missing-field-initializers -Isrc)
read -r -a PKG <<<"$(pkg-config --cflags --libs jansson libsodium)"

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:symbolize=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

mkdir -p build/fuzz/artifacts
failed=()
for f in "$@"; do
    name="$(basename "$f" .c)"
    short="${name%_fuzz}"
    srcs="$(sed -n 's/^ \* FUZZ_SOURCES: //p' "$f")"
    if [ -z "$srcs" ]; then
        echo "fuzz.sh: $f has no FUZZ_SOURCES line" >&2
        failed+=("$name (no sources)")
        continue
    fi
    echo "--- build $name"
    # shellcheck disable=SC2086 # srcs is a word list on purpose
    if ! "$CLANG" "${CFLAGS[@]}" "$f" $srcs -o "build/fuzz/$name" "${PKG[@]}" -lm; then
        failed+=("$name (build)")
        continue
    fi
    corpus="build/fuzz/corpus/$short"
    seeds="tests/fuzz/corpus/$short"
    mkdir -p "$corpus"
    dirs=("$corpus")
    [ -d "$seeds" ] && dirs+=("$seeds")
    echo "--- run $name for ${SECS}s"
    if ! "build/fuzz/$name" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 \
            -max_len=4096 -print_final_stats=1 \
            -artifact_prefix="build/fuzz/artifacts/$short-" "${dirs[@]}" \
            >"build/fuzz/$name.log" 2>&1; then
        tail -n 40 "build/fuzz/$name.log" >&2
        failed+=("$name (crash: see build/fuzz/$name.log and build/fuzz/artifacts/)")
        continue
    fi
    grep -E '^stat::(number_of_executed_units|new_units_added)' "build/fuzz/$name.log" |
        sed "s/^/    /" || true
done

if [ ${#failed[@]} -gt 0 ]; then
    printf 'fuzz: FAILED %s\n' "${failed[@]}" >&2
    exit 1
fi
echo "fuzz: all $# targets ran ${SECS}s without a finding"

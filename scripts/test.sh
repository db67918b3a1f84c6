#!/usr/bin/env bash
# scripts/test.sh UNIT_BIN... — what `make test` runs after building.
#
# 1. Unit tests (cmocka, ASan/UBSan) against SQLite.
# 2. A private PostgreSQL on a free loopback port (scripts/pg.sh); the unit
#    tests again against it (AP_TEST_PG_URL).
# 3. End-to-end tests (node --test) against the sanitizer build of the real
#    binary, once per backend.
# 4. Short libFuzzer runs of the parser targets (tests/fuzz), and a lint of
#    docs/api/openapi.yaml.
# The PostgreSQL server is stopped on every exit path.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$ROOT/tests/lsan.supp:print_suppressions=0"
export REDOCLY_SUPPRESS_UPDATE_NOTICE=true REDOCLY_TELEMETRY=off

PGDIR="$(mktemp -d /tmp/agentprov-test-pg.XXXXXX)"
rmdir "$PGDIR"
cleanup() { bash scripts/pg.sh stop "$PGDIR" >/dev/null 2>&1 || true; }
trap cleanup EXIT INT TERM

pass=0 fail=0
run() { # name, command...
  local name=$1; shift
  echo "--- $name"
  if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAILED: $name"; fi
}

for t in "$@"; do run "unit $(basename "$t") [sqlite]" env -u AP_TEST_PG_URL "$t"; done

run "fuzz (5 s per target)" env FUZZ_SECONDS=5 bash scripts/fuzz.sh tests/fuzz/*_fuzz.c

echo "--- starting private PostgreSQL"
bash scripts/pg.sh start "$PGDIR" >/dev/null
export AP_TEST_PG_URL="$(cat "$PGDIR/url")"
export AP_TEST_PG_ADMIN_URL="$(cat "$PGDIR/admin_url")"

for t in "$@"; do run "unit $(basename "$t") [postgres]" "$t"; done

export AP_BIN="$ROOT/build/asan/agentprov"
for backend in sqlite postgres; do
  run "e2e [$backend]" env AP_TEST_BACKEND=$backend node --test --test-concurrency=1 --test-timeout=300000 tests/e2e/
done

run "openapi lint" npx --no-install redocly lint --format=stylish docs/api/openapi.yaml

echo
echo "test suites: $pass passed, $fail failed"
[ "$fail" -eq 0 ]

#!/usr/bin/env bash
# bench/gateway/ab.sh: added latency of two agentprov builds in one run —
# the fake upstream directly, then each build in turn (A B A B …), paced
# with wrk + chat.lua, so both see the same machine load.
#
#   bash bench/gateway/ab.sh OLD_BIN NEW_BIN   # AB_ROUNDS=3 AB_SECONDS=5 AB_RATE=2000
#
# Prints one line per target and round (GWRESULT fields of chat.lua) and
# the median p50 / p99 over the rounds; writes nothing else.  A round with
# non-2xx answers is reported and fails the script (it would measure
# refusals, not calls).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
OLD=$1 NEW=$2
ROUNDS=${AB_ROUNDS:-3} SECS=${AB_SECONDS:-5} RATE=${AB_RATE:-2000}
make --no-print-directory build/fake-upstream >/dev/null
WORK="$(mktemp -d /tmp/agentprov-ab.XXXXXX)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; sleep 0.3; rm -rf "$WORK"; }
trap cleanup EXIT
build/fake-upstream --listen 127.0.0.1:0 2>"$WORK/fake.log" & PIDS+=($!)
until grep -q '"ready"' "$WORK/fake.log" 2>/dev/null; do sleep 0.05; done
FAKE="http://127.0.0.1:$(sed -n 's/.*"port":\([0-9]*\).*/\1/p' "$WORK/fake.log" | head -1)"
free_port() { node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }
start() { # name bin -> URL_name KEY_name
  local name=$1 bin=$2 port; port=$(free_port)
  AP_PROVIDER_OPENAI_BASE_URL="$FAKE/v1" AP_PROVIDER_OPENAI_API_KEY=sk-ab \
    "$bin" serve --listen "127.0.0.1:$port" --data-dir "$WORK/$name" --log-level warn 2>"$WORK/$name.log" & PIDS+=($!)
  until curl -sf "http://127.0.0.1:$port/readyz" >/dev/null; do sleep 0.05; done
  local admin; admin=$(cat "$WORK/$name/admin.key")
  local t; t=$(curl -sf -H "Authorization: Bearer $admin" -H 'content-type: application/json' \
    -d '{"name":"AB","monthly_token_limit":1000000000000000}' "http://127.0.0.1:$port/api/v1/tenants" | node -pe 'JSON.parse(require("fs").readFileSync(0)).id')
  local k; k=$(curl -sf -H "Authorization: Bearer $admin" -H 'content-type: application/json' \
    -d '{"name":"ab","role":"operator"}' "http://127.0.0.1:$port/api/v1/tenants/$t/api-keys" | node -pe 'JSON.parse(require("fs").readFileSync(0)).key')
  eval "URL_$name=http://127.0.0.1:$port KEY_$name=$k"
}
start old "$OLD"; start new "$NEW"
run() { # target -> GWRESULT fields
  case $1 in
    fake) GW_MODEL=gpt-4o-mini GW_RATE=$RATE GW_THREADS=2 wrk -t2 -c50 -d"${SECS}s" -s bench/gateway/chat.lua -H "Authorization: Bearer sk-ab" "$FAKE" ;;
    old) GW_MODEL=openai/gpt-4o-mini GW_RATE=$RATE GW_THREADS=2 wrk -t2 -c50 -d"${SECS}s" -s bench/gateway/chat.lua -H "Authorization: Bearer $KEY_old" "$URL_old" ;;
    new) GW_MODEL=openai/gpt-4o-mini GW_RATE=$RATE GW_THREADS=2 wrk -t2 -c50 -d"${SECS}s" -s bench/gateway/chat.lua -H "Authorization: Bearer $KEY_new" "$URL_new" ;;
  esac | grep '^GWRESULT' | cut -d' ' -f2-
}
for t in fake old new; do run $t >/dev/null; done # warm-up
: >"$WORK/out"
for r in $(seq "$ROUNDS"); do for t in fake old new; do echo "$t $r $(run $t)" | tee -a "$WORK/out"; done; done
if grep -v ' non2xx=0 ' "$WORK/out" >&2; then echo "ab.sh: rounds above had non-2xx answers" >&2; exit 1; fi
node -e '
const rows = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map((l) => {
  const [t, r, ...kv] = l.split(" "); const o = { t }; for (const x of kv) { const [k, v] = x.split("="); o[k] = Number(v); } return o; });
const med = (a) => { a = [...a].sort((x, y) => x - y); return a[Math.floor(a.length / 2)]; };
const m = {}; for (const t of ["fake", "old", "new"]) { const rs = rows.filter((x) => x.t === t); m[t] = { p50: med(rs.map((x) => x.p50_us)), p99: med(rs.map((x) => x.p99_us)) }; }
for (const t of ["old", "new"]) console.log(`${t}: p50 ${(m[t].p50/1000).toFixed(3)} ms (added ${((m[t].p50-m.fake.p50)/1000).toFixed(3)}), p99 ${(m[t].p99/1000).toFixed(3)} ms (added ${((m[t].p99-m.fake.p99)/1000).toFixed(3)})`);
console.log(`fake direct: p50 ${(m.fake.p50/1000).toFixed(3)} ms, p99 ${(m.fake.p99/1000).toFixed(3)} ms`);
' "$WORK/out"

#!/usr/bin/env bash
# scripts/deps.sh — install everything AgentProvision needs on Debian 12.
#
# Usage:
#   bash scripts/deps.sh               # full set: build, tests, lint, bench
#   bash scripts/deps.sh --build-only  # only what building/running the server needs
#   bash scripts/deps.sh --no-npm      # full Debian set, but skip `npm ci`
#
# Idempotent and fast when everything is present: each Debian package is
# checked with dpkg-query, and apt-get (update + install) only runs for the
# missing ones. Node.js/npm are taken from PATH when already there (e.g. a
# NodeSource build in /usr/bin); Debian's nodejs/npm are installed otherwise.
# npm packages (package.json / package-lock.json) are installed with `npm ci`
# when node_modules is missing or older than package-lock.json.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

build_only=0
no_npm=0
for arg in "$@"; do
    case "$arg" in
        --build-only) build_only=1; no_npm=1 ;;
        --no-npm) no_npm=1 ;;
        -h|--help) sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "deps.sh: unknown option: $arg" >&2; exit 2 ;;
    esac
done

log() { echo "deps: $*" >&2; }

# Toolchain and C libraries: enough to build and run the server (`make run`)
# and the unit tests.
pkgs=(
    build-essential pkg-config ca-certificates
    libmicrohttpd-dev libjansson-dev libsqlite3-dev sqlite3 libpq-dev
    libsodium-dev libcmocka-dev libcurl4-openssl-dev libssl-dev
)
if [ "$build_only" -eq 0 ]; then
    # Integration tests, metrics lint (promtool), load tests, sanitizers.
    pkgs+=(postgresql-15 prometheus wrk clang libclang-rt-14-dev)
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        pkgs+=(nodejs npm)
    fi
fi

missing=()
for p in "${pkgs[@]}"; do
    status="$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)"
    [ "$status" = "install ok installed" ] || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
    log "installing: ${missing[*]}"
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
    # Wait (up to 10 min) for a concurrent apt/dpkg instead of failing.
    apt_opts=(-o DPkg::Lock::Timeout=600 -q)
    export DEBIAN_FRONTEND=noninteractive
    # Keep package postinsts from starting daemons (postgresql's main
    # cluster on :5432, prometheus on :9090): tests start their own servers.
    # Docker-style images already ship such a policy-rc.d; add one only for
    # the duration of the install when there is none.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\n# temporary, from AgentProvision scripts/deps.sh\nexit 101\n' |
            "${sudo[@]}" tee /usr/sbin/policy-rc.d >/dev/null
        "${sudo[@]}" chmod 755 /usr/sbin/policy-rc.d
        trap '"${sudo[@]}" rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" update >&2
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install -y \
        --no-install-recommends "${missing[@]}" >&2
else
    log "Debian packages: all ${#pkgs[@]} present"
fi

if [ "$no_npm" -eq 0 ]; then
    if [ ! -f "$ROOT/package-lock.json" ]; then
        log "no package-lock.json; skipping npm ci"
    elif [ ! -f "$ROOT/node_modules/.package-lock.json" ] ||
         [ "$ROOT/package-lock.json" -nt "$ROOT/node_modules/.package-lock.json" ]; then
        log "npm ci"
        (cd "$ROOT" && npm ci --no-audit --no-fund >&2)
    else
        log "node_modules: up to date"
    fi
fi
log "done"

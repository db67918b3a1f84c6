#!/usr/bin/env bash
# scripts/pg.sh — a private, throwaway PostgreSQL 15 server for tests.
#
# Usage:
#   bash scripts/pg.sh start DIR   # prints the app URL on stdout
#   bash scripts/pg.sh stop DIR    # stops the server, removes DIR and the cluster
#
# Layout. DIR is only a pointer: the cluster itself (data/, unix socket,
# server log) lives in a fresh `mktemp -d /tmp/agentprov-pg.XXXXXX`, so DIR
# may be anywhere (under the repo, under /root, ...) even where the postgres
# user cannot traverse the parents. DIR holds:
#   url        postgres://agentprov:agentprov@127.0.0.1:PORT/agentprov
#              (role agentprov: LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB
#               NOCREATEROLE; owner of database agentprov)
#   admin_url  postgres://postgres@127.0.0.1:PORT/postgres  (superuser)
#   port       the TCP port
#   cluster    the path of the /tmp cluster directory
#   data, log  symlinks to the data directory and the server log
#
# The server listens on 127.0.0.1 only, at a free port picked by binding
# port 0 (retried up to 5 times if someone else takes the port first); its
# unix socket is in the cluster directory (not /var/run). Auth is trust (the
# cluster is throwaway and reachable only from this machine); fsync is off.
# As root, everything of the cluster runs as the `postgres` user through
# runuser; as any other user it runs as that user.
# `stop` uses pg_ctl stop -m fast (then -m immediate, then SIGKILL of the
# postmaster's own pid) and leaves nothing running. It is a no-op when DIR
# does not exist. Binaries: /usr/lib/postgresql/15/bin (override: PGBIN).
set -euo pipefail

PGBIN="${PGBIN:-/usr/lib/postgresql/15/bin}"
TMPBASE=/tmp

die() { echo "pg.sh: $*" >&2; exit 1; }
log() { echo "pg.sh: $*" >&2; }

usage() { echo "usage: $0 {start|stop} DIR" >&2; exit 2; }

if [ "$(id -u)" -eq 0 ]; then
    PGUSER_OS=postgres
    id -u "$PGUSER_OS" >/dev/null 2>&1 || die "user 'postgres' does not exist (run scripts/deps.sh)"
else
    PGUSER_OS="$(id -un)"
fi

# Run a command as the cluster's OS user, from inside the cluster directory
# (so postgres never needs access to the caller's cwd).
as_pg() {
    local dir="$1"; shift
    if [ "$(id -u)" -eq 0 ]; then
        (cd "$dir" && runuser -u "$PGUSER_OS" -- "$@")
    else
        (cd "$dir" && "$@")
    fi
}

free_port() {
    if command -v node >/dev/null 2>&1; then
        node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close();})'
    elif command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1]);s.close()'
    else
        die "need node or python3 to pick a free port"
    fi
}

# Is process $1 running (exists and is not a zombie)?
pid_running() {
    local st
    kill -0 "$1" 2>/dev/null || return 1
    st="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true)"
    [ "$st" != Z ]
}

# Is the postmaster of cluster directory $1 alive?
pm_alive() {
    local pidfile="$1/data/postmaster.pid" pid
    [ -f "$pidfile" ] || return 1
    pid="$(head -n1 "$pidfile" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] && pid_running "$pid"
}

# Stop the server of cluster directory $1 (if any) and remove that directory.
teardown_cluster() {
    local cl="$1" pid
    case "$cl" in
        "$TMPBASE"/agentprov-pg.*) ;;
        *) die "refusing to remove unexpected cluster path '$cl'" ;;
    esac
    [ -d "$cl" ] || return 0
    if pm_alive "$cl"; then
        pid="$(head -n1 "$cl/data/postmaster.pid")"
        as_pg "$cl" "$PGBIN/pg_ctl" -D "$cl/data" -s -m fast -t 30 stop >&2 ||
            as_pg "$cl" "$PGBIN/pg_ctl" -D "$cl/data" -s -m immediate -t 10 stop >&2 || true
        # pg_ctl returns once postmaster.pid is gone; give the process
        # itself a moment to exit before resorting to SIGKILL.
        for _ in $(seq 50); do pid_running "$pid" || break; sleep 0.1; done
        if pid_running "$pid"; then
            log "postmaster $pid still alive; killing it"
            kill -KILL "$pid" 2>/dev/null || true
            for _ in $(seq 50); do pid_running "$pid" || break; sleep 0.1; done
        fi
    fi
    rm -rf -- "$cl"
}

cmd_stop() {
    local dir="$1" cl
    if [ ! -e "$dir" ]; then
        log "$dir does not exist; nothing to stop"
        return 0
    fi
    [ -f "$dir/cluster" ] || die "$dir has no 'cluster' file: not made by pg.sh start, leaving it alone"
    cl="$(cat "$dir/cluster")"
    teardown_cluster "$cl"
    rm -rf -- "$dir"
    log "stopped; removed $dir"
}

cmd_start() {
    local dir="$1" cl port attempt ok=0
    [ -x "$PGBIN/initdb" ] || die "$PGBIN/initdb not found (run scripts/deps.sh)"
    if [ -f "$dir/cluster" ]; then
        cl="$(cat "$dir/cluster")"
        if pm_alive "$cl"; then
            die "a server is already running for $dir (url: $(cat "$dir/url" 2>/dev/null)); run: $0 stop $dir"
        fi
        log "cleaning up a stale cluster for $dir"
        teardown_cluster "$cl"
        rm -f -- "$dir/cluster" "$dir/url" "$dir/admin_url" "$dir/port" "$dir/data" "$dir/log"
    fi
    mkdir -p -- "$dir"
    dir="$(cd "$dir" && pwd)"

    cl="$(mktemp -d "$TMPBASE/agentprov-pg.XXXXXX")"
    echo "$cl" > "$dir/cluster"
    # From here on, any failure tears the cluster down again.
    trap 'teardown_cluster "$cl"; rm -f -- "$dir/cluster" "$dir/url" "$dir/admin_url" "$dir/port" "$dir/data" "$dir/log"; rmdir -- "$dir" 2>/dev/null || true' EXIT
    if [ "$(id -u)" -eq 0 ]; then
        chown "$PGUSER_OS:$PGUSER_OS" "$cl"
        install -d -o "$PGUSER_OS" -g "$PGUSER_OS" -m 700 "$cl/data"
    else
        install -d -m 700 "$cl/data"
    fi
    chmod 700 "$cl"

    as_pg "$cl" "$PGBIN/initdb" -D "$cl/data" -U postgres -A trust -E UTF8 \
        --no-locale --no-sync >"$cl/initdb.log" 2>&1 ||
        { cat "$cl/initdb.log" >&2; die "initdb failed"; }

    cat >>"$cl/data/postgresql.conf" <<CONF

# --- scripts/pg.sh: throwaway test cluster ---
listen_addresses = '127.0.0.1'
unix_socket_directories = '$cl'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 100
logging_collector = off
CONF

    for attempt in 1 2 3 4 5; do
        port="$(free_port)"
        : >"$cl/server.log"
        [ "$(id -u)" -ne 0 ] || chown "$PGUSER_OS:$PGUSER_OS" "$cl/server.log"
        if as_pg "$cl" "$PGBIN/pg_ctl" -D "$cl/data" -l "$cl/server.log" -s -w -t 60 \
                -o "-p $port" start >&2; then
            ok=1
            break
        fi
        if grep -qiE 'could not (bind|create listen socket)|address already in use' "$cl/server.log"; then
            log "port $port was taken; retrying ($attempt/5)"
            continue
        fi
        tail -n 30 "$cl/server.log" >&2 || true
        die "pg_ctl start failed"
    done
    [ "$ok" -eq 1 ] || die "could not find a free port after 5 attempts"

    "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$port" -t 30 || die "server not ready"

    PGCONNECT_TIMEOUT=10 "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 \
        "postgres://postgres@127.0.0.1:$port/postgres" >&2 <<'SQL'
CREATE ROLE agentprov LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE
    PASSWORD 'agentprov';
CREATE DATABASE agentprov OWNER agentprov;
SQL

    local url="postgres://agentprov:agentprov@127.0.0.1:$port/agentprov"
    echo "$url" >"$dir/url"
    echo "postgres://postgres@127.0.0.1:$port/postgres" >"$dir/admin_url"
    echo "$port" >"$dir/port"
    ln -sfn "$cl/data" "$dir/data"
    ln -sfn "$cl/server.log" "$dir/log"
    trap - EXIT
    log "PostgreSQL 15 on 127.0.0.1:$port (cluster $cl)"
    echo "$url"
}

[ $# -eq 2 ] || usage
case "$1" in
    start) cmd_start "$2" ;;
    stop) cmd_stop "$2" ;;
    *) usage ;;
esac

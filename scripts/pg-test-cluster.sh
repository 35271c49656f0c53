#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for trying clinepipe (or bench/bench_db.py) against PostgreSQL,
# the same way the tests' `postgres_url` fixture makes one. Test settings: trust authentication,
# fsync off, listening on 127.0.0.1 only. Never use it for data you want to keep.
#
#   scripts/pg-test-cluster.sh start DIR [PORT]   # initdb DIR (if new), start, print the URL
#   scripts/pg-test-cluster.sh url DIR            # print the URL again
#   scripts/pg-test-cluster.sh stop DIR           # stop it (DIR stays; rm -rf it when done)
#
# As root (initdb refuses root) the server runs as the `postgres` system user.
set -euo pipefail

usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -ge 2 ] || usage
cmd=$1
dir=$(realpath -m "$2")
port=${3:-}

bindir=""
if command -v initdb >/dev/null 2>&1; then
    bindir=$(dirname "$(command -v initdb)")
else
    last=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    [ -n "$last" ] && bindir=$last
fi
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
    echo "pg-test-cluster: PostgreSQL is not installed (no initdb); install the Debian 'postgresql' package (make system-deps)." >&2
    exit 1
fi

as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

case "$cmd" in
start)
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$dir"
        if ! runuser -u postgres -- test -w "$dir"; then
            echo "pg-test-cluster: the postgres user cannot reach $dir (a parent folder is private); choose a folder under /tmp." >&2
            exit 1
        fi
    fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        (cd "$dir" && as_owner "$bindir/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 \
            --locale=C --no-sync --no-instructions >/dev/null)
    fi
    if [ -z "$port" ]; then
        port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    fi
    (cd "$dir" && as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        start >/dev/null)
    echo "$port" > "$dir/port"
    echo "postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
    ;;
url)
    echo "postgresql+psycopg://postgres@127.0.0.1:$(cat "$dir/port")/postgres"
    ;;
stop)
    (cd "$dir" && as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null)
    echo "stopped; remove $dir when done"
    ;;
*)
    usage
    ;;
esac

#!/usr/bin/env bash
# A throwaway PostgreSQL server for one CI run, kept in DIR.
#   start DIR: initdb (trust auth), listen on 127.0.0.1 on a free port, wait with pg_isready, create
#              database neo_test; prints its URL: postgresql://postgres@127.0.0.1:PORT/neo_test
#   stop DIR:  stop the server (if it runs) and remove DIR
# As root the server runs as the postgres user (initdb refuses root).
set -euo pipefail
usage="usage: $0 start|stop DIR"
action=${1:?$usage}
dir=${2:?$usage}

bindir() {  # the folder of initdb: on PATH, else the newest /usr/lib/postgresql/N/bin
    local initdb
    initdb=$(command -v initdb || ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1 || true)
    if [[ -z $initdb ]]; then
        echo "postgres.sh: initdb not found on PATH or in /usr/lib/postgresql/*/bin; apt-get install postgresql" >&2
        return 1
    fi
    dirname "$(readlink -f "$initdb")"
}

as_postgres() {
    if [[ $(id -u) == 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

case $action in
start)
    bin=$(bindir)
    mkdir -p "$dir"
    if [[ $(id -u) == 0 ]]; then
        chown postgres: "$dir"
    fi
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_postgres "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-locale --no-sync >&2
    as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off" start >&2 \
        || { cat "$dir/server.log" >&2; exit 1; }
    for _ in $(seq 60); do
        "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" && break
        sleep 1
    done
    "$bin/pg_isready" -h 127.0.0.1 -p "$port" >&2
    "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres neo_test
    echo "postgresql://postgres@127.0.0.1:$port/neo_test"
    ;;
stop)
    if [[ -f $dir/data/postmaster.pid ]]; then
        as_postgres "$(bindir)/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
    fi
    rm -rf "$dir"
    ;;
*)
    echo "$usage" >&2
    exit 2
    ;;
esac

# A throwaway PostgreSQL cluster for tests, sourced by *_test.sh scripts:
#   pg_start DIR  initdb in DIR/db as the unprivileged user `nobody` (tests
#                 run as root; postgres refuses root), listening only on a
#                 Unix socket in DIR/sock; sets CNET_TEST_STORE to its URL.
#                 Returns 2 (with a message) when PostgreSQL is not installed.
#   pg_stop DIR   stops it (call from a trap, so a failed test stops it too).
# The cluster runs with fsync=off: the tests kill cnet nodes, never the
# database, so its durability is not what they test.
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)

pg_start() {
    if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ]; then
        echo "PostgreSQL is not installed (apt-get install postgresql): skipped"
        return 2
    fi
    mkdir -p "$1/db" "$1/sock"
    chmod 755 "$1"
    chown nobody "$1/db" "$1/sock"
    as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u nobody -- "$@"; else "$@"; fi; }
    as_pg "$PG_BIN/initdb" -D "$1/db" -U cnet -A trust --no-sync >"$1/initdb.log" 2>&1 ||
        { cat "$1/initdb.log"; return 1; }
    as_pg "$PG_BIN/pg_ctl" -D "$1/db" -l "$1/db/server.log" -w -t 60 \
        -o "-k $1/sock -c listen_addresses= -c fsync=off -c max_connections=200" start \
        >/dev/null || { cat "$1/db/server.log"; return 1; }
    CNET_TEST_STORE="postgresql:///postgres?host=$1/sock&user=cnet"
    export CNET_TEST_STORE
}

pg_stop() {
    [ -f "$1/db/postmaster.pid" ] || return 0
    if [ "$(id -u)" = 0 ]; then
        runuser -u nobody -- "$PG_BIN/pg_ctl" -D "$1/db" -m immediate -w stop >/dev/null 2>&1
    else
        "$PG_BIN/pg_ctl" -D "$1/db" -m immediate -w stop >/dev/null 2>&1
    fi
}

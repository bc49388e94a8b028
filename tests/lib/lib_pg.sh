# A throwaway PostgreSQL cluster for tests, sourced by *_test.sh scripts:
#   pg_start DIR [OPTS]  initdb in DIR/db as the unprivileged user `nobody`
#                 when run as root (postgres refuses to run as root),
#                 listening only on a Unix socket in DIR/sock, with postgres
#                 options OPTS (e.g. "-c fsync=off"); sets CNET_TEST_STORE to
#                 its URL. Returns 2 (with a message) when PostgreSQL is not
#                 installed (Debian's postgresql package: `make deps`).
#   pg_stop DIR   stops it (call from a trap, so a failed test stops it too).
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u nobody -- "$@"; else "$@"; fi; }

pg_start() {
    if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ]; then
        echo "PostgreSQL is not installed (apt-get install postgresql): skipped"
        return 2
    fi
    mkdir -p "$1/db" "$1/sock"
    chmod 755 "$1"
    if [ "$(id -u)" = 0 ]; then chown nobody "$1/db" "$1/sock"; fi
    as_pg "$PG_BIN/initdb" -D "$1/db" -U cnet -A trust --no-sync >"$1/initdb.log" 2>&1 ||
        { cat "$1/initdb.log"; return 1; }
    as_pg "$PG_BIN/pg_ctl" -D "$1/db" -l "$1/db/server.log" -w -t 60 \
        -o "-k $1/sock -c listen_addresses= -c max_connections=200 ${2:-}" start \
        >/dev/null || { cat "$1/db/server.log"; return 1; }
    CNET_TEST_STORE="postgresql:///postgres?host=$1/sock&user=cnet"
    export CNET_TEST_STORE
}

pg_stop() {
    [ -f "$1/db/postmaster.pid" ] || return 0
    as_pg "$PG_BIN/pg_ctl" -D "$1/db" -m immediate -w stop >/dev/null 2>&1
}

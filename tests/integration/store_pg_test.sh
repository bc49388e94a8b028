#!/bin/sh
# The job store's suites against PostgreSQL: a real cluster started here
# (tests/lib/lib_pg.sh: initdb as an unprivileged user, a Unix socket in a
# temp dir, stopped at the end even on failure) and CNET_TEST_STORE set, then
# the same programs `make test` runs on SQLite: test_jobs (every store
# promise; each test on an empty database), test_server_api (idempotency,
# auth and the job routes through a real `cnet serve --store`),
# test_server_engine (jobs run, cancelled, killed and resumed),
# test_server_push (exactly-once Hub commits), and the multi-node tests
# (test_server_multinode: several nodes on one queue). test_server_store
# stays SQLite's: it damages, empties and chmods the jobs.db file.
# Skipped with a message when PostgreSQL is not installed.
set -u
. tests/lib/lib_check.sh
. tests/lib/lib_pg.sh
BUILD=${BUILD:-build}
FIXTURES=${FIXTURES:-tests/fixtures}
T=$(mktemp -d /tmp/cnet_pg_XXXXXX)
trap 'pg_stop "$T"; rm -rf "$T"' EXIT
# fsync=off: the tests kill cnet nodes, never the database, so its
# durability is not what they test
pg_start "$T" "-c fsync=off"
case $? in
0) ;;
2) summary store_pg; exit 0 ;;
*) echo "store_pg: 0 passed, 1 failed"; exit 1 ;;
esac

# Runs one test program against the cluster; its own summary must say 0 failed.
suite() {
    "$BUILD/tests/$1" --fixtures "$FIXTURES" >"$T/$1.log" 2>&1
    rc=$?
    grep -E '^(FAIL|    )' "$T/$1.log" | head -n 20
    line=$(grep -E "^$1: [0-9]+ passed, [0-9]+ failed$" "$T/$1.log" | tail -n 1)
    echo "    $1 on postgresql: ${line:-no summary (exit $rc)}"
    [ "$rc" -eq 0 ] && [ -n "$line" ] && echo "$line" | grep -q ' 0 failed$'
}

for t in test_jobs test_server_api test_server_engine test_server_push test_server_multinode; do
    if [ -x "$BUILD/tests/$t" ]; then
        check "$t on postgresql" suite "$t"
    else
        check "$t is built ($BUILD/tests/$t)" false
    fi
done
summary store_pg

#!/bin/sh
# Runs every test program in $BUILD/tests and every tests/*/*_test.sh script,
# adds up their "N passed, N failed" lines and prints the total last.
# A program that crashes or prints no summary counts as one failure.
BUILD=${BUILD:-build}
FIXTURES=${FIXTURES:-tests/fixtures}
export BUILD FIXTURES
passed=0
failed=0
log=$(mktemp)
for t in "$BUILD"/tests/test_* tests/*/*_test.sh; do
    [ -e "$t" ] || continue
    case "$t" in *.o | *.d) continue ;; esac
    name=$(basename "$t")
    echo "== $name"
    start=$(date +%s)
    case "$t" in
    *.sh) sh "$t" >"$log" 2>&1 ;;
    *) "$t" --fixtures "$FIXTURES" >"$log" 2>&1 ;;
    esac
    rc=$?
    cat "$log"
    summary=$(grep -E '^[A-Za-z0-9_.-]+: [0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
    if [ -z "$summary" ]; then
        echo "FAIL $name: exited $rc without a summary line"
        failed=$((failed + 1))
        continue
    fi
    p=$(echo "$summary" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed/\1/')
    f=$(echo "$summary" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed/\2/')
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "FAIL $name: exited $rc"
        f=1
    fi
    passed=$((passed + p))
    failed=$((failed + f))
    echo "   ($(($(date +%s) - start)) s)"
done
rm -f "$log"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

# Sourced by the shell tests (run from the repository root): a counter of
# checks and the closing line tests/run.sh adds up.
#   check NAME COMMAND...   runs COMMAND; "ok   NAME" or "FAIL NAME"
#   summary PROGRAM         prints "PROGRAM: N passed, N failed"; false on a failure
pass=0
fail=0
check() {
    name=$1
    shift
    if "$@"; then echo "ok   $name"; pass=$((pass + 1)); else echo "FAIL $name"; fail=$((fail + 1)); fi
}
summary() {
    echo "$1: $pass passed, $fail failed"
    [ "$fail" -eq 0 ]
}

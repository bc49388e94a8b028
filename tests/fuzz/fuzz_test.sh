#!/bin/sh
# Runs every libFuzzer target of tests/fuzz (fuzz_<target>.c, built by
# `make fuzz-build` into $FUZZ_BUILD/fuzz/) for FUZZ_SECONDS each: first over
# its committed corpus tests/fuzz/corpus/<target> (the seeds and every
# regression input of a bug once found), then mutating from there, with the
# dictionary tests/fuzz/dict/<first word of the target>.dict when there is
# one. New inputs go to a scratch corpus, never into the committed one. A
# crash, leak, sanitizer report, timeout or out-of-memory (the peak, or one
# allocation over FUZZ_MALLOC_MB) fails the target and prints the
# reproducer's path (kept under $FUZZ_BUILD/crashes/) and the command that
# replays it. `make test` runs this with the short default
# (tests/run.sh); `make fuzz` with FUZZ_SECONDS=60. Ends with the suite's
# "fuzz_test: N passed, N failed" line.
FUZZ_BUILD=${FUZZ_BUILD:-build-fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-4}
# Seconds one input may take before it counts as a hang (generous: the
# machines running the suite are shared).
FUZZ_INPUT_TIMEOUT=${FUZZ_INPUT_TIMEOUT:-30}
# Memory: the process's peak, and any single allocation — no input of a few
# KB may make a parser ask for more than this at once (a declared length
# trusted before it is checked against the bytes there are).
FUZZ_RSS_MB=2048
FUZZ_MALLOC_MB=512
passed=0
failed=0
work=$(mktemp -d "${TMPDIR:-/tmp}/cnet-fuzz-run.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$FUZZ_BUILD/crashes"
for src in tests/fuzz/fuzz_*.c; do
    t=$(basename "$src" .c)
    t=${t#fuzz_}
    bin="$FUZZ_BUILD/fuzz/fuzz_$t"
    if [ ! -x "$bin" ]; then
        echo "FAIL fuzz $t: $bin is not built (make fuzz-build)"
        failed=$((failed + 1))
        continue
    fi
    dict="tests/fuzz/dict/${t%%_*}.dict"
    set -- -max_total_time="$FUZZ_SECONDS" -timeout="$FUZZ_INPUT_TIMEOUT" \
        -rss_limit_mb="$FUZZ_RSS_MB" -malloc_limit_mb="$FUZZ_MALLOC_MB" -artifact_prefix="$FUZZ_BUILD/crashes/$t-" -print_final_stats=1
    [ -f "$dict" ] && set -- "$@" -dict="$dict"
    mkdir -p "$work/$t"
    rm -f "$FUZZ_BUILD/crashes/$t-"*
    "$bin" "$@" "$work/$t" "tests/fuzz/corpus/$t" >"$work/$t.log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log")
    repro=$(ls "$FUZZ_BUILD/crashes/$t-"* 2>/dev/null | head -n 1)
    if [ "$rc" -ne 0 ] || [ -n "$repro" ]; then
        tail -n 40 "$work/$t.log"
        echo "FAIL fuzz $t: exited $rc; reproducer ${repro:-none}; replay: $bin ${repro:-}"
        failed=$((failed + 1))
    else
        echo "ok   fuzz $t: ${runs:-?} inputs in ${FUZZ_SECONDS} s, no crash"
        passed=$((passed + 1))
    fi
done
echo "fuzz_test: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

#!/bin/sh
# Runs `cnet golden` on the fixture directory (tests/run.sh exports BUILD and
# FIXTURES) and reports it as one test: passed when it exits 0.
BUILD=${BUILD:-build}
FIXTURES=${FIXTURES:-../shared/fixtures}
if "$BUILD/cnet" golden --fixtures "$FIXTURES"; then
    echo "golden: 1 passed, 0 failed"
else
    echo "golden: 0 passed, 1 failed"
    exit 1
fi

#!/bin/sh
# `make run` as the README tells a new user to use it (issue 19): the target
# runs (its build taken as done: `-o all`) into a temp RUN_DATA on a free
# port, and the two curl commands it prints are run as printed:
#   - the generate command answers a PNG within a few levels of the
#     README's picture (server/demo/demo-out.png, made by the same command;
#     another CPU's rounding may move a level or two), whose colours and
#     shape tests/integration/test_demo_model.c checks;
#   - the training command queues a job on the demo model (202 and an id);
#   - an older make run's models/demo (not the shipped model) is kept aside
#     as demo.old-<time>, and a second run keeps the demo and its dataset.
. tests/lib/lib_check.sh
BUILD=${BUILD:-build}
tmp=$(mktemp -d)
port=
# stop: SIGTERM to the service make run started (found by its port; make
# then ends), and a wait (up to 60 s) until it is gone: it checkpoints a
# running job before it exits.
stop() {
    if [ -n "$port" ] && pkill -TERM -f "cnet serve --port $port "; then
        for _ in $(seq 1 120); do
            pgrep -f "cnet serve --port $port " >/dev/null || break
            sleep 0.5
        done
    fi
    wait
    port=
}
trap 'stop; rm -rf "$tmp"' EXIT
data=$tmp/data

# start: make run in the background, its output in $tmp/out.$1; waits
# for /healthz.
start() {
    port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    make -s -o all run BUILD="$BUILD" RUN_DATA="$data" RUN_PORT="$port" >"$tmp/out.$1" 2>&1 &
    for _ in $(seq 1 120); do
        curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    tail -n 20 "$tmp/out.$1"
    return 1
}

# An older make run's model: random weights, not the shipped model.
mkdir -p "$data/models/demo"
echo '{"note": "an older demo"}' >"$data/models/demo/model_index.json"
check "make run starts the service" start 1
check "the shipped demo model is installed" cmp -s server/demo/model/README.md "$data/models/demo/README.md"
old=$(ls -d "$data/models/demo.old-"* 2>/dev/null | head -n 1)
check "the older demo is kept aside ($old)" grep -q "an older demo" "$old/model_index.json"

# The printed commands: the generate curl (two lines after its heading),
# the job's sed | curl (two lines after its heading).
printed() { sed -n "/^cnet: $1/{n;N;p}" "$tmp/out.1"; }
gen=$(printed "generate" | sed "s|-o out.png|-o $tmp/out.png|")
job=$(printed "train")
check "make run printed the generate command" test -n "$gen"
check "make run printed the training command" test -n "$job"
code=$(sh -c "$gen -s -w '%{http_code}'")
check "the generate command answers 200 (got $code)" test "$code" = 200
diff=$("$BUILD/tests/tool_imgdiff" "$tmp/out.png" server/demo/demo-out.png 2>&1)
echo "   out.png vs server/demo/demo-out.png: $diff"
close() { echo "$diff" | awk '$1 == "mean_abs" && $2 <= 1.5 && $4 <= 24 { ok = 1 } END { exit !ok }'; }
check "its picture is the README's (mean_abs <= 1.5, max_abs <= 24)" close
answer=$(sh -c "$job -s -w ' %{http_code}'")
check "the training command queues a job (202 and an id)" sh -c "echo '$answer' | grep -q '\"id\".* 202\$'"
stop

check "make run again" start 2
check "the second run keeps the demo" test "$(ls -d "$data/models/demo.old-"* | wc -l)" -eq 1
check "the second run keeps the dataset" test -f "$data/local/demo-fill/metadata.jsonl"
stop
summary make_run_test

#!/bin/sh
# cnet train's TensorBoard events (--report_to, --logging_dir,
# --tracker_project_name) read back by a reader independent of cnet's
# encoder: tests/tools/tensorboard_read.py (its own CRC-32C and TFRecord
# framing, Debian's protobuf over protoc's module of
# tests/tools/tensorboard_events.proto). Checks the file's place and name,
# the file_version record, the scalars of every step, the validation images
# (PNG header against the summary's size), a resumed run's second file whose
# SessionLog START hides the first run's repeated steps (and metrics.jsonl
# cut to the checkpoint's step), and --report_to's refusals.
set -u
BUILD=${BUILD:-build}
CNET=$BUILD/cnet
PY=${PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. tests/lib/lib_check.sh

mkdir -p "$tmp/pb"
check protoc_compiles protoc --proto_path=tests/tools --python_out="$tmp/pb" \
    tests/tools/tensorboard_events.proto
read_events() { "$PY" tests/tools/tensorboard_read.py "$tmp/pb" "$@"; }

$CNET init-model --out "$tmp/model" --preset tiny --seed 1 >/dev/null 2>&1
$CNET dataset make-fill --n 8 --size 32 --out "$tmp/fill" >/dev/null 2>&1
common="--pretrained_model_name_or_path $tmp/model --train_data_dir $tmp/fill --resolution 32
        --train_batch_size 4 --learning_rate 1e-4 --seed 5 --checkpointing_steps 2"

# 3 steps, validation at step 2 and the final one: the default place,
# output_dir/logs/train_controlnet/events.out.tfevents.<time>.<host>.<pid>.<n>
$CNET train $common --output_dir "$tmp/a" --max_train_steps 3 --validation_steps 2 \
    --validation_prompt "red circle" --validation_image "$tmp/fill/conditioning_images/00000.png" \
    --num_validation_images 2 >"$tmp/a.log" 2>&1
check train_runs test $? -eq 0
set -- "$tmp"/a/logs/train_controlnet/events.out.tfevents.*
check one_event_file test $# -eq 1 -a -s "$1"
check file_name sh -c "basename '$1' | grep -Eq '^events\.out\.tfevents\.[0-9]{10}\.$(hostname)\.[0-9]+\.[0-9]+$'"
read_events "$1" >"$tmp/a.txt" 2>&1
check reader_accepts_crcs test $? -eq 0
check first_record_file_version test "$(sed -n 2p "$tmp/a.txt")" = "version 0 brain.Event:2"
for tag in loss lr grad_norm samples/s; do
    check "scalar_${tag%/s}_every_step" test \
        "$(awk -v t="$tag" '$1 == "scalar" && $3 == t { printf "%s ", $2 }' "$tmp/a.txt")" = "1 2 3 "
done
# the values are metrics.jsonl's: float32 of the same numbers, which that
# file prints with 8 significant digits (samples/s with 4)
check scalar_values_match_metrics "$PY" -c "
import json, sys
m = [json.loads(l) for l in open('$tmp/a/logs/metrics.jsonl')]
s = {}
for l in open('$tmp/a.txt'):
    f = l.split()
    if f[0] == 'scalar': s[(int(f[1]), f[2])] = float(f[3])
bad = [(r['step'], k, s[(r['step'], k)], r[j]) for r in m
       for k, j, rel in (('loss', 'loss', 1e-6), ('lr', 'lr', 1e-6),
                         ('grad_norm', 'grad_norm', 1e-6), ('samples/s', 'samples_per_sec', 1e-3))
       if abs(s[(r['step'], k)] - r[j]) > rel * abs(r[j])]
if bad: print(bad)
sys.exit(0 if not bad and len(m) == 3 else 1)"
# one image per validation (step 2, the final one at 3): the conditioning
# image and 2 results side by side, 32 px each, RGB
check validation_images test "$(awk '$1 == "image" { print $2, $3, $4, $5, $6, $7, $8 }' \
    "$tmp/a.txt" | tr '\n' ';')" = "2 red_circle 32 96 3 96 32;3 red_circle 32 96 3 96 32;"

# A resumed run (from checkpoint-2, step 3 runs again) adds a second file
# with the steps it ran, opened by a SessionLog START at step 3: TensorBoard
# drops the first run's step 3 (the reader's --shown applies its rule), and
# metrics.jsonl holds each step once.
check first_run_starts_at_1 test "$(awk '$1 == "start" { printf "%s ", $2 }' "$tmp/a.txt")" = "1 "
$CNET train $common --output_dir "$tmp/a" --max_train_steps 4 --resume_from_checkpoint latest \
    >/dev/null 2>&1
set -- "$tmp"/a/logs/train_controlnet/events.out.tfevents.*
check resume_adds_a_file test $# -eq 2
read_events "$@" >"$tmp/b.txt" 2>&1
check resumed_steps_in_files test "$(awk '$1 == "scalar" && $3 == "loss" { printf "%s ", $2 }' \
    "$tmp/b.txt")" = "1 2 3 3 4 "
check resume_starts_at_3 test "$(awk '$1 == "start" { printf "%s ", $2 }' "$tmp/b.txt")" = "1 3 "
read_events --shown "$@" >"$tmp/shown.txt" 2>&1
check resumed_steps_shown_once test "$(awk '$1 == "scalar" && $3 == "loss" { printf "%s ", $2 }' \
    "$tmp/shown.txt")" = "1 2 3 4 "
check resumed_images_shown_once test "$(awk '$1 == "image" { printf "%s ", $2 }' \
    "$tmp/shown.txt")" = "2 "
check resumed_metrics_once test "$(grep -o '"step": [0-9]*' "$tmp/a/logs/metrics.jsonl" |
    awk '{ printf "%s ", $2 }')" = "1 2 3 4 "

# --logging_dir and --tracker_project_name; --report_to all is tensorboard.
$CNET train $common --output_dir "$tmp/c" --max_train_steps 1 --logging_dir tb \
    --tracker_project_name=run1 --report_to all >/dev/null 2>&1
set -- "$tmp"/c/tb/run1/events.out.tfevents.*
check logging_dir_and_project test -s "$1"
$CNET train $common --output_dir "$tmp/c" --max_train_steps 1 --logging_dir "$tmp/abs" \
    >/dev/null 2>&1
set -- "$tmp"/abs/train_controlnet/events.out.tfevents.*
check absolute_logging_dir test -s "$1"

# Trackers on a network service are refused before anything runs, saying
# what to use instead; so is an unknown one.
$CNET train $common --output_dir "$tmp/w" --report_to wandb >"$tmp/w.log" 2>&1
check wandb_refused sh -c "test $? -eq 2 && grep -q 'use --report_to tensorboard' '$tmp/w.log' &&
    test ! -e '$tmp/w'"
$CNET train $common --output_dir "$tmp/w" --report_to=comet_ml >"$tmp/w.log" 2>&1
check comet_ml_refused grep -q "comet_ml: cnet does not send runs" "$tmp/w.log"
$CNET train $common --output_dir "$tmp/w" --report_to mlflow >"$tmp/w.log" 2>&1
check unknown_tracker_refused grep -q "report_to 'mlflow': tensorboard or all" "$tmp/w.log"
check help_lists_flags sh -c "$CNET train --help | grep -q -- '--report_to' &&
    $CNET train --help | grep -q -- '--logging_dir' &&
    $CNET train --help | grep -q -- '--tracker_project_name'"

# A tracker that cannot write fails the run, naming what failed.
touch "$tmp/file"
$CNET train $common --output_dir "$tmp/f" --max_train_steps 1 --logging_dir "$tmp/file" \
    >"$tmp/f.log" 2>&1
check tracker_failure_fails_run sh -c "test $? -eq 1 && grep -q 'cannot create $tmp/file' '$tmp/f.log'"

summary tensorboard_test

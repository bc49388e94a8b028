#!/bin/sh
# cnet train end to end on a tiny generated model and a make-fill dataset:
# the outputs a user gets, bit-exact resume after kill -9, and bad input.
set -u
BUILD=${BUILD:-build}
CNET=$BUILD/cnet
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0
check() { # check NAME COMMAND...
    name=$1
    shift
    if "$@"; then echo "ok   $name"; pass=$((pass + 1)); else echo "FAIL $name"; fail=$((fail + 1)); fi
}

$CNET init-model --out "$tmp/model" --preset tiny --seed 1 >/dev/null 2>&1
$CNET dataset make-fill --n 16 --size 32 --out "$tmp/fill" >/dev/null 2>&1
common="--pretrained_model_name_or_path $tmp/model --train_data_dir $tmp/fill --resolution 32
        --train_batch_size 4 --learning_rate 1e-4 --seed 5 --max_train_steps 12
        --checkpointing_steps 4 --checkpoints_total_limit 2"
common=$(echo $common) # one line, for the sh -c below

# A straight run: the files train_controlnet.py leaves.
$CNET train $common --output_dir "$tmp/a" \
    --validation_prompt "red circle with blue background" \
    --validation_image "$tmp/fill/conditioning_images/00000.png" --num_validation_images 2 \
    >"$tmp/a.log" 2>&1
check train_outputs test -s "$tmp/a/config.json" -a -s "$tmp/a/diffusion_pytorch_model.safetensors" \
    -a -s "$tmp/a/README.md" -a -s "$tmp/a/images_0.png" -a -s "$tmp/a/logs/metrics.jsonl"
check metrics_every_step test "$(wc -l <"$tmp/a/logs/metrics.jsonl")" -eq 12
check total_limit_keeps_two test "$(ls -d "$tmp"/a/checkpoint-* | wc -l)" -eq 2
check model_card_front_matter grep -q "^base_model: model$" "$tmp/a/README.md"

# Gradient accumulation stops at the end of an epoch (accelerate syncs there):
# 16 samples, batch 4, accumulation 3 -> 2 optimizer steps per epoch.
$CNET train $common --output_dir "$tmp/g" --gradient_accumulation_steps 3 --max_train_steps 4 \
    >/dev/null 2>&1
check accumulation_per_epoch test "$(grep -o '"epoch": [0-9]*' "$tmp/g/logs/metrics.jsonl" |
    cut -d' ' -f2 | tr '\n' ' ')" = "0 0 1 1 "

# The memory levers change memory, never results: the same final weights,
# with and without gradient accumulation.
$CNET train $common --output_dir "$tmp/m" --gradient_checkpointing --set_grads_to_none \
    >/dev/null 2>&1
check memory_levers_same_weights cmp -s "$tmp/a/diffusion_pytorch_model.safetensors" \
    "$tmp/m/diffusion_pytorch_model.safetensors"
$CNET train $common --output_dir "$tmp/m2" --gradient_accumulation_steps 3 --max_train_steps 4 \
    --gradient_checkpointing --set_grads_to_none >/dev/null 2>&1
check memory_levers_same_weights_accumulated cmp -s "$tmp/g/diffusion_pytorch_model.safetensors" \
    "$tmp/m2/diffusion_pytorch_model.safetensors"

# kill -9 once checkpoint-4 exists, resume "latest": identical final weights.
$CNET train $common --output_dir "$tmp/b" >"$tmp/b.log" 2>&1 &
pid=$!
while [ ! -d "$tmp/b/checkpoint-4" ] && kill -0 $pid 2>/dev/null; do sleep 0.01; done
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
rm -f "$tmp/b/diffusion_pytorch_model.safetensors"
$CNET train $common --output_dir "$tmp/b" --resume_from_checkpoint latest >"$tmp/b2.log" 2>&1
check resume_skips_done_steps sh -c "! grep -q '^step 1/12' '$tmp/b2.log'"
check resume_bit_exact cmp -s "$tmp/a/diffusion_pytorch_model.safetensors" \
    "$tmp/b/diffusion_pytorch_model.safetensors"

# Bad input: each refused with a message naming the problem, exit 1 or 2.
refuses() { # refuses NAME PATTERN ARGS...
    name=$1 pattern=$2
    shift 2
    $CNET train "$@" >"$tmp/err.log" 2>&1
    rc=$?
    check "$name" sh -c "[ $rc -ne 0 ] && grep -q \"$pattern\" \"$tmp/err.log\""
}
refuses bad_resolution "multiple of 8" $common --output_dir "$tmp/c" --resolution 30
refuses unknown_flag "unknown flag --no_such_flag" $common --output_dir "$tmp/c" --no_such_flag 1
refuses bad_number "not a valid number" $common --output_dir "$tmp/c" --learning_rate abc
refuses missing_dataset "nosuchdir" $common --output_dir "$tmp/c" --train_data_dir "$tmp/nosuchdir"
mkdir -p "$tmp/empty" && : >"$tmp/empty/metadata.jsonl"
refuses empty_dataset "empty" $common --output_dir "$tmp/c" --train_data_dir "$tmp/empty"
refuses bad_scheduler "lr_scheduler" $common --output_dir "$tmp/c" --lr_scheduler sometimes
head -n 1 "$tmp/fill/metadata.jsonl" | sed 's/"text"/"caption"/' >"$tmp/cols.jsonl"
mkdir -p "$tmp/cols" && cp -r "$tmp/fill/images" "$tmp/fill/conditioning_images" "$tmp/cols/" &&
    mv "$tmp/cols.jsonl" "$tmp/cols/metadata.jsonl"
refuses missing_column "text" $common --output_dir "$tmp/c" --train_data_dir "$tmp/cols"

# Corrupt images: a few are skipped and counted, too many refuse the dataset.
cp -r "$tmp/fill" "$tmp/corrupt"
printf 'not a png' >"$tmp/corrupt/images/00003.png"
$CNET train $common --output_dir "$tmp/d" --max_train_steps 2 --max_bad_fraction 0.1 \
    >"$tmp/d.log" 2>&1
check corrupt_image_skipped test -s "$tmp/d/diffusion_pytorch_model.safetensors"
for i in 00000 00001 00002 00004; do printf 'x' >"$tmp/corrupt/images/$i.png"; done
refuses corrupt_dataset_refused "unreadable" $common --output_dir "$tmp/e" \
    --train_data_dir "$tmp/corrupt" --max_bad_fraction 0.1

# Disk full while writing checkpoint-4: checkpoint-2 stays intact and resumable.
$CNET train $common --output_dir "$tmp/f" --max_train_steps 4 --checkpointing_steps 2 \
    >/dev/null 2>&1
size=$(du -k "$tmp/f/checkpoint-2" | tail -n 1 | cut -f1)
rm -f "$tmp/f/diffusion_pytorch_model.safetensors"
sh -c "trap '' XFSZ; ulimit -f $((size / 2)); exec $CNET train $common --output_dir $tmp/f \
    --max_train_steps 8 --checkpointing_steps 2 --resume_from_checkpoint latest" \
    >"$tmp/f.log" 2>&1
rc=$?
check disk_full_fails_cleanly sh -c "[ $rc -ne 0 ] && grep -q 'checkpoint 4' '$tmp/f.log'"
check disk_full_keeps_previous test -s "$tmp/f/checkpoint-2/controlnet/diffusion_pytorch_model.safetensors" \
    -a ! -e "$tmp/f/checkpoint-4" -a ! -e "$tmp/f/checkpoint-4.partial"
$CNET train $common --output_dir "$tmp/f" --max_train_steps 6 --checkpointing_steps 2 \
    --resume_from_checkpoint latest >/dev/null 2>&1
check resumes_after_disk_full test -s "$tmp/f/diffusion_pytorch_model.safetensors"

mkdir -p "$tmp/ro" && chmod 500 "$tmp/ro"
if [ "$(id -u)" != 0 ]; then
    refuses unwritable_output "cannot create" $common --output_dir "$tmp/ro/out"
fi

echo "train_test: $pass passed, $fail failed"
[ "$fail" -eq 0 ]

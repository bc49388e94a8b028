#!/bin/sh
# cnet train end to end on a tiny generated model and a make-fill dataset:
# the outputs a user gets, bit-exact resume after kill -9 (float32 and 8-bit
# AdamW), and bad input.
set -u
BUILD=${BUILD:-build}
CNET=$BUILD/cnet
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. tests/lib/lib_check.sh

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
# as the script: a checkpoint at every multiple of checkpointing_steps, the last step's too
check checkpoint_at_final_step test -d "$tmp/a/checkpoint-12" -a -d "$tmp/a/checkpoint-8"

# --resume_from_checkpoint NAME is looked up under output_dir (the script
# takes the basename); one that is not there starts a new run, with a note.
$CNET train $common --output_dir "$tmp/n" --max_train_steps 4 \
    --resume_from_checkpoint checkpoint-4 >"$tmp/n.log" 2>&1
check resume_missing_starts_fresh sh -c "grep -q \"checkpoint 'checkpoint-4' does not exist\" \
    '$tmp/n.log' && grep -q '^step 1/4' '$tmp/n.log' && test -d '$tmp/n/checkpoint-4'"
$CNET train $common --output_dir "$tmp/n" --max_train_steps 6 \
    --resume_from_checkpoint "/elsewhere/checkpoint-4" >"$tmp/n2.log" 2>&1
check resume_by_name_under_output_dir sh -c "! grep -q '^step 1/6' '$tmp/n2.log' &&
    grep -q '^step 5/6' '$tmp/n2.log'"

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

# --dataloader_num_workers decodes the next batch in threads while a step
# runs: the same samples, order and pixels, so the same weights bit for bit;
# a checkpoint saves the trained position, not the one read ahead, so a
# resume from it with another worker count ends the same too.
$CNET train $common --output_dir "$tmp/w" --dataloader_num_workers 2 >/dev/null 2>&1
check workers_same_weights cmp -s "$tmp/a/diffusion_pytorch_model.safetensors" \
    "$tmp/w/diffusion_pytorch_model.safetensors"
check workers_checkpoint_position cmp -s "$tmp/a/checkpoint-8/trainer_state.json" \
    "$tmp/w/checkpoint-8/trainer_state.json"
rm -f "$tmp/w/diffusion_pytorch_model.safetensors"
$CNET train $common --output_dir "$tmp/w" --dataloader_num_workers 3 \
    --resume_from_checkpoint checkpoint-8 >/dev/null 2>&1
check workers_resume_same_weights cmp -s "$tmp/a/diffusion_pytorch_model.safetensors" \
    "$tmp/w/diffusion_pytorch_model.safetensors"
$CNET train $common --output_dir "$tmp/w1" --train_batch_size 3 --max_train_steps 7 \
    --gradient_accumulation_steps 2 >/dev/null 2>&1
$CNET train $common --output_dir "$tmp/w2" --train_batch_size 3 --max_train_steps 7 \
    --gradient_accumulation_steps 2 --dataloader_num_workers 2 >/dev/null 2>&1
check workers_short_batches_same_weights cmp -s "$tmp/w1/diffusion_pytorch_model.safetensors" \
    "$tmp/w2/diffusion_pytorch_model.safetensors"
check workers_mid_epoch_position cmp -s "$tmp/w1/checkpoint-4/trainer_state.json" \
    "$tmp/w2/checkpoint-4/trainer_state.json"
check workers_limit sh -c "! $CNET train $common --output_dir '$tmp/w3' \
    --dataloader_num_workers 65 >'$tmp/w3.log' 2>&1 && grep -q dataloader_num_workers '$tmp/w3.log'"

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

# --cache_latents: a resume past the first epoch meets its samples in other
# batches than the straight run first did; the cached latents, encoded one
# sample at a time, are the same, and so are the final weights.
$CNET train $common --output_dir "$tmp/c" --cache_latents >/dev/null 2>&1
$CNET train $common --output_dir "$tmp/c2" --cache_latents --max_train_steps 8 >/dev/null 2>&1
$CNET train $common --output_dir "$tmp/c2" --cache_latents --resume_from_checkpoint latest \
    >/dev/null 2>&1
check cache_latents_resume_bit_exact cmp -s "$tmp/c/diffusion_pytorch_model.safetensors" \
    "$tmp/c2/diffusion_pytorch_model.safetensors"

# --mixed_precision bf16 on the CPU: without AVX512-BF16 float32 with one
# note, the weights of a run without it; with it (kernels/cpu/gemm_bf16.c)
# bf16 products, no note, other weights. The checkpoint and the model card
# record what was computed.
$CNET train $common --output_dir "$tmp/p32" --max_train_steps 2 >/dev/null 2>&1
$CNET train $common --output_dir "$tmp/p16" --max_train_steps 2 --checkpointing_steps 1 \
    --mixed_precision bf16 >"$tmp/p16.log" 2>&1
if grep -q avx512_bf16 /proc/cpuinfo; then
    check mixed_precision_cpu_bf16_no_note sh -c "! grep -q 'computes in float32' '$tmp/p16.log'"
    check mixed_precision_cpu_bf16_weights sh -c "test -s '$tmp/p16/diffusion_pytorch_model.safetensors' \
        && ! cmp -s '$tmp/p32/diffusion_pytorch_model.safetensors' \
        '$tmp/p16/diffusion_pytorch_model.safetensors'"
    p16_ran=bf16
else
    check mixed_precision_cpu_note grep -q \
        "cpu backend computes in float32; --mixed_precision bf16 applies on cuda" "$tmp/p16.log"
    check mixed_precision_cpu_same_weights cmp -s "$tmp/p32/diffusion_pytorch_model.safetensors" \
        "$tmp/p16/diffusion_pytorch_model.safetensors"
    p16_ran=no
fi
check mixed_precision_recorded grep -q "\"mixed_precision\": \"$p16_ran\"" \
    "$tmp/p16/checkpoint-1/trainer_state.json"
check mixed_precision_model_card grep -q "mixed precision $p16_ran" "$tmp/p16/README.md"

# --mixed_precision fp16: dynamic loss scaling as GradScaler, on the CPU too.
# The scale is a power of two, exact in float32, so the weights equal those
# of a run without it; the scale is logged, checkpointed with its good-step
# counter, and a kill -9 + resume "latest" continues bit-exactly.
$CNET train $common --output_dir "$tmp/h16" --max_train_steps 2 --mixed_precision fp16 \
    >/dev/null 2>&1
check fp16_loss_scaling_same_weights cmp -s "$tmp/p32/diffusion_pytorch_model.safetensors" \
    "$tmp/h16/diffusion_pytorch_model.safetensors"
check fp16_loss_scale_logged test "$(grep -c '"loss_scale": 65536, "step_skipped": false' \
    "$tmp/h16/logs/metrics.jsonl")" -eq 2
check no_loss_scale_without_fp16 sh -c "! grep -q loss_scale '$tmp/p32/logs/metrics.jsonl' \
    '$tmp/p16/logs/metrics.jsonl' '$tmp/p16/checkpoint-1/trainer_state.json'"
$CNET train $common --output_dir "$tmp/h" --mixed_precision fp16 >/dev/null 2>&1 &
pid=$!
while [ ! -d "$tmp/h/checkpoint-4" ] && kill -0 $pid 2>/dev/null; do sleep 0.01; done
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
rm -f "$tmp/h/diffusion_pytorch_model.safetensors"
$CNET train $common --output_dir "$tmp/h" --mixed_precision fp16 --resume_from_checkpoint latest \
    >/dev/null 2>&1
check fp16_resume_bit_exact cmp -s "$tmp/a/diffusion_pytorch_model.safetensors" \
    "$tmp/h/diffusion_pytorch_model.safetensors"
check fp16_resume_keeps_counter grep -q '"loss_scale_growth_tracker": 8' \
    "$tmp/h/checkpoint-8/trainer_state.json"

# --use_8bit_adam (8 steps): 8-bit AdamW state in the checkpoint, finite
# losses, not the float32 run's weights, about a quarter of its optimizer
# memory (the tiny model keeps more of its tensors under min_8bit_size:
# > 3x), and kill -9 + resume "latest" bit-identical to the straight run.
$CNET train $common --output_dir "$tmp/q" --use_8bit_adam --max_train_steps 8 >"$tmp/q.log" 2>&1
check adam8_checkpoint_format test -s "$tmp/q/checkpoint-4/optimizer_8bit.safetensors" \
    -a ! -e "$tmp/q/checkpoint-4/optimizer_exp_avg.safetensors"
check adam8_losses_finite sh -c "[ \$(grep -c '\"loss\": [0-9]' '$tmp/q/logs/metrics.jsonl') -eq 8 ] &&
    ! grep -qi 'nan\|inf' '$tmp/q/logs/metrics.jsonl'"
check adam8_changes_training sh -c "! cmp -s '$tmp/q/diffusion_pytorch_model.safetensors' \
    '$tmp/a/checkpoint-8/controlnet/diffusion_pytorch_model.safetensors'"
state_mb() { sed -n 's/^cnet train: AdamW state \([0-9.]*\) MB.*/\1/p' "$1"; }
check adam8_state_smaller awk -v q="$(state_mb "$tmp/q.log")" -v a="$(state_mb "$tmp/a.log")" \
    'BEGIN { exit !(q > 0 && q * 3 < a) }'
$CNET train $common --output_dir "$tmp/r" --use_8bit_adam --max_train_steps 8 >"$tmp/r.log" 2>&1 &
pid=$!
while [ ! -d "$tmp/r/checkpoint-4" ] && kill -0 $pid 2>/dev/null; do sleep 0.01; done
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
rm -f "$tmp/r/diffusion_pytorch_model.safetensors"
$CNET train $common --output_dir "$tmp/r" --use_8bit_adam --max_train_steps 8 \
    --resume_from_checkpoint latest >"$tmp/r2.log" 2>&1
check adam8_resume_skips_done_steps sh -c "! grep -q '^step 1/8' '$tmp/r2.log'"
check adam8_resume_bit_exact cmp -s "$tmp/q/diffusion_pytorch_model.safetensors" \
    "$tmp/r/diffusion_pytorch_model.safetensors"

# Bad input: each refused with a message naming the problem, exit 1 or 2.
refuses() { # refuses NAME PATTERN ARGS...
    name=$1 pattern=$2
    shift 2
    $CNET train "$@" >"$tmp/err.log" 2>&1
    rc=$?
    check "$name" sh -c "[ $rc -ne 0 ] && grep -q \"$pattern\" \"$tmp/err.log\""
}
refuses bad_resolution "multiple of 8" $common --output_dir "$tmp/c" --resolution 30
refuses unknown_flag "unknown option .--no_such_flag." $common --output_dir "$tmp/c" --no_such_flag 1
refuses bad_number "learning_rate wants a number" $common --output_dir "$tmp/c" --learning_rate abc
refuses missing_dataset "nosuchdir" $common --output_dir "$tmp/c" --train_data_dir "$tmp/nosuchdir"
mkdir -p "$tmp/empty" && : >"$tmp/empty/metadata.jsonl"
refuses empty_dataset "empty" $common --output_dir "$tmp/c" --train_data_dir "$tmp/empty"
refuses bad_scheduler "lr_scheduler" $common --output_dir "$tmp/c" --lr_scheduler sometimes
refuses bad_precision "expected no, fp16 or bf16" $common --output_dir "$tmp/c" --mixed_precision fp8
refuses adam8_resume_needs_flag "resume it with --use_8bit_adam" $common --output_dir "$tmp/q" \
    --max_train_steps 16 --resume_from_checkpoint latest
head -n 1 "$tmp/fill/metadata.jsonl" | sed 's/"text"/"caption"/' >"$tmp/cols.jsonl"
mkdir -p "$tmp/cols" && cp -r "$tmp/fill/images" "$tmp/fill/conditioning_images" "$tmp/cols/" &&
    mv "$tmp/cols.jsonl" "$tmp/cols/metadata.jsonl"
refuses image_without_prompt "validation_image needs --validation_prompt" $common \
    --output_dir "$tmp/c" --validation_image "$tmp/fill/conditioning_images/00000.png"
refuses no_dataset "give one of --dataset_name and --train_data_dir" --output_dir "$tmp/c" \
    --pretrained_model_name_or_path "$tmp/model"
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

# Disk full while writing checkpoint-4: checkpoint-2 stays intact and resumable, even with
# --checkpoints_total_limit 1 (the oldest go only once the new one is complete).
$CNET train $common --output_dir "$tmp/f" --max_train_steps 3 --checkpointing_steps 2 \
    >/dev/null 2>&1
size=$(du -k "$tmp/f/checkpoint-2" | tail -n 1 | cut -f1)
rm -f "$tmp/f/diffusion_pytorch_model.safetensors"
sh -c "trap '' XFSZ; ulimit -f $((size / 2)); exec $CNET train $common --output_dir $tmp/f \
    --max_train_steps 8 --checkpointing_steps 2 --checkpoints_total_limit 1 \
    --resume_from_checkpoint latest" \
    >"$tmp/f.log" 2>&1
rc=$?
check disk_full_fails_cleanly sh -c "[ $rc -ne 0 ] && grep -q 'checkpoint 4' '$tmp/f.log'"
check disk_full_keeps_previous test -s "$tmp/f/checkpoint-2/controlnet/diffusion_pytorch_model.safetensors" \
    -a ! -e "$tmp/f/checkpoint-4" -a -z "$(ls -d "$tmp/f"/checkpoint-4.partial* 2>/dev/null)"
$CNET train $common --output_dir "$tmp/f" --max_train_steps 6 --checkpointing_steps 2 \
    --resume_from_checkpoint latest >/dev/null 2>&1
check resumes_after_disk_full test -s "$tmp/f/diffusion_pytorch_model.safetensors"

mkdir -p "$tmp/ro" && chmod 500 "$tmp/ro"
if [ "$(id -u)" != 0 ]; then
    refuses unwritable_output "cannot create" $common --output_dir "$tmp/ro/out"
fi

# SDXL (train_controlnet_sdxl.py, picked from the model): tiny-sdxl trains with both text
# encoders and the time ids, saves a ControlNet in diffusers' layout (the key set of
# tiny-sdxl/controlnet), resumes bit-exactly, and the memory levers and an explicit VAE
# folder change nothing but memory; the crop of the time ids reaches the model.
XL=${FIXTURES:-tests/fixtures}/tiny-sdxl
if [ -d "$XL" ]; then
    $CNET dataset make-fill --n 6 --size 24 --out "$tmp/xfill" >/dev/null 2>&1
    xl="--pretrained_model_name_or_path $XL --train_data_dir $tmp/xfill --resolution 16
        --train_batch_size 2 --learning_rate 1e-3 --seed 3 --max_train_steps 4
        --checkpointing_steps 2 --crops_coords_top_left_h 2 --crops_coords_top_left_w 6"
    xl=$(echo $xl)
    $CNET train $xl --output_dir "$tmp/xa" >"$tmp/xa.log" 2>&1
    check xl_train_outputs test -s "$tmp/xa/config.json" -a -s "$tmp/xa/README.md" \
        -a -s "$tmp/xa/diffusion_pytorch_model.safetensors" -a -d "$tmp/xa/checkpoint-2"
    check xl_diffusers_keys /usr/bin/python3 -c '
import json, struct, sys
def keys(p):
    f = open(p + "/diffusion_pytorch_model.safetensors", "rb")
    h = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
    h.pop("__metadata__", None)
    return set(h)
c = [json.load(open(p + "/config.json")) for p in sys.argv[1:]]
sys.exit(keys(sys.argv[1]) != keys(sys.argv[2]) or set(c[0]) != set(c[1]))' "$tmp/xa" "$XL/controlnet"
    check xl_model_card grep -q "^- stable-diffusion-xl$" "$tmp/xa/README.md"
    check xl_trained_generates $CNET generate --model "$XL" --controlnet "$tmp/xa" \
        --image "$tmp/xfill/conditioning_images/00000.png" --prompt "a red circle" --steps 2 \
        --width 16 --height 16 --out "$tmp/xa-gen.png"
    cp -r "$tmp/xa" "$tmp/xr" && rm -rf "$tmp/xr/checkpoint-4" "$tmp/xr/diffusion_pytorch_model.safetensors"
    $CNET train $xl --output_dir "$tmp/xr" --resume_from_checkpoint checkpoint-2 >"$tmp/xr.log" 2>&1
    check xl_resume_bit_exact sh -c "! grep -q '^step 1/4' '$tmp/xr.log' && cmp -s \
        '$tmp/xa/diffusion_pytorch_model.safetensors' '$tmp/xr/diffusion_pytorch_model.safetensors'"
    $CNET train $xl --output_dir "$tmp/xm" --gradient_checkpointing --set_grads_to_none \
        --pretrained_vae_model_name_or_path "$XL/vae" >/dev/null 2>&1
    check xl_memory_levers_same_weights cmp -s "$tmp/xa/diffusion_pytorch_model.safetensors" \
        "$tmp/xm/diffusion_pytorch_model.safetensors"
    $CNET train $xl --output_dir "$tmp/x8" --use_8bit_adam --mixed_precision bf16 --cache_latents \
        >"$tmp/x8.log" 2>&1
    check xl_adam8_cached_trains sh -c "test -s '$tmp/x8/diffusion_pytorch_model.safetensors' &&
        grep -q '^step 4/4' '$tmp/x8.log' && ! grep -q 'loss nan' '$tmp/x8.log'"
    $CNET train $xl --output_dir "$tmp/xc" --crops_coords_top_left_h 0 >/dev/null 2>&1
    check xl_crops_reach_model sh -c "test -s '$tmp/xc/diffusion_pytorch_model.safetensors' &&
        ! cmp -s '$tmp/xa/diffusion_pytorch_model.safetensors' \
        '$tmp/xc/diffusion_pytorch_model.safetensors'"
    refuses xl_bad_vae "pretrained_vae_model_name_or_path" $xl --output_dir "$tmp/xv" \
        --pretrained_vae_model_name_or_path "$tmp/nothing"
    # validation through the SDXL pipeline: a grid of the control image and 2 images
    $CNET train $xl --output_dir "$tmp/xw" --num_validation_images 2 --validation_steps 2 \
        --validation_prompt "a red circle" --validation_image "$tmp/xfill/conditioning_images/00000.png" \
        >"$tmp/xw.log" 2>&1
    check xl_validation_grid /usr/bin/python3 -c '
import struct, sys
d = open(sys.argv[1], "rb").read(24)
sys.exit(d[:8] != b"\x89PNG\r\n\x1a\n" or struct.unpack(">II", d[16:24]) != (48, 16))' \
        "$tmp/xw/images_0.png"
fi

summary train_test

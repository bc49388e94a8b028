#!/bin/sh
# The commands on a GPU (issue 8), with the real binary on a tiny generated
# model: cnet generate on cuda in float32 (the CPU's image up to rounding) and
# at bf16 (frozen weights stored in bf16, tensor-core products and attention:
# close to it); cnet train on cuda at bf16 with validation images (the files
# a user gets, finite losses, the precision recorded), a kill -9 + resume
# "latest" giving the straight run's weights byte for byte, fp16 with loss
# scaling, 8-bit AdamW and gradient checkpointing; and the trained
# ControlNet generating on cuda. Skips itself (one line) where no GPU is
# visible; part of `make test` and `make test-cuda`.
set -u
BUILD=${BUILD:-build}
CNET=$BUILD/cnet
DIFF=$BUILD/tests/tool_imgdiff
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. tests/lib/lib_check.sh
# within FILE_A FILE_B MEAN MAX: the images' mean and largest channel
# difference (0..255) are at most MEAN and MAX
within() {
    set -- $("$DIFF" "$1" "$2" 2>/dev/null || echo "mean_abs 999 max_abs 999") "$3" "$4"
    echo "    mean_abs $2, max_abs $4 (bounds $5, $6)"
    awk -v m="$2" -v x="$4" -v bm="$5" -v bx="$6" 'BEGIN { exit !(m <= bm && x <= bx) }'
}

$CNET init-model --out "$tmp/model" --preset tiny --seed 1 >/dev/null 2>&1
$CNET dataset make-fill --n 16 --size 32 --out "$tmp/fill" >/dev/null 2>&1
cond="$tmp/fill/conditioning_images/00000.png"
gen="--model $tmp/model --image $cond --prompt red-circle --steps 4 --seed 3 --width 32
     --height 32"
gen=$(echo $gen)

cn="--controlnet $tmp/model/controlnet"
$CNET generate $gen $cn --device cuda --out "$tmp/f32.png" >"$tmp/gen.log" 2>&1
if grep -q "no CUDA device visible" "$tmp/gen.log"; then
    echo "cuda_cli_test: skipped (no CUDA device visible)"
    echo "cuda_cli_test: 0 passed, 0 failed"
    exit 0
fi
$CNET generate $gen $cn --device cpu --out "$tmp/cpu.png" >/dev/null 2>&1
$CNET generate $gen $cn --device cuda --mixed_precision bf16 --out "$tmp/bf16.png" \
    >"$tmp/bf16.log" 2>&1
check generate_cuda_f32_is_the_cpu_image within "$tmp/cpu.png" "$tmp/f32.png" 0.5 2
check generate_cuda_bf16_close within "$tmp/cpu.png" "$tmp/bf16.png" 6 64
check generate_bf16_weights_stored grep -q "frozen weights stored in BF16" "$tmp/bf16.log"

common="--pretrained_model_name_or_path $tmp/model --train_data_dir $tmp/fill --resolution 32
        --train_batch_size 4 --learning_rate 1e-4 --seed 5 --max_train_steps 40
        --checkpointing_steps 2 --device cuda"
common=$(echo $common)
finite_losses() { # every metrics line has a numeric loss
    test "$(grep -c '"loss": [-0-9]' "$1/logs/metrics.jsonl")" -eq "$(wc -l <"$1/logs/metrics.jsonl")"
}

$CNET train $common --output_dir "$tmp/a" --mixed_precision bf16 \
    --validation_prompt "red circle" --validation_image "$cond" --validation_steps 40 \
    >"$tmp/a.log" 2>&1
check train_bf16_outputs test -s "$tmp/a/diffusion_pytorch_model.safetensors" \
    -a -s "$tmp/a/images_0.png" -a -s "$tmp/a/README.md"
check train_bf16_finite_losses finite_losses "$tmp/a"
check train_bf16_recorded grep -q '"mixed_precision": "bf16"' "$tmp/a/checkpoint-2/trainer_state.json"

$CNET train $common --output_dir "$tmp/b" --mixed_precision bf16 >/dev/null 2>&1 &
pid=$!
while [ ! -d "$tmp/b/checkpoint-2" ] && kill -0 $pid 2>/dev/null; do sleep 0.01; done
killed=0
kill -9 $pid 2>/dev/null && killed=1
wait $pid 2>/dev/null
rm -f "$tmp/b/diffusion_pytorch_model.safetensors"
$CNET train $common --output_dir "$tmp/b" --mixed_precision bf16 --resume_from_checkpoint latest \
    >"$tmp/b2.log" 2>&1
check train_killed_mid_run test "$killed" -eq 1
check train_resume_skips_done_steps sh -c "! grep -q '^step 1/40' '$tmp/b2.log'"
check train_bf16_resume_bit_exact cmp -s "$tmp/a/diffusion_pytorch_model.safetensors" \
    "$tmp/b/diffusion_pytorch_model.safetensors"

$CNET train $common --output_dir "$tmp/h" --mixed_precision fp16 --use_8bit_adam \
    --gradient_checkpointing --set_grads_to_none >/dev/null 2>&1
check train_fp16_levers_finite finite_losses "$tmp/h"
check train_fp16_loss_scale_logged grep -q '"loss_scale": ' "$tmp/h/logs/metrics.jsonl"

$CNET generate $gen --controlnet "$tmp/a" --device cuda --mixed_precision bf16 \
    --out "$tmp/trained.png" >/dev/null 2>&1
check generate_with_trained_controlnet test -s "$tmp/trained.png"

summary cuda_cli_test

#!/bin/sh
# cnet train-unet end to end on the fixtures' tiny-sd and a make-fill
# dataset: the pipeline folder it writes is one `cnet generate` loads (with
# the fixture ControlNet); resuming from a checkpoint gives bit-identical
# weights (live and EMA) to an uninterrupted run; --use_ema saves the EMA,
# which differs from the live weights; --input_perturbation changes the
# training; the flags cnet does not do are refused by name.
set -u
BUILD=${BUILD:-build}
CNET=$BUILD/cnet
FIXTURES=${FIXTURES:-tests/fixtures}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. tests/lib/lib_check.sh

$CNET dataset make-fill --n 8 --size 16 --out "$tmp/fill" >/dev/null 2>&1
common="--pretrained_model_name_or_path $FIXTURES/tiny-sd --train_data_dir $tmp/fill
        --resolution 16 --train_batch_size 2 --seed 3 --use_ema --noise_offset 0.1
        --snr_gamma 5 --checkpointing_steps 2"
common=$(echo $common)

# An uninterrupted run of 4 steps.
$CNET train-unet $common --max_train_steps 4 --output_dir "$tmp/a" >"$tmp/a.log" 2>&1
check pipeline_folder sh -c "for f in model_index.json unet/config.json \
    unet/diffusion_pytorch_model.safetensors vae/config.json text_encoder/model.safetensors \
    tokenizer/vocab.json scheduler/scheduler_config.json; do test -s '$tmp/a/'\$f || exit 1; done"
check model_index_is_sd_pipeline sh -c "grep -q '\"StableDiffusionPipeline\"' \
    '$tmp/a/model_index.json' && ! grep -q controlnet '$tmp/a/model_index.json'"
check checkpoint_holds_unet_and_ema test -s "$tmp/a/checkpoint-2/unet/diffusion_pytorch_model.safetensors" \
    -a -s "$tmp/a/checkpoint-2/unet_ema/diffusion_pytorch_model.safetensors"
check weights_moved sh -c "! cmp -s '$FIXTURES/tiny-sd/unet/diffusion_pytorch_model.safetensors' \
    '$tmp/a/unet/diffusion_pytorch_model.safetensors'"
# --use_ema: the EMA (decays 0, 2/11, 3/12, 4/13) is not the live weights.
check ema_differs_from_live sh -c "! cmp -s '$tmp/a/checkpoint-4/unet/diffusion_pytorch_model.safetensors' \
    '$tmp/a/checkpoint-4/unet_ema/diffusion_pytorch_model.safetensors'"

# Interrupted after 2 steps, resumed to 4: the same bytes.
$CNET train-unet $common --max_train_steps 2 --output_dir "$tmp/b" >"$tmp/b1.log" 2>&1
$CNET train-unet $common --max_train_steps 4 --output_dir "$tmp/b" \
    --resume_from_checkpoint latest >"$tmp/b2.log" 2>&1
check resume_continues sh -c "! grep -q '^step 1/4' '$tmp/b2.log' && grep -q '^step 3/4' '$tmp/b2.log'"
check resume_bit_identical_live cmp -s "$tmp/a/checkpoint-4/unet/diffusion_pytorch_model.safetensors" \
    "$tmp/b/checkpoint-4/unet/diffusion_pytorch_model.safetensors"
check resume_bit_identical_ema cmp -s "$tmp/a/unet/diffusion_pytorch_model.safetensors" \
    "$tmp/b/unet/diffusion_pytorch_model.safetensors"

# --input_perturbation reaches the step (the weights after 2 steps differ).
$CNET train-unet $common --max_train_steps 2 --input_perturbation 0.1 --output_dir "$tmp/p" \
    >"$tmp/p.log" 2>&1
check input_perturbation_reaches_step sh -c "test -s '$tmp/p/checkpoint-2/unet/diffusion_pytorch_model.safetensors' &&
    ! cmp -s '$tmp/p/checkpoint-2/unet/diffusion_pytorch_model.safetensors' \
    '$tmp/b/checkpoint-2/unet/diffusion_pytorch_model.safetensors'"

# The output is a pipeline `cnet generate` uses.
$CNET generate --model "$tmp/a" --controlnet "$FIXTURES/tiny-sd/controlnet" \
    --image "$FIXTURES/images/conditioning_23x37.png" --prompt "red circle" --steps 2 \
    --height 16 --width 16 --out "$tmp/gen.png" >"$tmp/gen.log" 2>&1
check generate_uses_output test -s "$tmp/gen.png"

# Refusals name the flag.
refuses() {
    name=$1 flag=$2
    shift 2
    $CNET train-unet "$@" >"$tmp/r.log" 2>&1
    rc=$?
    check "$name" sh -c "test $rc -ne 0 && grep -q -- '$flag' '$tmp/r.log'"
}
refuses refuses_random_flip --random_flip $common --random_flip --output_dir "$tmp/r1"
refuses refuses_controlnet_flag --conditioning_image_column $common \
    --conditioning_image_column c --output_dir "$tmp/r2"
refuses refuses_validation_prompts --validation_prompts $common \
    --validation_prompts "a red circle" --output_dir "$tmp/r3"
$CNET train --pretrained_model_name_or_path "$FIXTURES/tiny-sd" --train_data_dir "$tmp/fill" \
    --output_dir "$tmp/r4" --use_ema >"$tmp/r4.log" 2>&1
rc=$?
check train_refuses_use_ema sh -c "test $rc -ne 0 && grep -q use_ema '$tmp/r4.log'"

summary train_unet_test

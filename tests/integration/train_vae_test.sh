#!/bin/sh
# cnet train-vae end to end on the fixtures' tiny-sd VAE and a make-fill
# dataset: the reconstruction loss drops clearly over a short run (the mean
# of the last 10 steps' MSE under LOSS_DROP of the first step's); resuming
# from a checkpoint gives bit-identical weights to an uninterrupted run; the
# output is vae/ in diffusers layout, which `cnet generate` loads as a
# pipeline's vae/ (and differs from the start); validation reconstructions
# are PNGs; --kl_weight reaches the step; --mixed_precision fp16's loss
# scaling is exact; the other trainers' flags are refused by name.
set -u
BUILD=${BUILD:-build}
CNET=$BUILD/cnet
FIXTURES=${FIXTURES:-tests/fixtures}
# The last 10 steps' mean reconstruction MSE, as a part of the first's.
LOSS_DROP=0.6
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. tests/lib/lib_check.sh

$CNET dataset make-fill --n 32 --size 16 --out "$tmp/fill" --seed 1 >/dev/null 2>&1
common="--pretrained_model_name_or_path $FIXTURES/tiny-sd --train_data_dir $tmp/fill
        --resolution 16 --train_batch_size 4 --seed 3 --learning_rate 1e-3 --center_crop"
common=$(echo $common)

# A short run learns: 40 steps (5 epochs).
$CNET train-vae $common --max_train_steps 40 --checkpointing_steps 20 --output_dir "$tmp/a" \
    >"$tmp/a.log" 2>&1
check vae_folder sh -c "test -s '$tmp/a/vae/config.json' &&
    test -s '$tmp/a/vae/diffusion_pytorch_model.safetensors'"
check checkpoint_holds_vae test -s "$tmp/a/checkpoint-20/vae/diffusion_pytorch_model.safetensors"
check validation_pngs sh -c "test -s '$tmp/a/validation/step_20.png' &&
    test -s '$tmp/a/validation/step_40.png' && head -c 8 '$tmp/a/validation/step_40.png' |
    grep -q PNG"
check weights_moved sh -c "! cmp -s '$FIXTURES/tiny-sd/vae/diffusion_pytorch_model.safetensors' \
    '$tmp/a/vae/diffusion_pytorch_model.safetensors'"
check reconstruction_loss_drops awk -F, -v drop=$LOSS_DROP '
    NR == 2 { first = $2 } NR > 31 { sum += $2; n++ }
    END { printf "    first %.4f, last 10 mean %.4f\n", first, sum / n; exit !(n == 10 && sum / n < drop * first) }' \
    "$tmp/a/loss.csv"

# Interrupted after 20 steps, resumed to 40: the same bytes.
$CNET train-vae $common --max_train_steps 20 --checkpointing_steps 20 --output_dir "$tmp/b" \
    >"$tmp/b1.log" 2>&1
$CNET train-vae $common --max_train_steps 40 --checkpointing_steps 20 --output_dir "$tmp/b" \
    --resume_from_checkpoint latest >"$tmp/b2.log" 2>&1
check resume_continues sh -c "! grep -q '^step 1/40' '$tmp/b2.log' && grep -q '^step 21/40' '$tmp/b2.log'"
check resume_bit_identical cmp -s "$tmp/a/vae/diffusion_pytorch_model.safetensors" \
    "$tmp/b/vae/diffusion_pytorch_model.safetensors"

# --kl_weight reaches the step.
$CNET train-vae $common --max_train_steps 2 --kl_weight 0.1 --output_dir "$tmp/k" >"$tmp/k.log" 2>&1
$CNET train-vae $common --max_train_steps 2 --output_dir "$tmp/k0" >"$tmp/k0.log" 2>&1
check kl_weight_reaches_step sh -c "test -s '$tmp/k/vae/diffusion_pytorch_model.safetensors' &&
    ! cmp -s '$tmp/k/vae/diffusion_pytorch_model.safetensors' \
    '$tmp/k0/vae/diffusion_pytorch_model.safetensors'"

# --mixed_precision fp16: GradScaler's scale is a power of two, so on the
# CPU (float32 compute) the weights are those of a run without; its state is
# checkpointed.
$CNET train-vae $common --max_train_steps 2 --checkpointing_steps 2 --mixed_precision fp16 \
    --output_dir "$tmp/h" >"$tmp/h.log" 2>&1
check fp16_loss_scaling_exact cmp -s "$tmp/h/vae/diffusion_pytorch_model.safetensors" \
    "$tmp/k0/vae/diffusion_pytorch_model.safetensors"
check fp16_checkpoint_holds_scale grep -q loss_scale "$tmp/h/checkpoint-2/trainer_state.json"

# The trained vae/ in a pipeline folder: cnet generate loads it.
mkdir "$tmp/p"
for c in model_index.json unet text_encoder tokenizer scheduler; do
    cp -r "$FIXTURES/tiny-sd/$c" "$tmp/p/"
done
cp -r "$tmp/a/vae" "$tmp/p/vae"
$CNET generate --model "$tmp/p" --controlnet "$FIXTURES/tiny-sd/controlnet" \
    --image "$FIXTURES/images/conditioning_23x37.png" --prompt "red circle" --steps 2 \
    --height 16 --width 16 --out "$tmp/gen.png" >"$tmp/gen.log" 2>&1
check generate_loads_trained_vae test -s "$tmp/gen.png"

# Flags of the other trainers are refused by name.
$CNET train-vae $common --max_train_steps 2 --use_ema --output_dir "$tmp/r" >"$tmp/r.log" 2>&1
check refuses_use_ema sh -c "grep -q 'use_ema' '$tmp/r.log' && test ! -e '$tmp/r/vae'"

summary train_vae_test

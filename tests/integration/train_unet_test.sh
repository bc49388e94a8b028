#!/bin/sh
# cnet train-unet end to end on the fixtures' tiny-sd and a make-fill
# dataset: the pipeline folder it writes is one `cnet generate` loads (with
# the fixture ControlNet); resuming from a checkpoint gives bit-identical
# weights (live and EMA) to an uninterrupted run; --use_ema saves the EMA,
# which differs from the live weights; --input_perturbation changes the
# training; --validation_prompts renders at the epochs' ends (every
# --validation_epochs) with the EMA weights, leaves the training unchanged,
# and its images are StableDiffusionPipeline's: cnet generate of the saved
# pipeline with the same prompt, seed, 20 steps of the model's scheduler and
# guidance 7.5, through the fixture ControlNet at scale 0 (the same
# pipeline, tests/unit/test_pipeline_no_controlnet.c); the model card; the
# script's RandomCrop (without --center_crop) and --random_flip change the
# training and are reproducible from --seed; --proportion_empty_prompts 1
# trains on "" captions; the flags cnet does not do are
# refused by name.
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

# Validation: 8 samples at batch 2 are 4 steps an epoch; 6 steps end
# epoch 0 at step 4 and stop in epoch 1 at step 6. The truth for the
# images: the same 6 steps without validation (n), and cnet generate.
$CNET train-unet $common --max_train_steps 6 --output_dir "$tmp/n" >"$tmp/n.log" 2>&1
$CNET train-unet $common --max_train_steps 6 --validation_epochs 1 \
    --validation_prompts "a red circle" "a blue square" --output_dir "$tmp/v" >"$tmp/v.log" 2>&1
$CNET train-unet $common --max_train_steps 6 --validation_epochs 2 \
    --validation_prompts "a red circle" --output_dir "$tmp/w" >"$tmp/w.log" 2>&1
V=$tmp/v/logs/validation
check validation_at_epoch_ends sh -c "for f in step_4_0 step_4_1 step_6_0 step_6_1; do \
    test -s '$V/'\$f.png || exit 1; done; ! test -e '$V/step_2_0.png'"
check validation_every_epochs sh -c "test -s '$tmp/w/logs/validation/step_4_0.png' &&
    ! test -e '$tmp/w/logs/validation/step_6_0.png'"
check validation_keeps_live_weights cmp -s "$tmp/n/checkpoint-6/unet/diffusion_pytorch_model.safetensors" \
    "$tmp/v/checkpoint-6/unet/diffusion_pytorch_model.safetensors"
check validation_keeps_ema cmp -s "$tmp/n/unet/diffusion_pytorch_model.safetensors" \
    "$tmp/v/unet/diffusion_pytorch_model.safetensors"
$CNET generate --model "$tmp/v" --controlnet "$FIXTURES/tiny-sd/controlnet" \
    --image "$FIXTURES/images/conditioning_23x37.png" --scale 0 --prompt "a red circle" \
    --steps 20 --guidance 7.5 --seed 3 --height 16 --width 16 --out "$tmp/v0.png" >"$tmp/v0.log" 2>&1
png_window() { /usr/bin/python3 tests/lib/png_window.py "$@"; }
# step 6's EMA weights are the saved ones; step 4's are older
check validation_uses_ema_pipeline png_window "$V/step_6_0.png" "$tmp/v0.png"
check validation_weights_of_its_step sh -c "! /usr/bin/python3 tests/lib/png_window.py \
    '$V/step_4_0.png' '$tmp/v0.png'"
check final_grid_left_to_right sh -c "/usr/bin/python3 tests/lib/png_window.py \
    '$tmp/v/val_imgs_grid.png' '$tmp/v0.png' 0 && /usr/bin/python3 tests/lib/png_window.py \
    '$tmp/v/val_imgs_grid.png' '$V/step_6_1.png' 16"
check model_card sh -c "grep -q \"prompts: \\['a red circle', 'a blue square'\\]\" '$tmp/v/README.md' &&
    grep -q 'val_imgs_grid.png' '$tmp/v/README.md' && grep -q '^\\* Epochs: 2\$' '$tmp/v/README.md' &&
    grep -q '^base_model: $FIXTURES/tiny-sd\$' '$tmp/v/README.md'"
check model_card_without_prompts sh -c "grep -q 'prompts: None' '$tmp/a/README.md' &&
    ! test -e '$tmp/a/val_imgs_grid.png'"

# RandomCrop and --random_flip: the 37x23 fixture image resized to 25x16
# leaves 10 crop origins at resolution 16; two runs with one seed give the
# same bytes.
mkdir -p "$tmp/wide/images"
for i in 0 1 2 3; do
    cp "$FIXTURES/images/image_37x23.png" "$tmp/wide/images/$i.png"
    echo "{\"file_name\": \"images/$i.png\", \"text\": \"a picture $i\"}" >>"$tmp/wide/metadata.jsonl"
done
crop="--pretrained_model_name_or_path $FIXTURES/tiny-sd --train_data_dir $tmp/wide
      --resolution 16 --train_batch_size 2 --seed 3 --max_train_steps 2 --checkpointing_steps 2"
crop=$(echo $crop)
$CNET train-unet $crop --center_crop --output_dir "$tmp/cc" >"$tmp/cc.log" 2>&1
$CNET train-unet $crop --output_dir "$tmp/rc1" >"$tmp/rc1.log" 2>&1
$CNET train-unet $crop --output_dir "$tmp/rc2" >"$tmp/rc2.log" 2>&1
$CNET train-unet $crop --center_crop --random_flip --output_dir "$tmp/fl" >"$tmp/fl.log" 2>&1
W=unet/diffusion_pytorch_model.safetensors
check random_crop_by_default sh -c "test -s '$tmp/cc/$W' && test -s '$tmp/rc1/$W' &&
    ! cmp -s '$tmp/cc/$W' '$tmp/rc1/$W'"
check random_crop_reproducible cmp -s "$tmp/rc1/$W" "$tmp/rc2/$W"
check random_flip_flips sh -c "test -s '$tmp/fl/$W' && ! cmp -s '$tmp/cc/$W' '$tmp/fl/$W'"

# The output is a pipeline `cnet generate` uses.
$CNET generate --model "$tmp/a" --controlnet "$FIXTURES/tiny-sd/controlnet" \
    --image "$FIXTURES/images/conditioning_23x37.png" --prompt "red circle" --steps 2 \
    --height 16 --width 16 --out "$tmp/gen.png" >"$tmp/gen.log" 2>&1
check generate_uses_output test -s "$tmp/gen.png"

# --proportion_empty_prompts 1 trains every caption as "": the weights of
# the same run on a copy of the dataset whose captions are all "".
cp -r "$tmp/fill" "$tmp/fill_empty"
sed 's/"text": "[^"]*"/"text": ""/' "$tmp/fill/metadata.jsonl" >"$tmp/fill_empty/metadata.jsonl"
$CNET train-unet $common --max_train_steps 2 --proportion_empty_prompts 1 --output_dir "$tmp/e1" \
    >"$tmp/e1.log" 2>&1
$CNET train-unet $(echo "$common" | sed "s|$tmp/fill|$tmp/fill_empty|") --max_train_steps 2 \
    --output_dir "$tmp/e2" >"$tmp/e2.log" 2>&1
check proportion_empty_prompts_empties_captions sh -c "test -s '$tmp/e1/checkpoint-2/unet/diffusion_pytorch_model.safetensors' &&
    cmp -s '$tmp/e1/checkpoint-2/unet/diffusion_pytorch_model.safetensors' \
    '$tmp/e2/checkpoint-2/unet/diffusion_pytorch_model.safetensors' &&
    ! cmp -s '$tmp/e1/checkpoint-2/unet/diffusion_pytorch_model.safetensors' \
    '$tmp/b/checkpoint-2/unet/diffusion_pytorch_model.safetensors'"

# Refusals name the flag.
refuses() {
    name=$1 flag=$2
    shift 2
    $CNET train-unet "$@" >"$tmp/r.log" 2>&1
    rc=$?
    check "$name" sh -c "test $rc -ne 0 && grep -q -- '$flag' '$tmp/r.log'"
}
refuses refuses_non_ema_revision --non_ema_revision $common --non_ema_revision x \
    --output_dir "$tmp/r1"
refuses refuses_cache_latents_with_random_crop cache_latents $common --cache_latents \
    --output_dir "$tmp/r5"
refuses refuses_controlnet_flag --conditioning_image_column $common \
    --conditioning_image_column c --output_dir "$tmp/r2"
refuses refuses_validation_prompt --validation_prompt $common \
    --validation_prompt "a red circle" --output_dir "$tmp/r3"
$CNET train --pretrained_model_name_or_path "$FIXTURES/tiny-sd" --train_data_dir "$tmp/fill" \
    --output_dir "$tmp/r4" --use_ema >"$tmp/r4.log" 2>&1
rc=$?
check train_refuses_use_ema sh -c "test $rc -ne 0 && grep -q use_ema '$tmp/r4.log'"

summary train_unet_test

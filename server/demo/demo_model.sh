#!/bin/sh
# `make demo-model`: the recipe of the demo model (issue 19), made by cnet
# alone from one seed. Stages, each timed:
#   1. data: `cnet dataset make-fill` at DEMO_SIZE (coloured circles on
#      coloured backgrounds, captions "<colour> circle with <colour>
#      background", the circle's outline as the control image);
#   2. init: `cnet init-model --from-config server/demo/config` (random
#      weights for this folder's UNet, VAE and CLIP text encoder configs and
#      the tokenizer server/demo/tokenizer_make.py wrote from the caption words);
#   3. vae: `cnet train-vae` (pixel MSE + KL) on the dataset's images;
#   4. unet: the trained VAE put into the pipeline with its scaling_factor
#      measured (server/demo/latent_scale.py), then `cnet train-unet`
#      (train_text_to_image.py: the whole UNet, frozen text encoder and VAE;
#      the latents encoded once, Min-SNR weighting with gamma 5);
#   5. controlnet: `cnet train` (train_controlnet.py) on that base, the
#      ControlNet made from its UNet;
#   6. result: DEMO_OUT, a StableDiffusionControlNetPipeline folder
#      (controlnet/ inside, the random text encoder as initialised) with a
#      model card (README.md: the commands, seed, steps, sizes and times) and
#      sample.png, `cnet generate` of the dataset's first control image and
#      caption.
# Every size and step count below may be overridden from the environment;
# DEMO_STEPS_FRACTION scales every stage's steps (at least 1 each), so a test
# runs the whole recipe in a minute (tests/integration/demo_model_test.sh).
# The chosen values and the rates they come from are in BENCHMARKS.md
# ("Demo model"). The work files (checkpoints, logs, loss.csv) stay
# in DEMO_OUT.work; rerunning continues each stage from its latest
# checkpoint, bit-identical to an uninterrupted run from the same seed.
# Not here: judging the images (issue 19's colour and adherence tests), and
# shipping the result (`make run` still serves init-model's random tiny model).
# Run from the repository root.
set -eu

: "${CNET:=build/cnet}"
: "${DEMO_OUT:=build/demo-model}"
: "${DEMO_WORK:=$DEMO_OUT.work}"
: "${DEMO_SEED:=0}"
# The dataset: samples and image side (the UNet's latents are a quarter).
: "${DEMO_SAMPLES:=4000}"
: "${DEMO_SIZE:=64}"
# Steps per stage: ~42 min of VAE, ~24 of UNet, ~5 of ControlNet on 2 idle
# cores (BENCHMARKS.md, "Demo model").
: "${DEMO_VAE_STEPS:=3200}"
: "${DEMO_UNET_STEPS:=7200}"
: "${DEMO_CN_STEPS:=1000}"
# Warmup steps per stage, fixed (not a fraction of the stage's steps) so that
# raising a stage's steps and rerunning continues its run bit-identically.
: "${DEMO_VAE_WARMUP:=80}"
: "${DEMO_UNET_WARMUP:=180}"
: "${DEMO_CN_WARMUP:=25}"
: "${DEMO_STEPS_FRACTION:=1}"
: "${DEMO_BATCH:=8}"
: "${DEMO_VAE_LR:=1e-3}"
: "${DEMO_UNET_LR:=5e-4}"
: "${DEMO_CN_LR:=2e-4}"
# train_text_to_image.py's --noise_offset for the UNet. The fill images'
# colour is their latents' mean, and at 16x16 latents SD's noise schedule
# keeps that mean at its last step about as strong as the noise's own (an
# SNR near 1): without an offset the UNet reads the background colour from
# the starting noise (the seed) instead of the prompt.
: "${DEMO_UNET_NOISE_OFFSET:=0.3}"
# The share of captions the UNet trains as "" (train_text_to_image_sdxl.py's
# --proportion_empty_prompts, SD's 10%): classifier-free guidance pushes
# along cond - uncond, and an unconditional branch never trained drives
# the colours off (a red circle came out yellow at guidance 7.5 without).
: "${DEMO_UNET_EMPTY_PROMPTS:=0.1}"
# Images the VAE's scaling_factor is measured on.
: "${DEMO_SCALE_SAMPLES:=64}"
# The sample the model card shows.
: "${DEMO_SAMPLE_STEPS:=20}"
# The demo's guidance scale: the colour is all a prompt says, and SD's 7.5
# overshoots it (a red circle came out yellow); 2 is the best of the sweep
# in BENCHMARKS.md ("Demo model").
: "${DEMO_GUIDANCE:=2}"

CONFIG=server/demo/config

say() { echo "demo-model: $*"; }
# steps N: N scaled by DEMO_STEPS_FRACTION, rounded up, at least 1.
steps() {
    awk -v n="$1" -v f="$DEMO_STEPS_FRACTION" 'BEGIN {
        if (!(f > 0)) { print "DEMO_STEPS_FRACTION must be > 0, got " f > "/dev/stderr"; exit 1 }
        s = int(n * f); if (s < n * f) s++; if (s < 1) s = 1; print s }'
}
# checkpoint_every N: a resumable checkpoint four times a stage.
checkpoint_every() { echo $((($1 + 3) / 4)); }
now() { date +%s; }
# input_stamp DIR FILE: a stage's work folder DIR continues from its
# checkpoints only while the weights FILE it trains on (the stage before's
# result) are the ones it started from: DIR/input.sha256 records them, and
# DIR is started afresh when they differ (an earlier stage given more steps).
input_stamp() {
    sum=$(sha256sum "$2" | cut -d' ' -f1)
    if [ "$(cat "$1/input.sha256" 2>/dev/null)" != "$sum" ]; then
        rm -rf "$1"
        mkdir -p "$1"
        echo "$sum" >"$1/input.sha256"
    fi
}
# run LOG CMD...: runs a stage's command, its output into LOG (the last lines
# shown when it fails) and its command line into the card's list.
run() {
    log=$1
    shift
    line=
    for a in "$@"; do
        case $a in *[!A-Za-z0-9_./:=,+-]*) a="'$a'" ;; esac
        line="$line $a"
    done
    echo "   $line" >>"$DEMO_WORK/commands.txt"
    if ! "$@" >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        say "failed: $* (log: $log)" >&2
        exit 1
    fi
}
# stage NAME START: prints and records the stage's time.
stage() {
    t=$(($(now) - $2))
    echo "$1 $t" >>"$DEMO_WORK/times.txt"
    say "stage $1: $t s"
}

[ -x "$CNET" ] || {
    say "no cnet binary at $CNET (run make first)" >&2
    exit 1
}
vae_steps=$(steps "$DEMO_VAE_STEPS")
unet_steps=$(steps "$DEMO_UNET_STEPS")
cn_steps=$(steps "$DEMO_CN_STEPS")
vae_warmup=$(steps "$DEMO_VAE_WARMUP")
unet_warmup=$(steps "$DEMO_UNET_WARMUP")
cn_warmup=$(steps "$DEMO_CN_WARMUP")
mkdir -p "$DEMO_WORK"
: >"$DEMO_WORK/commands.txt"
: >"$DEMO_WORK/times.txt"
say "seed $DEMO_SEED, $DEMO_SAMPLES samples of ${DEMO_SIZE}x$DEMO_SIZE, steps: vae $vae_steps," \
    "unet $unet_steps, controlnet $cn_steps (batch $DEMO_BATCH); work files in $DEMO_WORK"
total=$(now)

t=$(now)
rm -rf "$DEMO_WORK/fill"
run "$DEMO_WORK/data.log" "$CNET" dataset make-fill --n "$DEMO_SAMPLES" --size "$DEMO_SIZE" \
    --seed "$DEMO_SEED" --out "$DEMO_WORK/fill"
stage data "$t"

t=$(now)
rm -rf "$DEMO_WORK/init"
run "$DEMO_WORK/init.log" "$CNET" init-model --out "$DEMO_WORK/init" --from-config "$CONFIG" \
    --seed "$DEMO_SEED"
stage init "$t"

# The trainers' common flags: the seed, a constant LR after a short warmup,
# each run continuing from its latest checkpoint. The images are square at
# the resolution, so train-vae and train-unet are told to center-crop (a
# no-op; train_controlnet.py always does, and has no such flag).
common="--train_data_dir $DEMO_WORK/fill --resolution $DEMO_SIZE --train_batch_size $DEMO_BATCH
        --seed $DEMO_SEED --lr_scheduler constant_with_warmup --resume_from_checkpoint latest"
common=$(echo $common)

t=$(now)
# shellcheck disable=SC2086 # $common is a list of flags
run "$DEMO_WORK/vae.log" "$CNET" train-vae --pretrained_model_name_or_path "$DEMO_WORK/init" \
    $common --center_crop --max_train_steps "$vae_steps" --learning_rate "$DEMO_VAE_LR" \
    --lr_warmup_steps "$vae_warmup" --checkpointing_steps "$(checkpoint_every "$vae_steps")" \
    --output_dir "$DEMO_WORK/vae"
stage vae "$t"

t=$(now)
# The base the UNet trains in: init's pipeline with the trained VAE.
rm -rf "$DEMO_WORK/base"
cp -r "$DEMO_WORK/init" "$DEMO_WORK/base"
rm -rf "$DEMO_WORK/base/vae" "$DEMO_WORK/base/controlnet"
cp -r "$DEMO_WORK/vae/vae" "$DEMO_WORK/base/vae"
# Its scaling_factor: one over the latents' standard deviation on the first
# DEMO_SCALE_SAMPLES images (server/demo/latent_scale.py), so the UNet sees
# latents of unit variance as SD's does.
run "$DEMO_WORK/scale.log" python3 server/demo/latent_scale.py input "$DEMO_WORK/fill" \
    "$DEMO_SCALE_SAMPLES" "$DEMO_WORK/scale_in.safetensors"
run "$DEMO_WORK/scale.log" "$CNET" forward --model "$DEMO_WORK/base" --component vae.encode \
    --inputs "$DEMO_WORK/scale_in.safetensors" --out "$DEMO_WORK/scale_out.safetensors"
run "$DEMO_WORK/scale.log" python3 server/demo/latent_scale.py set "$DEMO_WORK/scale_out.safetensors" \
    "$DEMO_WORK/base/vae/config.json"
say "vae scaling_factor $(cat "$DEMO_WORK/scale.log")"
input_stamp "$DEMO_WORK/unet" "$DEMO_WORK/base/vae/diffusion_pytorch_model.safetensors"
# shellcheck disable=SC2086
run "$DEMO_WORK/unet.log" "$CNET" train-unet --pretrained_model_name_or_path "$DEMO_WORK/base" \
    $common --center_crop --cache_latents --snr_gamma 5 --noise_offset "$DEMO_UNET_NOISE_OFFSET" \
    --proportion_empty_prompts "$DEMO_UNET_EMPTY_PROMPTS" --max_train_steps "$unet_steps" \
    --learning_rate "$DEMO_UNET_LR" --lr_warmup_steps "$unet_warmup" \
    --checkpointing_steps "$(checkpoint_every "$unet_steps")" \
    --output_dir "$DEMO_WORK/unet"
stage unet "$t"

t=$(now)
input_stamp "$DEMO_WORK/controlnet" "$DEMO_WORK/unet/unet/diffusion_pytorch_model.safetensors"
# shellcheck disable=SC2086
run "$DEMO_WORK/controlnet.log" "$CNET" train --pretrained_model_name_or_path "$DEMO_WORK/unet" \
    $common --cache_latents --max_train_steps "$cn_steps" --learning_rate "$DEMO_CN_LR" \
    --lr_warmup_steps "$cn_warmup" --checkpointing_steps "$(checkpoint_every "$cn_steps")" \
    --output_dir "$DEMO_WORK/controlnet"
stage controlnet "$t"

t=$(now)
rm -rf "$DEMO_OUT"
mkdir -p "$DEMO_OUT/controlnet"
for c in unet vae text_encoder tokenizer scheduler; do
    cp -r "$DEMO_WORK/unet/$c" "$DEMO_OUT/$c"
done
cp "$CONFIG/model_index.json" "$DEMO_OUT/model_index.json"
cp "$DEMO_WORK/controlnet/config.json" "$DEMO_WORK/controlnet/diffusion_pytorch_model.safetensors" \
    "$DEMO_OUT/controlnet/"
sample_caption=$(sed -n '1s/.*"text": *"\([^"]*\)".*/\1/p' "$DEMO_WORK/fill/metadata.jsonl")
sample_control=$(sed -n '1s/.*"conditioning_image_file_name": *"\([^"]*\)".*/\1/p' \
    "$DEMO_WORK/fill/metadata.jsonl")
cp "$DEMO_WORK/fill/$sample_control" "$DEMO_OUT/sample_control.png"
run "$DEMO_WORK/sample.log" "$CNET" generate --model "$DEMO_OUT" --image "$DEMO_OUT/sample_control.png" \
    --prompt "$sample_caption" --steps "$DEMO_SAMPLE_STEPS" --guidance "$DEMO_GUIDANCE" \
    --seed "$DEMO_SEED" --out "$DEMO_OUT/sample.png"
stage result "$t"
total=$(($(now) - total))
say "total: $total s"

{
    echo "# cnet demo model"
    echo
    echo "A Stable Diffusion ControlNet pipeline made from scratch by cnet on the fill dataset"
    echo "(\`cnet dataset make-fill\`: coloured circles on coloured backgrounds, captioned"
    echo "\"<colour> circle with <colour> background\", the circle's outline as the control image),"
    echo "by \`make demo-model\` (server/demo/demo_model.sh). Given such a caption and an outline, it"
    echo "is meant to draw a circle of that colour on that background where the outline is, at"
    echo "${DEMO_SIZE}x$DEMO_SIZE."
    echo
    echo "* Seed: $DEMO_SEED; dataset: $DEMO_SAMPLES samples of ${DEMO_SIZE}x$DEMO_SIZE"
    echo "* VAE: $vae_steps steps, batch $DEMO_BATCH, learning rate $DEMO_VAE_LR (train-vae);"
    echo "  scaling_factor $(cat "$DEMO_WORK/scale.log") (one over the latents' std on $DEMO_SCALE_SAMPLES images)"
    echo "* UNet: $unet_steps steps, batch $DEMO_BATCH, learning rate $DEMO_UNET_LR, Min-SNR gamma 5,"
    echo "  noise_offset $DEMO_UNET_NOISE_OFFSET, proportion_empty_prompts $DEMO_UNET_EMPTY_PROMPTS (train-unet)"
    echo "* ControlNet: $cn_steps steps, batch $DEMO_BATCH, learning rate $DEMO_CN_LR (train)"
    echo "* Text encoder: random (init-model), frozen"
    echo "* Machine: $(nproc) cores, $(uname -m); cnet $(git rev-parse --short HEAD 2>/dev/null || echo '(no git)')"
    echo
    echo "Times (seconds; of the last invocation, which may have resumed a stage):"
    echo
    awk '{ printf "* %s: %s\n", $1, $2 }' "$DEMO_WORK/times.txt"
    echo "* total: $total"
    echo
    echo "Commands:"
    echo
    cat "$DEMO_WORK/commands.txt"
    echo
    echo "sample.png: \`cnet generate\` of \"$sample_caption\" with sample_control.png"
    echo "($DEMO_SAMPLE_STEPS steps, guidance $DEMO_GUIDANCE, seed $DEMO_SEED): use guidance about"
    echo "$DEMO_GUIDANCE with this model (SD's default 7.5 overshoots the colours)."
} >"$DEMO_OUT/README.md"
say "wrote $DEMO_OUT"

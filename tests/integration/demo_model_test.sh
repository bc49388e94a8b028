#!/bin/sh
# `make demo-model`'s recipe (server/demo/demo_model.sh) end to end at a few
# steps per stage (DEMO_STEPS_FRACTION) on a small dataset: it runs every
# stage and prints their times and the total; it writes a pipeline folder
# with controlnet/ that `cnet generate` loads, whose VAE, UNet and
# ControlNet moved from their starting weights (so each trainer ran and its
# result was put in place), the VAE's scaling_factor measured, the text
# encoder the frozen random one, a model card naming the seed and the
# commands, a sample image of the dataset's size; the weights stay under
# DEMO_MAX_BYTES; a second run with the same seed gives the same weights
# and sample. The committed tokenizer is its generator's output and holds
# every word of the dataset's captions as one token.
# Not checked here: image quality (issue 19's colour and adherence tests).
set -u
BUILD=${BUILD:-build}
CNET=$BUILD/cnet
# The issue's budget for the committed result's weights (~20 MB).
DEMO_MAX_BYTES=20000000
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. tests/lib/lib_check.sh

# 3200/7200/1000 steps x 0.004: 13 VAE, 29 UNet and 4 ControlNet steps.
quick() { # quick OUT [VAR=VALUE ...]
    out=$1
    shift
    env CNET="$CNET" DEMO_OUT="$out" DEMO_SAMPLES=16 DEMO_BATCH=2 DEMO_STEPS_FRACTION=0.004 \
        DEMO_SAMPLE_STEPS=2 DEMO_SCALE_SAMPLES=8 DEMO_SEED=5 "$@" sh server/demo/demo_model.sh
}
quick "$tmp/a" >"$tmp/a.log" 2>&1
rc=$?
check recipe_runs sh -c "test $rc -eq 0 || { tail -20 '$tmp/a.log'; exit 1; }"
check prints_stage_times sh -c "for s in data init vae unet controlnet result; do \
    grep -Eq \"^demo-model: stage \$s: [0-9]+ s\$\" '$tmp/a.log' || exit 1; done &&
    grep -Eq '^demo-model: total: [0-9]+ s$' '$tmp/a.log'"
check scaled_steps grep -q 'steps: vae 13, unet 29, controlnet 4 (batch 2)' "$tmp/a.log"

A=$tmp/a
check pipeline_folder sh -c "for f in model_index.json unet/diffusion_pytorch_model.safetensors \
    vae/diffusion_pytorch_model.safetensors text_encoder/model.safetensors tokenizer/vocab.json \
    scheduler/scheduler_config.json controlnet/config.json \
    controlnet/diffusion_pytorch_model.safetensors; do test -s '$A/'\$f || exit 1; done &&
    grep -q StableDiffusionControlNetPipeline '$A/model_index.json'"
W=diffusion_pytorch_model.safetensors
I=$A.work/init
check vae_trained sh -c "! cmp -s '$I/vae/$W' '$A/vae/$W'"
check unet_trained sh -c "! cmp -s '$I/unet/$W' '$A/unet/$W'"
check controlnet_trained sh -c "test -s '$A.work/controlnet/checkpoint-1/controlnet/$W' &&
    ! cmp -s '$A.work/controlnet/checkpoint-1/controlnet/$W' '$A/controlnet/$W'"
# The VAE's scaling_factor was measured (not the config's 0.18215) and is
# the one the model card states.
scale=$(sed -n 's/.*"scaling_factor": *\([0-9.e+-]*\).*/\1/p' "$A/vae/config.json")
check vae_scaling_measured sh -c "test -n '$scale' && ! grep -q '\"scaling_factor\": $scale' \
    server/demo/config/vae/config.json && awk -v s='$scale' 'BEGIN { exit !(s > 0.01 && s < 100) }' &&
    grep -q \"scaling_factor \$(awk -v s='$scale' 'BEGIN { printf \"%.6g\", s }') \" '$A/README.md'"
check text_encoder_frozen cmp -s "$I/text_encoder/model.safetensors" "$A/text_encoder/model.safetensors"
check model_card sh -c "grep -q '^\\* Seed: 5; dataset: 16 samples of 64x64\$' '$A/README.md' &&
    grep -q '^\\* UNet: 29 steps' '$A/README.md' && grep -q 'cnet train-vae ' '$A/README.md' &&
    grep -q 'cnet train-unet ' '$A/README.md' && grep -q 'cnet train ' '$A/README.md' &&
    grep -Eq '^\\* total: [0-9]+\$' '$A/README.md'"
# A PNG's width and height: bytes 16..23 of its IHDR, big-endian.
png_size() { od -An -tu1 -j16 -N8 "$1" | awk '{ print $3 * 256 + $4 "x" $7 * 256 + $8 }'; }
check sample_64x64 test "$(png_size "$A/sample.png")" = 64x64
check weights_under_budget sh -c "test \$(cat '$A'/*/*.safetensors | wc -c) -le $DEMO_MAX_BYTES"

# The result loads as a pipeline with its ControlNet, another prompt and seed.
$CNET generate --model "$A" --controlnet "$A/controlnet" --image "$A/sample_control.png" \
    --prompt "navy circle with gold background" --steps 2 --seed 9 --out "$tmp/gen.png" \
    >"$tmp/gen.log" 2>&1
check generate_loads_result sh -c "test \"\$(od -An -c -j1 -N3 '$tmp/gen.png' | tr -d ' ')\" = PNG"

# Reproducible from the seed: a second run, the same weights and the same
# sample's pixels (its PNG's text chunk names the output folder).
quick "$tmp/b" >"$tmp/b.log" 2>&1
check reproducible_weights sh -c "for f in unet/$W vae/$W controlnet/$W; do \
    cmp '$A/'\$f '$tmp/b/'\$f || exit 1; done"
check reproducible_sample /usr/bin/python3 tests/lib/png_window.py "$A/sample.png" "$tmp/b/sample.png"

# The step scale is checked before any work.
quick "$tmp/c" DEMO_STEPS_FRACTION=0 >"$tmp/c.log" 2>&1
rc=$?
check refuses_bad_fraction sh -c "test $rc -ne 0 && grep -q DEMO_STEPS_FRACTION '$tmp/c.log' &&
    test ! -e '$tmp/c.work'"

# The tokenizer: the committed files are tokenizer_make.py's output, and
# every word of the captions is one of its tokens.
python3 server/demo/tokenizer_make.py "$tmp/tok" >"$tmp/tok.log" 2>&1
check tokenizer_is_generated sh -c "for f in vocab.json merges.txt tokenizer_config.json \
    special_tokens_map.json; do cmp \"$tmp/tok/\$f\" server/demo/config/tokenizer/\$f || exit 1; done"
check tokenizer_size_is_config sh -c "grep -q \"\\\"vocab_size\\\": \$(cat '$tmp/tok.log')\$\" \
    server/demo/config/text_encoder/config.json"
$CNET dataset make-fill --n 400 --size 16 --out "$tmp/fill" --seed 2 >/dev/null 2>&1
sed -n 's/.*"text": *"\([^"]*\)".*/\1/p' "$tmp/fill/metadata.jsonl" | tr ' ' '\n' | sort -u \
    >"$tmp/words"
check captions_are_tokens sh -c "test \$(wc -l <'$tmp/words') -ge 20 && while read -r w; do \
    grep -q \"^  \\\"\$w</w>\\\": \" server/demo/config/tokenizer/vocab.json || { echo \"    \$w\"; exit 1; }; \
    done <'$tmp/words'"

summary demo_model_test

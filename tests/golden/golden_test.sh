#!/bin/sh
# Runs `cnet golden` on the fixture directory (tests/run.sh exports BUILD and
# FIXTURES) and reports it as one test: passed when it exits 0.
# It asks for --device cuda: without a GPU that is the CPU run, and it must
# say it fell back; with one, the goldens run on the GPU and then once more on
# the CPU backend. goldens-sdxl, goldens-img2img and goldens-unet-train,
# where the fixtures have them, are part of the same run.
BUILD=${BUILD:-build}
FIXTURES=${FIXTURES:-tests/fixtures}
out=$(mktemp)
"$BUILD/cnet" golden --fixtures "$FIXTURES" --device cuda >"$out" 2>&1
rc=$?
cat "$out"
if grep -q "^cnet golden: backend cuda" "$out"; then
    "$BUILD/cnet" golden --fixtures "$FIXTURES" --device cpu || rc=1
elif ! grep -q "^cnet golden: --device cuda: no CUDA device visible.*using the CPU" "$out" ||
    ! grep -q "^cnet golden: backend cpu" "$out"; then
    echo "golden: --device cuda neither ran on a GPU nor said it fell back to the CPU"
    rc=1
fi
# With SDXL goldens the SDXL UNet and ControlNet must have been checked too.
if [ -d "$FIXTURES/goldens-sdxl" ]; then
    for stem in unet_sdxl controlnet_sdxl; do
        if ! grep -q "^== .*goldens-sdxl/$stem.safetensors" "$out" ||
            grep -q "^FAIL $stem:" "$out"; then
            echo "golden: goldens-sdxl/$stem.safetensors was not checked"
            rc=1
        fi
    done
fi
# With img2img goldens every file of them must have been checked, none
# left with tensors unchecked but preprocess.safetensors' torch / numpy /
# RGBA inputs (cnet's inputs are decoded RGB files).
if [ -d "$FIXTURES/goldens-img2img" ]; then
    for stem in img2img inpaint preprocess; do
        if ! grep -q "^== .*goldens-img2img/$stem.safetensors" "$out" ||
            grep -q "^FAIL $stem:" "$out"; then
            echo "golden: goldens-img2img/$stem.safetensors was not checked"
            rc=1
        fi
    done
    if grep -q "^img2img.safetensors: .* not checked\|^inpaint.safetensors: .* not checked" "$out"; then
        echo "golden: goldens-img2img has tensors no check compared"
        rc=1
    fi
fi
# With train_text_to_image.py goldens the whole-UNet training step must have
# been checked too (against tiny-sd).
if [ -d "$FIXTURES/goldens-unet-train" ]; then
    if ! grep -q "^== .*goldens-unet-train/train_unet.safetensors" "$out" ||
        grep -q "^FAIL train_unet:" "$out"; then
        echo "golden: goldens-unet-train/train_unet.safetensors was not checked"
        rc=1
    fi
fi
rm -f "$out"
if [ "$rc" -eq 0 ]; then
    echo "golden: 1 passed, 0 failed"
else
    echo "golden: 0 passed, 1 failed"
    exit 1
fi

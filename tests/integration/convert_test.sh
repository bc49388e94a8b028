#!/bin/sh
# cnet convert, checked against the diffusers-format model it must equal.
#
# tests/tools/ldm_files.py writes original-layout files from the fixture's
# tiny-sd with its own key map (written from the LDM / ControlNet module
# trees, not from engine/convert): an SD single file (.safetensors and a
# torch.save .ckpt), an A1111 ControlNet (control_model.* .safetensors and an
# unprefixed lllyasviel-style .pth), a diffusers folder of .bin weights and
# old VAE attention names, and files that must be refused (SDXL, LoRA).
# Truths: every converted tensor equals the fixture's byte for byte; the
# exported ControlNet equals ldm_files.py's own control_model.* file; export
# then convert is bit-exact; and `cnet golden` passes on a copy of the
# fixtures whose tiny-sd is the converted model (the goldens are diffusers'
# outputs). The torch files need Debian's python3-torch (test_torch_pickle
# installs it as root); without it those cases say SKIP.
set -u
. tests/lib/lib_check.sh
BUILD=${BUILD:-build}
FIXTURES=${FIXTURES:-tests/fixtures}
CNET=$BUILD/cnet
PY=/usr/bin/python3
T=$(mktemp -d /tmp/cnet_convert_XXXXXX)
trap 'rm -rf "$T"' EXIT
MODEL=$FIXTURES/tiny-sd

$PY tests/tools/ldm_files.py "$MODEL" "$T/in" || { echo "convert_test: 0 passed, 1 failed"; exit 1; }
have_torch=0
[ -e "$T/in/sd.ckpt" ] && have_torch=1

# same A B: every tensor of safetensors file A equals B's (names, dtype, shape, bytes)
same() {
    $PY - "$1" "$2" <<'EOF'
import sys
sys.path.insert(0, "tests/tools")
from ldm_files import read_st
a, b = read_st(sys.argv[1]), read_st(sys.argv[2])
bad = sorted(set(a) ^ set(b)) + [k for k in a if k in b and a[k] != b[k]]
if bad:
    print("    %s vs %s: %d tensors differ, e.g. %s" % (sys.argv[1], sys.argv[2], len(bad), bad[:3]))
sys.exit(1 if bad else 0)
EOF
}
same_model() { # DIR: unet, vae, text_encoder equal the fixture's
    same "$1/unet/diffusion_pytorch_model.safetensors" "$MODEL/unet/diffusion_pytorch_model.safetensors" &&
        same "$1/vae/diffusion_pytorch_model.safetensors" "$MODEL/vae/diffusion_pytorch_model.safetensors" &&
        same "$1/text_encoder/model.safetensors" "$MODEL/text_encoder/model.safetensors"
}
same_cn() { same "$1/diffusion_pytorch_model.safetensors" "$MODEL/controlnet/diffusion_pytorch_model.safetensors"; }
# refused IN WORDS...: exit 1, a message with each word, no output folder left
refused() {
    in=$1
    shift
    out=$($CNET convert "$T/in/$in" "$T/refused" 2>&1)
    rc=$?
    [ "$rc" -eq 1 ] && [ ! -e "$T/refused" ] && ! ls "$T" | grep -q partial || { echo "    $in: rc $rc: $out"; return 1; }
    for w in "$@"; do
        echo "$out" | grep -q -- "$w" || { echo "    $in: no '$w' in: $out"; return 1; }
    done
}

check sd_single_file $CNET convert "$T/in/sd.safetensors" "$T/sd" --config_from "$MODEL"
check sd_single_file_weights same_model "$T/sd"
check sd_single_file_pipeline_files test -f "$T/sd/tokenizer/vocab.json" -a -f "$T/sd/scheduler/scheduler_config.json" -a -f "$T/sd/model_index.json"
check controlnet_a1111 $CNET convert "$T/in/cn.safetensors" "$T/cn" --config_from "$MODEL"
check controlnet_a1111_weights same_cn "$T/cn"
check controlnet_export $CNET convert --to single-file "$T/cn" "$T/cn_export.safetensors"
check controlnet_export_is_a1111 same "$T/cn_export.safetensors" "$T/in/cn.safetensors"
check controlnet_round_trip $CNET convert "$T/cn_export.safetensors" "$T/cn_back" --config_from "$MODEL"
check controlnet_round_trip_bit_exact same_cn "$T/cn_back"
if [ "$have_torch" -eq 1 ]; then
    check sd_ckpt $CNET convert "$T/in/sd.ckpt" "$T/sd_ckpt" --config_from "$MODEL"
    check sd_ckpt_weights same_model "$T/sd_ckpt"
    check controlnet_pth $CNET convert "$T/in/cn.pth" "$T/cn_pth" --config_from "$MODEL/controlnet"
    check controlnet_pth_weights same_cn "$T/cn_pth"
    check bin_folder $CNET convert "$T/in/bin_folder" "$T/bin_out"
    check bin_folder_weights same_model "$T/bin_out"
    check bin_folder_copies test -f "$T/bin_out/tokenizer/merges.txt" -a -f "$T/bin_out/controlnet/config.json"
else
    echo "SKIP sd_ckpt, controlnet_pth, bin_folder: python3-torch is not installed"
fi
check refuses_sdxl refused sdxl.safetensors SDXL from_single_file
check refuses_lora refused lora.safetensors LoRA
check refuses_sd_without_tokenizer refused sd.safetensors tokenizer --config_from
check refuses_unknown_width refused cn.safetensors "width 32" --config_from
check refuses_existing_output sh -c "! $CNET convert '$T/in/cn.safetensors' '$T/cn' --config_from '$MODEL' 2>/dev/null"

# the goldens (diffusers' outputs) on the converted models
fx=$T/fixtures
cp -r "$FIXTURES" "$fx"
src=$T/sd
cn=$T/cn
[ "$have_torch" -eq 1 ] && src=$T/sd_ckpt && cn=$T/cn_pth
for sub in unet vae text_encoder tokenizer scheduler; do
    rm -rf "$fx/tiny-sd/$sub" && cp -r "$src/$sub" "$fx/tiny-sd/$sub"
done
rm -rf "$fx/tiny-sd/controlnet" && cp -r "$cn" "$fx/tiny-sd/controlnet"
golden_converted() {
    $CNET golden --fixtures "$fx" >"$T/golden.log" 2>&1 || { grep FAIL "$T/golden.log" | head; return 1; }
    tail -n 1 "$T/golden.log" | sed 's/^/    /'
}
check golden_on_converted_models golden_converted
summary convert_test

#!/bin/sh
# cnet convert, checked against the diffusers-format model it must equal.
#
# tests/tools/ldm_files.py writes original-layout files from the fixture's
# tiny-sd with its own key map (written from the LDM / ControlNet module
# trees, not from engine/convert): an SD single file (.safetensors and a
# torch.save .ckpt), an A1111 ControlNet (control_model.* .safetensors and an
# unprefixed lllyasviel-style .pth), the SD file with SD 2.x's OpenCLIP text
# tower, a diffusers folder of .bin weights and
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
check sd2_openclip $CNET convert "$T/in/sd2.safetensors" "$T/sd2" --config_from "$MODEL"
check sd2_openclip_weights same_model "$T/sd2"
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

# configs inferred from tensors: an SD 1.x-shaped model (768-wide cross
# attention; the fixture's small-sd configs, random float16 weights), whose
# single files convert with --config_from naming a folder of only tokenizer/
# and scheduler/; every field the tensors or the SD 1.x family decide must
# equal small-sd's config
SMALL=$FIXTURES/small-sd
$CNET init-model --out "$T/small" --from-config "$SMALL" --seed 3 --dtype f16 >/dev/null
$PY tests/tools/ldm_files.py "$T/small" "$T/small_in" --safetensors-only
mkdir "$T/tok" && cp -r "$SMALL/tokenizer" "$SMALL/scheduler" "$T/tok/"
same_config() { # GOT WANT FIELDS...
    $PY - "$@" <<'EOF'
import json, sys
got, want = (json.load(open(p)) for p in sys.argv[1:3])
n = len(want.get("block_out_channels", []))
norm = lambda f, v: [v] * n if f == "attention_head_dim" and isinstance(v, int) else v
bad = [f for f in sys.argv[3:] if norm(f, got.get(f)) != norm(f, want.get(f))]
for f in bad:
    print("    %s: %s inferred, %s in %s" % (f, got.get(f), want.get(f), sys.argv[2]))
sys.exit(1 if bad else 0)
EOF
}
same_small() { # DIR: unet, vae, text_encoder equal the random model's
    for c in unet/diffusion_pytorch_model vae/diffusion_pytorch_model text_encoder/model; do
        same "$1/$c.safetensors" "$T/small/$c.safetensors" || return 1
    done
}
UNET_FIELDS="in_channels out_channels block_out_channels layers_per_block down_block_types up_block_types
    mid_block_type cross_attention_dim attention_head_dim use_linear_projection transformer_layers_per_block
    norm_num_groups flip_sin_to_cos freq_shift"
check infer_sd $CNET convert "$T/small_in/sd.safetensors" "$T/small_sd" --config_from "$T/tok"
check infer_sd_unet same_config "$T/small_sd/unet/config.json" "$SMALL/unet/config.json" $UNET_FIELDS
check infer_sd_vae same_config "$T/small_sd/vae/config.json" "$SMALL/vae/config.json" in_channels \
    out_channels latent_channels block_out_channels layers_per_block norm_num_groups scaling_factor \
    down_block_types up_block_types
check infer_sd_text same_config "$T/small_sd/text_encoder/config.json" "$SMALL/text_encoder/config.json" \
    vocab_size hidden_size intermediate_size num_hidden_layers num_attention_heads \
    max_position_embeddings projection_dim hidden_act bos_token_id eos_token_id pad_token_id
check infer_sd_weights same_small "$T/small_sd"
check infer_controlnet $CNET convert "$T/small_in/cn.safetensors" "$T/small_cn"
check infer_controlnet_config same_config "$T/small_cn/config.json" "$SMALL/controlnet/config.json" \
    in_channels block_out_channels layers_per_block down_block_types mid_block_type cross_attention_dim \
    attention_head_dim use_linear_projection transformer_layers_per_block norm_num_groups \
    conditioning_channels conditioning_embedding_out_channels
check infer_controlnet_weights same "$T/small_cn/diffusion_pytorch_model.safetensors" \
    "$T/small/controlnet/diffusion_pytorch_model.safetensors"
rm -rf "$T/small" "$T/small_in" "$T/small_sd" "$T/small_cn"

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

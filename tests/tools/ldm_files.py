"""Writes original-layout (LDM / A1111 / ComfyUI) single files from a diffusers
pipeline folder, for tests/integration/convert_test.sh. The key map here is
the test's own, written independently of cnet's engine/convert: it walks the
modules of the original code as they are built (ldm/modules/diffusionmodules/
openaimodel.py UNetModel: input_blocks, middle_block, output_blocks, out;
cldm/cldm.py ControlNet: input_hint_block, zero_convs, middle_block_out;
ldm/modules/diffusionmodules/model.py Encoder/Decoder: down[i].block[j],
down[i].downsample, mid.block_1/attn_1/block_2, up[i] built in reverse,
norm_out) next to the diffusers modules they become, rather than computing
block indices by formula. Reads and writes safetensors by hand (json +
struct); .ckpt/.pth copies use the real torch.save when python3-torch is
present.

    ldm_files.py MODEL_DIR OUT_DIR [--safetensors-only]

OUT_DIR/sd.safetensors      model.diffusion_model.* first_stage_model.*
                            cond_stage_model.transformer.text_model.*
OUT_DIR/sd.ckpt             the same as {"state_dict": ...} (torch)
OUT_DIR/sd2.safetensors     the same with SD 2.x's OpenCLIP text tower (cond_stage_model.model.*:
                            q/k/v fused into attn.in_proj_*, one more layer than the model
                            uses, text_projection and logit_scale)
OUT_DIR/cn.safetensors      control_model.* (A1111 / ComfyUI)
OUT_DIR/cn.pth              the same keys unprefixed (lllyasviel's .pth, torch)
OUT_DIR/sdxl.safetensors    a file with conditioner.embedders.* (refused)
OUT_DIR/lora.safetensors    lora_unet_* keys (refused)
OUT_DIR/bin_folder/         MODEL_DIR as diffusers saved it before safetensors and
                            diffusers 0.14: unet/ and text_encoder/ as torch .bin
                            files, vae/ with query/key/value/proj_attn names (torch)
"""
import json
import os
import shutil
import struct
import sys

SIZES = {"F32": 4, "F16": 2, "BF16": 2, "I64": 8}


def read_st(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    out = {}
    for name, e in header.items():
        a, b = e["data_offsets"]
        out[name] = (e["dtype"], list(e["shape"]), raw[8 + n + a:8 + n + b])
    return out


def write_st(path, tensors):
    header, blobs, at = {}, [], 0
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [at, at + len(data)]}
        blobs.append(data)
        at += len(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def config(model, sub):
    with open(os.path.join(model, sub, "config.json")) as f:
        return json.load(f)


RESBLOCK = [("in_layers.0", "norm1"), ("in_layers.2", "conv1"), ("emb_layers.1", "time_emb_proj"),
            ("out_layers.0", "norm2"), ("out_layers.3", "conv2"), ("skip_connection", "conv_shortcut")]


def unet_modules(cfg, controlnet):
    """(ldm module, diffusers module, inner renames) in the order the modules are built."""
    mods = [("time_embed.0", "time_embedding.linear_1", []),
            ("time_embed.2", "time_embedding.linear_2", []),
            ("input_blocks.0.0", "conv_in", [])]
    layers = cfg["layers_per_block"]
    levels = len(cfg["block_out_channels"])
    attn = [t.startswith("CrossAttn") for t in cfg["down_block_types"]]
    input_blocks = 1
    zero_convs = ["input_blocks.0"]
    for level in range(levels):
        for j in range(layers):
            block = "input_blocks.%d" % input_blocks
            mods.append((block + ".0", "down_blocks.%d.resnets.%d" % (level, j), RESBLOCK))
            if attn[level]:
                mods.append((block + ".1", "down_blocks.%d.attentions.%d" % (level, j), []))
            zero_convs.append(block)
            input_blocks += 1
        if level != levels - 1:
            block = "input_blocks.%d" % input_blocks
            mods.append((block + ".0.op", "down_blocks.%d.downsamplers.0.conv" % level, []))
            zero_convs.append(block)
            input_blocks += 1
    mods += [("middle_block.0", "mid_block.resnets.0", RESBLOCK),
             ("middle_block.1", "mid_block.attentions.0", []),
             ("middle_block.2", "mid_block.resnets.1", RESBLOCK)]
    if controlnet:
        for k, _ in enumerate(zero_convs):
            mods.append(("zero_convs.%d.0" % k, "controlnet_down_blocks.%d" % k, []))
        mods.append(("middle_block_out.0", "controlnet_mid_block", []))
        # input_hint_block: Sequential(conv, SiLU, (conv, SiLU) per block..., conv_out)
        hint = ["controlnet_cond_embedding.conv_in"]
        n_blocks = 2 * (len(cfg["conditioning_embedding_out_channels"]) - 1)
        hint += ["controlnet_cond_embedding.blocks.%d" % b for b in range(n_blocks)]
        hint.append("controlnet_cond_embedding.conv_out")
        sequential = []
        for module in hint:
            sequential += [module, None]  # a conv, then its SiLU
        for index, module in enumerate(sequential):
            if module:
                mods.append(("input_hint_block.%d" % index, module, []))
        return mods
    up_attn = [t.startswith("CrossAttn") for t in cfg["up_block_types"]]
    output_blocks = 0
    for level in range(levels):
        for j in range(layers + 1):
            block = "output_blocks.%d" % output_blocks
            mods.append((block + ".0", "up_blocks.%d.resnets.%d" % (level, j), RESBLOCK))
            if up_attn[level]:
                mods.append((block + ".1", "up_blocks.%d.attentions.%d" % (level, j), []))
            if level != levels - 1 and j == layers:
                upsample = ".2" if up_attn[level] else ".1"
                mods.append((block + upsample + ".conv", "up_blocks.%d.upsamplers.0.conv" % level, []))
            output_blocks += 1
    mods += [("out.0", "conv_norm_out", []), ("out.2", "conv_out", [])]
    return mods


VAE_ATTN = [("norm", "group_norm"), ("q", "to_q"), ("k", "to_k"), ("v", "to_v"),
            ("proj_out", "to_out.0")]
VAE_RES = [("nin_shortcut", "conv_shortcut")]


def vae_modules(cfg):
    mods = [("encoder.conv_in", "encoder.conv_in", []), ("decoder.conv_in", "decoder.conv_in", []),
            ("quant_conv", "quant_conv", []), ("post_quant_conv", "post_quant_conv", [])]
    levels = len(cfg["block_out_channels"])
    layers = cfg["layers_per_block"]
    for level in range(levels):
        for j in range(layers):
            mods.append(("encoder.down.%d.block.%d" % (level, j),
                         "encoder.down_blocks.%d.resnets.%d" % (level, j), VAE_RES))
        if level != levels - 1:
            mods.append(("encoder.down.%d.downsample.conv" % level,
                         "encoder.down_blocks.%d.downsamplers.0.conv" % level, []))
    # Decoder: `for i_level in reversed(range(levels))` builds up[i_level]; diffusers counts up
    for up_block, i_level in enumerate(reversed(range(levels))):
        for j in range(layers + 1):
            mods.append(("decoder.up.%d.block.%d" % (i_level, j),
                         "decoder.up_blocks.%d.resnets.%d" % (up_block, j), VAE_RES))
        if i_level != 0:
            mods.append(("decoder.up.%d.upsample.conv" % i_level,
                         "decoder.up_blocks.%d.upsamplers.0.conv" % up_block, []))
    for half in ("encoder", "decoder"):
        mods += [(half + ".mid.block_1", half + ".mid_block.resnets.0", VAE_RES),
                 (half + ".mid.attn_1", half + ".mid_block.attentions.0", VAE_ATTN),
                 (half + ".mid.block_2", half + ".mid_block.resnets.1", VAE_RES),
                 (half + ".norm_out", half + ".conv_norm_out", []),
                 (half + ".conv_out", half + ".conv_out", [])]
    return mods


def to_ldm(tensors, mods, prefix, conv_attention=False):
    out = {}
    for ldm, diff, inner in mods:
        for name in [k for k in tensors if k.startswith(diff + ".")]:
            rest = name[len(diff) + 1:]
            for old, new in inner:
                if rest.startswith(new + "."):
                    rest = old + rest[len(new):]
                    break
            dtype, shape, data = tensors.pop(name)
            if conv_attention and inner is VAE_ATTN and len(shape) == 2:
                shape = shape + [1, 1]  # AttnBlock's q/k/v/proj_out are 1x1 convs
            out[prefix + ldm + "." + rest] = (dtype, shape, data)
    assert not tensors, "diffusers tensors without an LDM module: %s" % sorted(tensors)[:5]
    return out


# open_clip's TextTransformer: token_embedding, positional_embedding,
# transformer.resblocks[i] (ln_1, attn (in_proj fused q|k|v, out_proj), ln_2,
# mlp.c_fc, mlp.c_proj), ln_final, text_projection, logit_scale
OPENCLIP_LAYER = [("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"), ("mlp.c_fc", "mlp.fc1"),
                  ("mlp.c_proj", "mlp.fc2"), ("attn.out_proj", "self_attn.out_proj")]


def to_openclip(text, prefix):
    out = {prefix + "token_embedding.weight": text["text_model.embeddings.token_embedding.weight"],
           prefix + "positional_embedding": text["text_model.embeddings.position_embedding.weight"]}
    for leaf in ("weight", "bias"):
        out[prefix + "ln_final." + leaf] = text["text_model.final_layer_norm." + leaf]
    layers = 1 + max(int(k.split(".")[3]) for k in text if k.startswith("text_model.encoder.layers."))
    for i in range(layers + 1):  # the file's last layer is one SD 2.x does not use
        src = min(i, layers - 1)
        diff = "text_model.encoder.layers.%d." % src
        block = prefix + "transformer.resblocks.%d." % i
        for ldm, new in OPENCLIP_LAYER:
            for leaf in ("weight", "bias"):
                out[block + ldm + "." + leaf] = text[diff + new + "." + leaf]
        for leaf in ("weight", "bias"):
            parts = [text[diff + "self_attn.%s_proj.%s" % (x, leaf)] for x in "qkv"]
            dtype, shape = parts[0][0], list(parts[0][1])
            shape[0] *= 3
            out[block + "attn.in_proj_" + leaf] = (dtype, shape, b"".join(p[2] for p in parts))
    hidden = text["text_model.embeddings.token_embedding.weight"][1][1]
    out[prefix + "text_projection"] = ("F32", [hidden, hidden], struct.pack("<f", 0.5) * hidden * hidden)
    out[prefix + "logit_scale"] = ("F32", [], struct.pack("<f", 4.6))
    return out


def save_torch(path, tensors, wrap):
    try:
        import torch
    except ImportError:
        return
    dtypes = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
              "I64": torch.int64}
    state = {}
    for name, (dtype, shape, data) in tensors.items():
        t = torch.frombuffer(bytearray(data), dtype=dtypes[dtype]) if data else torch.empty(0)
        state[name] = t.reshape(shape).clone()
    torch.save({"state_dict": state, "global_step": 1} if wrap else state, path)


def main():
    model, out = sys.argv[1], sys.argv[2]
    with_torch = "--safetensors-only" not in sys.argv[3:]
    os.makedirs(out, exist_ok=True)
    st = lambda sub, leaf: read_st(os.path.join(model, sub, leaf))
    sd = {}
    sd.update(to_ldm(st("unet", "diffusion_pytorch_model.safetensors"),
                     unet_modules(config(model, "unet"), False), "model.diffusion_model."))
    sd.update(to_ldm(st("vae", "diffusion_pytorch_model.safetensors"),
                     vae_modules(config(model, "vae")), "first_stage_model.", True))
    text = st("text_encoder", "model.safetensors")
    for name, value in text.items():
        sd["cond_stage_model.transformer." + name] = value
    positions = config(model, "text_encoder")["max_position_embeddings"]
    sd["cond_stage_model.transformer.text_model.embeddings.position_ids"] = (
        "I64", [1, positions], b"".join(struct.pack("<q", i) for i in range(positions)))
    write_st(os.path.join(out, "sd.safetensors"), sd)
    sd2 = {k: v for k, v in sd.items() if not k.startswith("cond_stage_model.")}
    sd2.update(to_openclip(text, "cond_stage_model.model."))
    write_st(os.path.join(out, "sd2.safetensors"), sd2)
    if with_torch:
        save_torch(os.path.join(out, "sd.ckpt"), sd, True)

    cn = to_ldm(st("controlnet", "diffusion_pytorch_model.safetensors"),
                unet_modules(config(model, "controlnet"), True), "")
    write_st(os.path.join(out, "cn.safetensors"), {"control_model." + k: v for k, v in cn.items()})
    if with_torch:
        save_torch(os.path.join(out, "cn.pth"), cn, False)

    one = ("F32", [1], struct.pack("<f", 1.0))
    write_st(os.path.join(out, "sdxl.safetensors"),
             {"conditioner.embedders.0.transformer.text_model.final_layer_norm.weight": one,
              "model.diffusion_model.input_blocks.0.0.weight": one})
    write_st(os.path.join(out, "lora.safetensors"),
             {"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": one})
    if with_torch:
        write_bin_folder(model, out)


def write_bin_folder(model, out):
    try:
        import torch  # noqa: F401
    except ImportError:
        return
    folder = os.path.join(out, "bin_folder")
    shutil.copytree(model, folder)
    for sub, leaf, new in (("unet", "diffusion_pytorch_model", "diffusion_pytorch_model.bin"),
                           ("text_encoder", "model", "pytorch_model.bin")):
        path = os.path.join(folder, sub, leaf + ".safetensors")
        save_torch(os.path.join(folder, sub, new), read_st(path), False)
        os.remove(path)
    path = os.path.join(folder, "vae", "diffusion_pytorch_model.safetensors")
    old = {}
    for name, value in read_st(path).items():
        for new, was in (("to_q", "query"), ("to_k", "key"), ("to_v", "value"),
                         ("to_out.0", "proj_attn")):
            name = name.replace(".attentions.0.%s." % new, ".attentions.0.%s." % was)
        old[name] = value
    write_st(path, old)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Makes tests/fixtures-dpt: a tiny random DPTForDepthEstimation (dpt-large's
pure-ViT layout) saved in transformers' key layout, and the tensors of one
forward, for tests/unit/test_dpt.c.

This is NOT transformers: it is an independent re-implementation in plain
torch of DPTForDepthEstimation's forward as read from transformers v4.38
modeling_dpt.py (DPTViTEmbeddings with _resize_pos_embed, DPTViTLayer,
DPTReassembleStage with readout "project", DPTNeck, DPTFeatureFusionStage,
DPTPreActResidualLayer, DPTDepthEstimationHead), of DPTImageProcessor's
rescale + normalise (mean = std = 0.5) and of the sd-webui-controlnet
extension's depth post-processing (annotator/midas: min-max to 0..255,
truncated to uint8). A golden made by transformers itself is still owed.

One deliberate generalisation: transformers v4.38 reshapes a pure-ViT
backbone's tokens to a square grid (int(sqrt(n))), so it only runs square
inputs; here the tokens are reshaped to the image's own patch grid, which is
the same on square inputs and what the hybrid path already does.

Run with Debian's /usr/bin/python3 (torch 1.13, numpy):
    /usr/bin/python3 tests/tools/dpt_golden.py tests/fixtures-dpt
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

CONFIG = {
    "architectures": ["DPTForDepthEstimation"],
    "model_type": "dpt",
    "hidden_size": 32,
    "num_hidden_layers": 5,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-12,
    "image_size": 32,
    "patch_size": 16,
    "num_channels": 3,
    "qkv_bias": True,
    "is_hybrid": False,
    "backbone_out_indices": [0, 2, 3, 4],
    "readout_type": "project",
    "reassemble_factors": [4, 2, 1, 0.5],
    "neck_hidden_sizes": [8, 16, 24, 32],
    "fusion_hidden_size": 8,
    "head_in_index": -1,
    "use_batch_norm_in_fusion_residual": False,
    "add_projection": False,
}
HEIGHT, WIDTH = 32, 100  # padded to 64x128: a 4x8 grid, not the position table's 2x2
PAD = 64  # resize_image_with_pad's multiple
ODD_H, ODD_W = 48, 80  # an odd patch grid (3x5), straight into the model


def make_weights(c, gen):
    D, I, P = c["hidden_size"], c["intermediate_size"], c["patch_size"]
    Fh = c["fusion_hidden_size"]
    w = {}

    def rnd(name, *shape, std=0.2, mean=0.0):
        w[name] = torch.randn(*shape, generator=gen) * std + mean

    n_pos = (c["image_size"] // P) ** 2 + 1
    rnd("dpt.embeddings.cls_token", 1, 1, D, std=0.5)
    rnd("dpt.embeddings.position_embeddings", 1, n_pos, D, std=0.5)
    rnd("dpt.embeddings.patch_embeddings.projection.weight", D, 3, P, P, std=0.1)
    rnd("dpt.embeddings.patch_embeddings.projection.bias", D)
    for l in range(c["num_hidden_layers"]):
        p = "dpt.encoder.layer.%d." % l
        for n in ("attention.attention.query", "attention.attention.key",
                  "attention.attention.value", "attention.output.dense"):
            rnd(p + n + ".weight", D, D, std=1 / math.sqrt(D))
            rnd(p + n + ".bias", D, std=0.1)
        rnd(p + "intermediate.dense.weight", I, D, std=1 / math.sqrt(D))
        rnd(p + "intermediate.dense.bias", I, std=0.1)
        rnd(p + "output.dense.weight", D, I, std=1 / math.sqrt(I))
        rnd(p + "output.dense.bias", D, std=0.1)
        for n in ("layernorm_before", "layernorm_after"):
            rnd(p + n + ".weight", D, std=0.2, mean=1.0)
            rnd(p + n + ".bias", D, std=0.1)
    rnd("dpt.layernorm.weight", D, std=0.2, mean=1.0)  # DPTModel's, unused by depth
    rnd("dpt.layernorm.bias", D, std=0.1)
    for i, (ch, f) in enumerate(zip(c["neck_hidden_sizes"], c["reassemble_factors"])):
        p = "neck.reassemble_stage."
        rnd(p + "readout_projects.%d.0.weight" % i, D, 2 * D, std=1 / math.sqrt(2 * D))
        rnd(p + "readout_projects.%d.0.bias" % i, D, std=0.1)
        rnd(p + "layers.%d.projection.weight" % i, ch, D, 1, 1, std=1 / math.sqrt(D))
        rnd(p + "layers.%d.projection.bias" % i, ch, std=0.1)
        if f > 1:
            rnd(p + "layers.%d.resize.weight" % i, ch, ch, f, f, std=1 / math.sqrt(ch))
            rnd(p + "layers.%d.resize.bias" % i, ch, std=0.1)
        elif f < 1:
            rnd(p + "layers.%d.resize.weight" % i, ch, ch, 3, 3, std=1 / math.sqrt(9 * ch))
            rnd(p + "layers.%d.resize.bias" % i, ch, std=0.1)
        rnd("neck.convs.%d.weight" % i, Fh, ch, 3, 3, std=1 / math.sqrt(9 * ch))
    for i in range(len(c["neck_hidden_sizes"])):
        p = "neck.fusion_stage.layers.%d." % i
        rnd(p + "projection.weight", Fh, Fh, 1, 1, std=1 / math.sqrt(Fh))
        rnd(p + "projection.bias", Fh, std=0.1)
        for r in ("residual_layer1", "residual_layer2"):
            for k in ("convolution1", "convolution2"):
                rnd(p + "%s.%s.weight" % (r, k), Fh, Fh, 3, 3, std=1 / math.sqrt(9 * Fh))
                rnd(p + "%s.%s.bias" % (r, k), Fh, std=0.1)
    rnd("head.head.0.weight", Fh // 2, Fh, 3, 3, std=1 / math.sqrt(9 * Fh))
    rnd("head.head.0.bias", Fh // 2, std=0.1)
    rnd("head.head.2.weight", 32, Fh // 2, 3, 3, std=1 / math.sqrt(9 * Fh / 2))
    rnd("head.head.2.bias", 32, std=0.1)
    rnd("head.head.4.weight", 1, 32, 1, 1, std=1 / math.sqrt(32))
    w["head.head.4.bias"] = torch.tensor([3.0])  # keeps most of the final ReLU open
    return w


def vit_layer(w, p, h, c):
    D, H = c["hidden_size"], c["num_attention_heads"]
    eps = c["layer_norm_eps"]
    B, N, _ = h.shape

    def lin(x, n):
        return x @ w[p + n + ".weight"].T + w[p + n + ".bias"]

    x = F.layer_norm(h, (D,), w[p + "layernorm_before.weight"], w[p + "layernorm_before.bias"], eps)
    heads = [lin(x, "attention.attention." + n).view(B, N, H, D // H).transpose(1, 2)
             for n in ("query", "key", "value")]
    q, k, v = heads
    att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(D // H), dim=-1) @ v
    att = att.transpose(1, 2).reshape(B, N, D)
    h = lin(att, "attention.output.dense") + h
    x = F.layer_norm(h, (D,), w[p + "layernorm_after.weight"], w[p + "layernorm_after.bias"], eps)
    x = F.gelu(lin(x, "intermediate.dense"))
    return lin(x, "output.dense") + h


def embeddings(w, pixel_values, c):
    P = c["patch_size"]
    B, _, Hh, Ww = pixel_values.shape
    gh, gw = Hh // P, Ww // P
    x = F.conv2d(pixel_values, w["dpt.embeddings.patch_embeddings.projection.weight"],
                 w["dpt.embeddings.patch_embeddings.projection.bias"], stride=P)
    x = x.flatten(2).transpose(1, 2)
    cls = w["dpt.embeddings.cls_token"].expand(B, -1, -1)
    pos = w["dpt.embeddings.position_embeddings"]
    old = int(math.sqrt(pos.shape[1] - 1))
    grid = pos[0, 1:].reshape(1, old, old, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(gh, gw), mode="bilinear")
    grid = grid.permute(0, 2, 3, 1).reshape(1, gh * gw, -1)
    return torch.cat([cls, x], 1) + torch.cat([pos[:, :1], grid], 1)


def reassemble(w, i, h, gh, gw, c):
    f = c["reassemble_factors"][i]
    p = "neck.reassemble_stage."
    cls, tok = h[:, 0], h[:, 1:]
    tok = torch.cat([tok, cls.unsqueeze(1).expand_as(tok)], -1)
    tok = F.gelu(tok @ w[p + "readout_projects.%d.0.weight" % i].T +
                 w[p + "readout_projects.%d.0.bias" % i])
    x = tok.permute(0, 2, 1).reshape(h.shape[0], -1, gh, gw)
    x = F.conv2d(x, w[p + "layers.%d.projection.weight" % i], w[p + "layers.%d.projection.bias" % i])
    if f > 1:
        x = F.conv_transpose2d(x, w[p + "layers.%d.resize.weight" % i],
                               w[p + "layers.%d.resize.bias" % i], stride=int(f))
    elif f < 1:
        x = F.conv2d(x, w[p + "layers.%d.resize.weight" % i], w[p + "layers.%d.resize.bias" % i],
                     stride=int(1 / f), padding=1)
    return x


def residual(w, p, x):
    h = F.conv2d(F.relu(x), w[p + "convolution1.weight"], w[p + "convolution1.bias"], padding=1)
    h = F.conv2d(F.relu(h), w[p + "convolution2.weight"], w[p + "convolution2.bias"], padding=1)
    return h + x


def fusion_layer(w, i, x, res):
    p = "neck.fusion_stage.layers.%d." % i
    if res is not None:
        if x.shape != res.shape:
            res = F.interpolate(res, size=x.shape[2:], mode="bilinear", align_corners=False)
        x = x + residual(w, p + "residual_layer1.", res)
    x = residual(w, p + "residual_layer2.", x)
    x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
    return F.conv2d(x, w[p + "projection.weight"], w[p + "projection.bias"])


def forward(w, pixel_values, c):
    out = {}
    P = c["patch_size"]
    gh, gw = pixel_values.shape[2] // P, pixel_values.shape[3] // P
    h = embeddings(w, pixel_values, c)
    out["embeddings"] = h
    states = []
    for l in range(c["num_hidden_layers"]):
        h = vit_layer(w, "dpt.encoder.layer.%d." % l, h, c)
        states.append(h)
    feats = []
    for i, idx in enumerate(c["backbone_out_indices"]):
        out["backbone.%d" % i] = states[idx]
        x = reassemble(w, i, states[idx], gh, gw, c)
        out["reassemble.%d" % i] = x
        x = F.conv2d(x, w["neck.convs.%d.weight" % i], padding=1)
        feats.append(x)
    fused = None
    for i, x in enumerate(feats[::-1]):
        fused = fusion_layer(w, i, x, None) if fused is None else fusion_layer(w, i, fused, x)
        out["fusion.%d" % i] = fused
    x = F.conv2d(fused, w["head.head.0.weight"], w["head.head.0.bias"], padding=1)
    x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
    x = F.relu(F.conv2d(x, w["head.head.2.weight"], w["head.head.2.bias"], padding=1))
    x = F.relu(F.conv2d(x, w["head.head.4.weight"], w["head.head.4.bias"]))
    out["predicted_depth"] = x.squeeze(1)
    return out


def save_safetensors(path, tensors, meta=None):
    header, blobs, offset = {}, [], 0
    if meta:
        header["__metadata__"] = meta
    for name, t in tensors.items():
        a = np.ascontiguousarray(t.detach().numpy() if torch.is_tensor(t) else t)
        dtype = {np.dtype("float32"): "F32", np.dtype("uint8"): "U8"}[a.dtype]
        blob = a.tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def main():
    out_dir = sys.argv[1]
    os.makedirs(os.path.join(out_dir, "model"), exist_ok=True)
    gen = torch.Generator().manual_seed(16)
    w = make_weights(CONFIG, gen)
    with open(os.path.join(out_dir, "model", "config.json"), "w") as f:
        json.dump(CONFIG, f, indent=2)
    save_safetensors(os.path.join(out_dir, "model", "model.safetensors"), w,
                     {"format": "pt"})
    # A smooth picture with an edge, RGB uint8 [H, W, 3].
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    image = np.stack([(xx * 5 + yy * 2) % 256, (yy * 7) % 256,
                      np.where(xx > WIDTH // 2, 220, 30)], -1).astype(np.uint8)
    # The extension's resize_image_with_pad at processor_res 0: edge-replicated
    # to the next multiples of 64 at the bottom and right.
    padded = np.pad(image, [[0, -HEIGHT % PAD], [0, -WIDTH % PAD], [0, 0]], mode="edge")
    pixel_values = (torch.from_numpy(padded).float() / 255.0 - 0.5) / 0.5
    pixel_values = pixel_values.permute(2, 0, 1).unsqueeze(0).contiguous()
    with torch.no_grad():
        out = forward(w, pixel_values, CONFIG)
    depth = out["predicted_depth"][0].clone()  # float32, as the extension
    depth = depth - depth.min()
    depth = depth / depth.max()
    depth_u8 = (depth * 255.0).clamp(0, 255).numpy().astype(np.uint8)
    depth_u8 = np.ascontiguousarray(depth_u8[:HEIGHT, :WIDTH])  # remove_pad
    tensors = {"image": image, "pixel_values": pixel_values}
    tensors.update(out)
    tensors["depth_u8"] = depth_u8
    # A 3x5 grid: the stages' maps no longer double into each other, so each
    # fusion layer resizes its stage's map (bilinear, align_corners False).
    odd = torch.rand(1, 3, ODD_H, ODD_W, generator=gen) * 2 - 1
    with torch.no_grad():
        tensors["odd.pixel_values"] = odd
        tensors["odd.predicted_depth"] = forward(w, odd, CONFIG)["predicted_depth"]
    save_safetensors(os.path.join(out_dir, "golden.safetensors"), tensors)
    for k, v in tensors.items():
        print(k, tuple(v.shape))


if __name__ == "__main__":
    main()

"""An independent truth for cnet train-vae's loss and backward: a small
AutoencoderKL written here in plain torch (functional: conv2d, group_norm,
softmax attention, nearest upsampling; written from the diffusers model
description, not copied from diffusers, which is not installed) run in
float64 with autograd on the fixture VAE's weights, one training step's
loss and the gradient of every parameter:

    moments = encoder(x); mean, logvar = split; logvar = clamp(-30, 20)
    z = mean + exp(0.5 logvar) * eps
    loss = mean((decoder(z) - x)^2) + KL_WEIGHT * KL,
    KL = 0.5 sum_{c,h,w} (mean^2 + exp(logvar) - 1 - logvar), batch mean

    vae_train_ref.py VAE_DIR OUT_DIR

OUT_DIR/inputs.safetensors  x [B, H, W, 3] (NHWC, uniform -1..1), eps
                            [B, h, w, L] (NHWC, N(0,1)), both from
                            numpy's RandomState(SEED), and loss [3]:
                            reconstruction MSE, KL, total
OUT_DIR/grads.safetensors   d loss / d param for every parameter, named and
                            shaped as the VAE's weights (PyTorch layout)

Run with /usr/bin/python3 (torch 1.13 + numpy). tests/unit/test_vae_train_golden.c
reads both files.
"""
import json
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

SEED = 20261207
B, IMAGE = 2, 16
KL_WEIGHT = 1e-2  # large enough that the KL path's gradient shows
EPS = 1e-6        # every GroupNorm of the VAE

DT = {"F32": np.float32, "F16": np.float16, "F64": np.float64}


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        arr = np.frombuffer(data[a:b], dtype=DT[t["dtype"]]).reshape(t["shape"])
        out[name] = torch.tensor(arr.astype(np.float64), requires_grad=True)
    return out


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, arr in tensors.items():
        b = np.ascontiguousarray(arr, dtype=np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


class Vae:
    def __init__(self, w, cfg):
        self.w, self.cfg = w, cfg
        self.groups = cfg["norm_num_groups"]
        self.levels = len(cfg["block_out_channels"])
        self.layers = cfg["layers_per_block"]

    def conv(self, x, name, stride=1, pad=1):
        return F.conv2d(x, self.w[name + ".weight"], self.w[name + ".bias"], stride, pad)

    def norm(self, x, name, silu):
        y = F.group_norm(x, self.groups, self.w[name + ".weight"], self.w[name + ".bias"], EPS)
        return y * torch.sigmoid(y) if silu else y

    def resnet(self, x, pre):
        h = self.conv(self.norm(x, pre + ".norm1", True), pre + ".conv1")
        h = self.conv(self.norm(h, pre + ".norm2", True), pre + ".conv2")
        if pre + ".conv_shortcut.weight" in self.w:
            x = self.conv(x, pre + ".conv_shortcut", pad=0)
        return x + h

    def linear(self, t, name):
        return t @ self.w[name + ".weight"].T + self.w[name + ".bias"]

    def attention(self, x, pre):
        b, c, hh, ww = x.shape
        t = self.norm(x, pre + ".group_norm", False).reshape(b, c, hh * ww).transpose(1, 2)
        q, k, v = (self.linear(t, pre + "." + n) for n in ("to_q", "to_k", "to_v"))
        a = torch.softmax(q @ k.transpose(1, 2) / c ** 0.5, dim=-1)
        o = self.linear(a @ v, pre + ".to_out.0")
        return x + o.transpose(1, 2).reshape(b, c, hh, ww)

    def mid(self, x, pre):
        x = self.resnet(x, pre + ".mid_block.resnets.0")
        if pre + ".mid_block.attentions.0.to_q.weight" in self.w:
            x = self.attention(x, pre + ".mid_block.attentions.0")
        return self.resnet(x, pre + ".mid_block.resnets.1")

    def encode(self, x):
        h = self.conv(x, "encoder.conv_in")
        for i in range(self.levels):
            for j in range(self.layers):
                h = self.resnet(h, "encoder.down_blocks.%d.resnets.%d" % (i, j))
            if i < self.levels - 1:  # pad right and bottom only, then stride 2
                h = self.conv(F.pad(h, (0, 1, 0, 1)), "encoder.down_blocks.%d.downsamplers.0.conv" % i,
                              stride=2, pad=0)
        h = self.mid(h, "encoder")
        h = self.conv(self.norm(h, "encoder.conv_norm_out", True), "encoder.conv_out")
        return self.conv(h, "quant_conv", pad=0) if "quant_conv.weight" in self.w else h

    def decode(self, z):
        if "post_quant_conv.weight" in self.w:
            z = self.conv(z, "post_quant_conv", pad=0)
        h = self.mid(self.conv(z, "decoder.conv_in"), "decoder")
        for i in range(self.levels):
            for j in range(self.layers + 1):
                h = self.resnet(h, "decoder.up_blocks.%d.resnets.%d" % (i, j))
            if i < self.levels - 1:
                h = F.interpolate(h, scale_factor=2.0, mode="nearest")
                h = self.conv(h, "decoder.up_blocks.%d.upsamplers.0.conv" % i)
        return self.conv(self.norm(h, "decoder.conv_norm_out", True), "decoder.conv_out")


def main():
    vae_dir, out = sys.argv[1], sys.argv[2]
    cfg = json.load(open(vae_dir + "/config.json"))
    w = read_safetensors(vae_dir + "/diffusion_pytorch_model.safetensors")
    vae = Vae(w, cfg)
    L, f = cfg["latent_channels"], 2 ** (len(cfg["block_out_channels"]) - 1)
    rs = np.random.RandomState(SEED)
    x = rs.uniform(-1, 1, (B, IMAGE, IMAGE, 3)).astype(np.float32)
    eps = rs.standard_normal((B, IMAGE // f, IMAGE // f, L)).astype(np.float32)
    xt = torch.tensor(x.astype(np.float64)).permute(0, 3, 1, 2)
    et = torch.tensor(eps.astype(np.float64)).permute(0, 3, 1, 2)
    moments = vae.encode(xt)
    mean, logvar = moments[:, :L], torch.clamp(moments[:, L:], -30.0, 20.0)
    z = mean + torch.exp(0.5 * logvar) * et
    rec = torch.mean((vae.decode(z) - xt) ** 2)
    kl = 0.5 * torch.sum(mean ** 2 + torch.exp(logvar) - 1.0 - logvar, dim=[1, 2, 3]).mean()
    loss = rec + KL_WEIGHT * kl
    loss.backward()
    write_safetensors(out + "/inputs.safetensors",
                      {"x": x, "eps": eps,
                       "loss": np.array([rec.item(), kl.item(), loss.item()], dtype=np.float32)})
    write_safetensors(out + "/grads.safetensors",
                      {n: t.grad.numpy() for n, t in w.items()})
    print("rec %.9g kl %.9g loss %.9g, %d gradients" % (rec.item(), kl.item(), loss.item(), len(w)))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The trained demo VAE's scaling_factor, as the LDM paper sets it (Rombach
et al. 2022: the latents rescaled by one over their component-wise standard
deviation, estimated on a batch; Stable Diffusion's 0.18215).

Two steps around `cnet forward --component vae.encode` (stdlib only: the
machines have no numpy):
  latent_scale.py input DATASET N OUT.safetensors
      the first N images of a make-fill dataset (metadata.jsonl's file_name,
      8-bit RGB PNGs of one size) as vae.encode.input [N, 3, H, W] in [-1, 1],
      as the trainers feed them;
  latent_scale.py set ENCODED.safetensors VAE_CONFIG
      from vae.encode.mean and vae.encode.std (the posterior's), the standard
      deviation of a sampled latent z = mean + std * eps over every component,
      sqrt(var(mean) + E[std^2]) (eps independent of unit variance, so no
      draw is needed), and writes 1 / it into VAE_CONFIG's scaling_factor;
      prints the value.

Not here: encoding (cnet does it), reading PNGs other than the ones cnet
writes (tests/lib/png_window.py's decoder, which this loads).
"""
import json
import math
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def png_pixels(path):
    """tests/lib/png_window.py's pixels(): width, height, rows of RGB bytes."""
    src_path = os.path.join(HERE, "..", "..", "tests", "lib", "png_window.py")
    src = open(src_path, encoding="utf-8").read()
    ns = {}
    exec(src[:src.index("wa, ha, a =")], ns)  # the decoder, not its command line
    return ns["pixels"](path)


def write_input(dataset, n, out):
    rows = [json.loads(line) for line in open(os.path.join(dataset, "metadata.jsonl"))][:n]
    if len(rows) < n:
        sys.exit(f"latent_scale: {dataset} holds {len(rows)} samples, {n} asked for")
    vals, size = [], None
    for r in rows:
        w, h, px = png_pixels(os.path.join(dataset, r["file_name"]))
        if size not in (None, (w, h)):
            sys.exit(f"latent_scale: {r['file_name']} is {w}x{h}, not {size[0]}x{size[1]}")
        size = (w, h)
        for c in range(3):
            for y in range(h):
                vals.extend(px[y][3 * x + c] / 127.5 - 1 for x in range(w))
    data = struct.pack("<%df" % len(vals), *vals)
    header = {"vae.encode.input": {"dtype": "F32", "shape": [n, 3, size[1], size[0]],
                                   "data_offsets": [0, len(data)]}}
    hdr = json.dumps(header).encode()
    hdr += b" " * (-len(hdr) % 8)
    with open(out, "wb") as f:
        f.write(struct.pack("<Q", len(hdr)) + hdr + data)


def read_tensor(path, name):
    d = open(path, "rb").read()
    n = struct.unpack("<Q", d[:8])[0]
    meta = json.loads(d[8:8 + n])
    if name not in meta or meta[name]["dtype"] != "F32":
        sys.exit(f"latent_scale: {path} has no F32 tensor {name}")
    a, b = meta[name]["data_offsets"]
    return struct.unpack("<%df" % ((b - a) // 4), d[8 + n + a:8 + n + b])


def set_scale(encoded, config):
    mean = read_tensor(encoded, "vae.encode.mean")
    std = read_tensor(encoded, "vae.encode.std")
    mu = sum(mean) / len(mean)
    var = sum((m - mu) ** 2 for m in mean) / len(mean) + sum(s * s for s in std) / len(std)
    if not var > 0:
        sys.exit(f"latent_scale: the latents of {encoded} have no variance")
    scale = 1 / math.sqrt(var)
    cfg = json.load(open(config))
    cfg["scaling_factor"] = scale
    with open(config, "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    print("%.6g" % scale)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "input":
        write_input(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    elif len(sys.argv) == 4 and sys.argv[1] == "set":
        set_scale(sys.argv[2], sys.argv[3])
    else:
        sys.exit("usage: latent_scale.py input DATASET N OUT.safetensors | "
                 "set ENCODED.safetensors VAE_CONFIG")

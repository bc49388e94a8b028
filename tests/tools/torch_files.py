"""Writes the PyTorch files tests/unit/test_torch_pickle.c reads, with the real
torch.save (Debian's python3-torch, run as /usr/bin/python3), next to the
truth each must equal: a safetensors file written here by hand (json +
struct, not by cnet) holding the same tensors.

    torch_files.py OUT_DIR FIXTURES_DIR

OUT_DIR/
  state.bin, state.safetensors   a state dict of every dtype cnet reads, a
                                 transposed view, an offset view sharing a
                                 storage, a 0-dim tensor, an nn.Parameter and
                                 an int32 tensor (left out by cnet)
  many.bin, many.safetensors     300 tensors (the unpickler's tables grow)
  lightning.ckpt                 {"state_dict": ..., "global_step": 7, "epoch": 1}
  legacy.pth                     the same dict in the pre-1.6 (non-zip) format
  evil_system.bin, evil_eval.bin pickles that call os.system / builtins.eval
                                 (they would create OUT_DIR/pwned)
  vae_old/                       the fixture VAE with the deprecated attention
                                 names (query/key/value/proj_attn), as a
                                 diffusion_pytorch_model.bin
  vae_old_st/                    the same as .safetensors
  bad_*.bin                      torch's zip layout around a hand-written
                                 data.pkl that breaks one rule each (limits,
                                 opcodes, lying lengths), or a compressed entry;
                                 bad_amp_views.bin: 200 keys naming one strided
                                 view (copies beyond the file's size);
                                 bad_local_name.bin: a local header naming
                                 another entry than the directory
  amp_keys.bin                   300 persistent ids sharing one 1 MiB storage key
"""
import json
import os
import shutil
import struct
import sys

import torch
import zipfile

ST_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
             torch.int64: "I64", torch.uint8: "U8", torch.bool: "BOOL", torch.int32: "I32"}
TORCH_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
                "I64": torch.int64, "U8": torch.uint8}


def tensor_bytes(t):
    t = t.contiguous()
    return t.view(torch.uint8).numpy().tobytes() if t.numel() else b""


def write_safetensors(path, tensors):
    header, blobs, at = {}, [], 0
    for name, t in tensors.items():
        data = tensor_bytes(t.reshape(-1)) if t.dim() == 0 else tensor_bytes(t)
        header[name] = {"dtype": ST_DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [at, at + len(data)]}
        blobs.append(data)
        at += len(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        a, b = e["data_offsets"]
        buf = bytearray(raw[8 + n + a:8 + n + b])
        t = torch.frombuffer(buf, dtype=TORCH_DTYPES[e["dtype"]]) if buf else torch.empty(0)
        out[name] = t.reshape(e["shape"]).clone()
    return out


class Evil:
    def __init__(self, fn, arg):
        self.fn, self.arg = fn, arg

    def __reduce__(self):
        return (self.fn, (self.arg,))


def main():
    out, fixtures = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    base = torch.randn(4, 6, generator=g)
    shared = torch.randn(40, generator=g)
    state = {
        "f32": torch.randn(3, 5, generator=g),
        "f16": torch.randn(2, 3, 4, generator=g).half(),
        "bf16": torch.randn(7, generator=g).bfloat16(),
        "i64": torch.arange(-3, 9, dtype=torch.int64).reshape(3, 4),
        "u8": torch.arange(0, 250, 10, dtype=torch.uint8),
        "flag": torch.tensor([True, False, True]),
        "transposed": base.t(),
        "conv": torch.randn(2, 3, 3, 3, generator=g).permute(0, 2, 3, 1),
        "view_a": shared[5:17].view(3, 4),
        "view_b": shared[20:30],
        "scalar": torch.tensor(2.5),
        "param": torch.nn.Parameter(torch.randn(2, 2, generator=g)),
        "ema.num_updates": torch.tensor(12, dtype=torch.int32),
    }
    torch.save(state, os.path.join(out, "state.bin"))
    truth = {k: v.detach() for k, v in state.items() if v.dtype != torch.int32}
    truth["flag"] = truth["flag"].to(torch.uint8)
    write_safetensors(os.path.join(out, "state.safetensors"), truth)
    many = {"layers.%d.weight" % i: torch.randn(i % 5 + 1, 3, generator=g) for i in range(300)}
    torch.save(many, os.path.join(out, "many.bin"))
    write_safetensors(os.path.join(out, "many.safetensors"), many)
    torch.save({"state_dict": state, "global_step": 7, "epoch": 1},
               os.path.join(out, "lightning.ckpt"))
    torch.save(state, os.path.join(out, "legacy.pth"), _use_new_zipfile_serialization=False)
    pwned = os.path.join(out, "pwned")
    torch.save({"w": torch.zeros(2), "x": Evil(os.system, "touch " + pwned)},
               os.path.join(out, "evil_system.bin"))
    torch.save({"x": Evil(eval, "open(%r, 'w')" % pwned)}, os.path.join(out, "evil_eval.bin"))

    renames = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
    vae = read_safetensors(os.path.join(fixtures, "tiny-sd", "vae",
                                        "diffusion_pytorch_model.safetensors"))
    old = {}
    for name, t in vae.items():
        parts = name.split(".")
        if "attentions" in parts:
            for new, was in renames.items():
                name = name.replace(".attentions.0." + new + ".", ".attentions.0." + was + ".")
        old[name] = t
    assert any(".query." in k for k in old), "the fixture VAE has no mid attention"
    for folder in ("vae_old", "vae_old_st"):
        d = os.path.join(out, folder)
        os.makedirs(d, exist_ok=True)
        shutil.copy(os.path.join(fixtures, "tiny-sd", "vae", "config.json"), d)
    torch.save(old, os.path.join(out, "vae_old", "diffusion_pytorch_model.bin"))
    write_safetensors(os.path.join(out, "vae_old_st", "diffusion_pytorch_model.safetensors"), old)
    write_bad(out)


# Hand-written data.pkl bodies, each breaking one rule (name: (pickle, what
# cnet's message must contain)); they are wrapped in torch's zip layout.
TENSOR = (b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01ctorch._utils\n_rebuild_tensor_v2\nq\x02((X\x07"
          b"\x00\x00\x00storageq\x03ctorch\nFloatStorage\nq\x04X\x01\x00\x00\x000q\x05X\x03"
          b"\x00\x00\x00cpuq\x06K\x06tq\x07QK\x00K\x02K\x03\x86q\x08K\x03K\x01\x86q\t\x89c"
          b"collections\nOrderedDict\nq\n)Rq\x0btq\x0cRq\rs.")
BAD_PICKLES = {
    "marks": (b"\x80\x02" + b"(" * 5000 + b"}.", "MARK"),
    "memo": (b"\x80\x02}r\xf0\xff\xff\x7f.", "memo"),
    "string": (b"\x80\x02X\xff\xff\xff\x00abc.", "string"),
    "truncated_string": (b"\x80\x02X\x10\x00\x00\x00abc", "truncated"),
    "opcode": (b"\x80\x02}I12\n.", "opcode 0x49"),
    "underflow": (b"\x80\x02s.", "underflow"),
    "get": (b"\x80\x02h\x05.", "memo"),
    "noStop": (b"\x80\x02}", "truncated"),
    "toplist": (b"\x80\x02].", "not a dict"),
    "offset": (TENSOR.replace(b"QK\x00K\x02", b"QK\x04K\x02"), "reaches element"),
    "stride": (TENSOR.replace(b"K\x03K\x01\x86q\t", b"K\x09K\x01\x86q\t"), "reaches element"),
    "numel": (TENSOR.replace(b"cpuq\x06K\x06", b"cpuq\x06K\x09"), "holds 24 bytes"),
    "key": (TENSOR.replace(b"\x01\x00\x00\x000q\x05", b"\x01\x00\x00\x007q\x05"), "missing"),
    "broadcast": (TENSOR.replace(b"K\x03K\x01\x86q\t", b"K\x03K\x00\x86q\t"), "stride 0"),
    "overlap": (TENSOR.replace(b"QK\x00K\x02K\x03\x86q\x08K\x03K\x01",
                               b"QK\x00K\x04K\x03\x86q\x08K\x01K\x01"), "overlapping"),
    "build": (b"\x80\x02}q\x00}q\x01X\x01\x00\x00\x00aK\x01sb.", "BUILD"),
    "global": (b"\x80\x02csubprocess\nPopen\n.", "subprocess.Popen"),
}


def pk_str(s):
    b = s.encode() if isinstance(s, str) else s
    return b"X" + struct.pack("<I", len(b)) + b


def pk_int(n):
    return b"J" + struct.pack("<i", n)


def pk_tuple(items):
    return b"(" + b"".join(items) + b"t"


def pk_storage_id(key, numel):
    """('storage', torch.FloatStorage, key, 'cpu', numel), torch.save's persistent id."""
    return pk_tuple([pk_str("storage"), b"ctorch\nFloatStorage\n", pk_str(key), pk_str("cpu"),
                     pk_int(numel)])


def pk_tensor(key, numel, size, stride):
    """_rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict())."""
    return (b"ctorch._utils\n_rebuild_tensor_v2\n(" + pk_storage_id(key, numel) + b"Q" + pk_int(0) +
            pk_tuple(pk_int(v) for v in size) + pk_tuple(pk_int(v) for v in stride) +
            b"\x89ccollections\nOrderedDict\n)RtR")


# Small files that would make a reader take far more memory than they hold:
# 200 keys naming one transposed 64x64 view of one 16 KiB storage (each
# would be its own strided copy: 3.2 MB from 18 KB), and 300 persistent ids
# naming one storage under a 1 MiB key (each a copy of the key: 300 MB from
# 1 MB; test_torch_pickle.c measures that one).
AMP_VIEWS_KEYS = 200
AMP_KEYS_IDS = 300


def write_amplifiers(out):
    body = b"\x80\x02}q\x00(" + pk_str("k0") + pk_tensor("0", 4096, (64, 64), (1, 64)) + b"q\x01"
    body += b"".join(pk_str("k%d" % i) + b"h\x01" for i in range(1, AMP_VIEWS_KEYS)) + b"u."
    with zipfile.ZipFile(os.path.join(out, "bad_amp_views.bin"), "w") as z:
        z.writestr("bad/data.pkl", body)
        z.writestr("bad/data/0", struct.pack("<4096f", *range(4096)))
        z.writestr("bad/version", "3\n")
    body = b"\x80\x02" + pk_storage_id(b"k" * (1 << 20), 1) + b"q\x01Q0"
    body += b"h\x01Q0" * (AMP_KEYS_IDS - 1) + b"}."
    with zipfile.ZipFile(os.path.join(out, "amp_keys.bin"), "w") as z:
        z.writestr("amp/data.pkl", body)
        z.writestr("amp/version", "3\n")


def write_bad(out):
    write_amplifiers(out)
    storage = struct.pack("<6f", 0, 1, 2, 3, 4, 5)
    for name, (body, _) in BAD_PICKLES.items():
        with zipfile.ZipFile(os.path.join(out, "bad_" + name + ".bin"), "w") as z:
            z.writestr("bad/data.pkl", body)
            z.writestr("bad/data/0", storage)
    with zipfile.ZipFile(os.path.join(out, "bad_deflated.bin"), "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("bad/data.pkl", TENSOR)
        z.writestr("bad/data/0", storage)
    with zipfile.ZipFile(os.path.join(out, "good_handmade.bin"), "w") as z:
        z.writestr("good/data.pkl", TENSOR)
        z.writestr("good/data/0", storage)
        z.writestr("good/version", "3\n")
    # The local header of bad/data/0 renamed bad/data/1 (its directory record
    # unchanged): Python's zipfile refuses such an archive too.
    path = os.path.join(out, "bad_local_name.bin")
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("bad/data.pkl", TENSOR)
        z.writestr("bad/data/0", storage)
    with open(path, "rb") as f:
        raw = f.read()
    with open(path, "wb") as f:
        f.write(raw.replace(b"bad/data/0", b"bad/data/1", 1))
    with open(os.path.join(out, "bad_expect.txt"), "w") as f:
        for name, (_, what) in BAD_PICKLES.items():
            f.write("bad_%s.bin\t%s\n" % (name, what))
        f.write("bad_deflated.bin\tcompressed\n")
        f.write("bad_amp_views.bin\tstrided\n")
        f.write("bad_local_name.bin\tlocal header\n")


if __name__ == "__main__":
    main()

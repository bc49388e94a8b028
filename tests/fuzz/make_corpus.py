"""Writes the seed corpora and dictionaries of the fuzz targets (committed;
rerun after changing them):

    python3 tests/fuzz/make_corpus.py        (from the repository root)

tests/fuzz/corpus/<target>/ gets a few small, valid inputs of each format
the target reads, made here by hand (json, struct, zlib, tarfile, zipfile)
or by independent tools (cjpeg from libjpeg-turbo-progs for JPEG, the
Parquet writer tests/tools/parquet_writer), or copied from tests/fixtures;
every file named seed-*. Regression inputs of bugs the fuzzers found are
committed beside them as crash-<what>, and this script leaves those alone.
tests/fuzz/dict/*.dict: libFuzzer dictionaries, the API's from the field
tables in api/api_generate.c and api/api_train.c.
"""
import glob
import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import zipfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
CORPUS = os.path.join(HERE, "corpus")
DICTS = os.path.join(HERE, "dict")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def fixture(*parts):
    with open(os.path.join(FIXTURES, *parts), "rb") as f:
        return f.read()


# ---- PNG and JPEG ---------------------------------------------------------

def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(w, h, depth, color, rows, extra=b"", interlace=0):
    """rows: the filtered scanlines (filter byte first), already laid out."""
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, interlace)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + extra +
            png_chunk(b"IDAT", zlib.compress(rows)) + png_chunk(b"IEND", b""))


def pngs():
    yield "rgb8.png", png(3, 2, 8, 2, b"".join(b"\0" + bytes(range(r * 9, r * 9 + 9))
                                               for r in range(2)))
    yield "gray8.png", png(4, 2, 8, 0, b"\0\x00\x40\x80\xff" * 2)
    yield "gray_alpha.png", png(2, 2, 8, 4, b"\0\x10\xff\x20\x80" * 2)
    yield "rgba16.png", png(2, 1, 16, 6, b"\0" + bytes(range(16)))
    yield "gray16.png", png(2, 1, 16, 0, b"\0\x01\x00\xff\xff")
    yield "palette_trns.png", png(2, 2, 8, 3, b"\0\x00\x01\x01\x00",
                                  png_chunk(b"PLTE", b"\xff\x00\x00\x00\x00\xff") +
                                  png_chunk(b"tRNS", b"\x80"))
    # Adam7 of a 3x3 gray image: passes 1, 6 and 7 hold pixels
    yield "interlaced.png", png(3, 3, 8, 0, b"\0\x01" + b"\0\x02" + b"\0\x03\x04\x05", b"", 1)
    yield "text.png", png(1, 1, 8, 2, b"\0\x01\x02\x03",
                          png_chunk(b"tEXt", b"parameters\0a red circle, Steps: 20"))
    yield "fixture.png", fixture("images", "conditioning_23x37.png")


def ppm(w, h):
    pixels = bytes((x * 16 + y * 7 + c * 50) % 256 for y in range(h) for x in range(w) for c in range(3))
    return b"P6 %d %d 255\n" % (w, h) + pixels


def jpegs(tmp):
    src = os.path.join(tmp, "in.ppm")
    with open(src, "wb") as f:
        f.write(ppm(16, 8))
    for name, args in [("baseline.jpg", []), ("progressive.jpg", ["-progressive"]),
                       ("gray.jpg", ["-grayscale"]), ("444.jpg", ["-sample", "1x1"]),
                       ("restart.jpg", ["-restart", "1", "-optimize"]),
                       ("arithmetic.jpg", ["-arithmetic"])]:
        yield name, subprocess.run(["cjpeg", "-quality", "75"] + args + [src], check=True,
                                   stdout=subprocess.PIPE).stdout


# ---- safetensors and torch pickles ----------------------------------------

def safetensors(tensors, metadata=None):
    """tensors: (name, dtype, shape, bytes) in order, aligned to 8 as the Python writer does."""
    header, data = {}, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def pk_str(s):
    b = s.encode() if isinstance(s, str) else s
    return b"X" + struct.pack("<I", len(b)) + b


def pk_int(n):
    return b"J" + struct.pack("<i", n)


def pk_tuple(items):
    return b"(" + b"".join(items) + b"t"


def pk_tensor(key, storage, numel, offset, size, stride):
    """torch._utils._rebuild_tensor_v2(persistent storage id, offset, size, stride, False, OrderedDict())."""
    pid = pk_tuple([pk_str("storage"), b"ctorch\n" + storage + b"\n", pk_str(key), pk_str("cpu"),
                    pk_int(numel)])
    return (b"ctorch._utils\n_rebuild_tensor_v2\n(" + pid + b"Q" + pk_int(offset) +
            pk_tuple(pk_int(v) for v in size) + pk_tuple(pk_int(v) for v in stride) +
            b"\x89ccollections\nOrderedDict\n)RtR")


def torch_zip(pkl, storages):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/byteorder", "little")
        for key, raw in storages.items():
            z.writestr("archive/data/" + key, raw)
        z.writestr("archive/version", "3\n")
    return out.getvalue()


def torch_files():
    six = struct.pack("<6f", 0, 1, 2, 3, 4, 5)
    plain = (b"\x80\x02ccollections\nOrderedDict\n)R(" + pk_str("w") +
             pk_tensor("0", b"FloatStorage", 6, 0, (2, 3), (3, 1)) + pk_str("wt") +
             pk_tensor("0", b"FloatStorage", 6, 0, (3, 2), (1, 3)) + pk_str("tail") +
             pk_tensor("0", b"FloatStorage", 6, 4, (2,), (1,)) + b"u.")
    yield "state.bin", torch_zip(plain, {"0": six})
    half = b"\x80\x02}(" + pk_str("h") + pk_tensor("1", b"HalfStorage", 4, 0, (4,), (1,)) + b"u."
    yield "half.bin", torch_zip(half, {"1": struct.pack("<4e", 1, -2, 0.5, 65504)})
    ckpt = (b"\x80\x02}(" + pk_str("state_dict") + b"}(" + pk_str("b") +
            pk_tensor("0", b"FloatStorage", 6, 0, (6,), (1,)) + b"u" + pk_str("global_step") +
            pk_int(7) + b"u.")
    yield "lightning.ckpt", torch_zip(ckpt, {"0": six})


# ---- archives and datasets ------------------------------------------------

def tar(members, fmt=tarfile.GNU_FORMAT, mode="w"):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=mode, format=fmt) as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            t.addfile(info, io.BytesIO(data))
    return out.getvalue()


def zip_of(members):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members:
            z.writestr(name, data)
    return out.getvalue()


def imagefolder(target, cond, jpg):
    lines = [{"image": "images/a.png", "conditioning_image": "conditioning_images/a.png",
              "text": "red circle"},
             {"image": "images/b.jpg", "conditioning_image": "conditioning_images/a.png",
              "text": ["blue circle", "a blue disc"]}]
    return [("metadata.jsonl", "".join(json.dumps(l) + "\n" for l in lines).encode()),
            ("images/a.png", target), ("images/b.jpg", jpg), ("conditioning_images/a.png", cond)]


# ---- requests -------------------------------------------------------------

DATASET_ID = "d_0123456789abcdef0123456789abcdef"  # tests/fuzz/lib_fuzz.h's FUZZ_DATASET_ID


def multipart(boundary, parts):
    body = b""
    for name, filename, data in parts:
        disp = b'form-data; name="%s"' % name.encode()
        if filename:
            disp += b'; filename="%s"' % filename.encode()
        body += b"--" + boundary + b"\r\nContent-Disposition: " + disp + b"\r\n"
        if filename:
            body += b"Content-Type: image/png\r\n"
        body += b"\r\n" + data + b"\r\n"
    return body + b"--" + boundary + b"--\r\n"


def table_names(path):
    with open(os.path.join(ROOT, path)) as f:
        src = f.read()
    names = re.findall(r'\.name = "([^"]+)"', src)
    for block in re.findall(r"static const char \*const \w+\[\] = \{([^}]*)\}", src):
        names += re.findall(r'"([^"]+)"', block)
    return names


def write_dict(name, words):
    os.makedirs(DICTS, exist_ok=True)
    with open(os.path.join(DICTS, name + ".dict"), "w") as f:
        f.write("# libFuzzer dictionary, written by tests/fuzz/make_corpus.py\n")
        for w in sorted(set(words)):
            f.write('"%s"\n' % "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "\\x%02x" % ord(c)
                                       for c in w))


def main():
    for d in glob.glob(os.path.join(CORPUS, "*", "seed-*")):
        os.remove(d)
    tmp = tempfile.mkdtemp()
    try:
        images = dict(pngs())
        images.update(jpegs(tmp))
        for name, data in images.items():
            put("image", name, data)
        target, cond, jpg = images["rgb8.png"], images["gray8.png"], images["baseline.jpg"]

        f32 = struct.pack("<6f", 0, 1, 2, 3, 4, 5)
        put("safetensors", "f32.safetensors", safetensors([("w", "F32", [2, 3], f32)]))
        put("safetensors", "mixed.safetensors", safetensors(
            [("a.weight", "F16", [2], struct.pack("<2e", 1, -1)),
             ("a.bias", "BF16", [1, 1], b"\x80\x3f"),
             ("scalar", "F32", [], struct.pack("<f", 3)),
             ("empty", "F32", [0, 4], b""),
             ("ids", "I64", [2], struct.pack("<2q", 1, 2))], {"format": "pt"}))
        put("safetensors", "tokenizer.safetensors", fixture("goldens", "tokenizer.safetensors")
            if os.path.getsize(os.path.join(FIXTURES, "goldens", "tokenizer.safetensors")) < 65536
            else safetensors([]))

        for name, data in torch_files():
            put("torch_pickle", name, data)

        configs = [(0, "tiny-sd", "unet/config.json"), (1, "tiny-sd", "controlnet/config.json"),
                   (2, "tiny-sd", "vae/config.json"), (3, "tiny-sd", "text_encoder/config.json"),
                   (4, "tiny-sd", "scheduler/scheduler_config.json"), (5, "tiny-sd", "model_index.json"),
                   (0, "tiny-sdxl", "unet/config.json"), (3, "tiny-sdxl", "text_encoder_2/config.json"),
                   (5, "tiny-sdxl", "model_index.json")]
        for reader, model, path in configs:
            put("config", "%d-%s-%s" % (reader, model, path.replace("/", "-")),
                bytes([reader]) + fixture(model, *path.split("/")))

        pq = os.path.join(tmp, "pq")
        for mode in ("matrix", "dataset"):
            subprocess.run(["sh", os.path.join(ROOT, "tests/tools/parquet_writer/generate.sh"), mode,
                            os.path.join(pq, mode)], check=True)
        for name in ("snappy_dict1_v1", "zstd_dict0_v2", "gzip_dict1_v2", "none_dict0_v1"):
            with open(os.path.join(pq, "matrix", name + ".parquet"), "rb") as f:
                put("parquet", name + ".parquet", f.read())
        for path in sorted(glob.glob(os.path.join(pq, "dataset", "data", "*.parquet")))[:1]:
            with open(path, "rb") as f:
                put("parquet", "dataset.parquet", f.read())

        put("webdataset", "two.tar", tar([("s0.png", target), ("s0.cond.png", cond), ("s0.txt", b"red"),
                                          ("s1.jpg", jpg), ("s1.cond.png", cond), ("s1.txt", b"blue")]))
        put("webdataset", "pax_missing.tar", tar([("d/k.png", target), ("d/k.txt", b"no cond"),
                                                  ("d/m.jpeg", jpg), ("d/m.cond.jpg", jpg)],
                                                 tarfile.PAX_FORMAT))

        folder = imagefolder(target, cond, jpg)
        put("upload", "imagefolder.tar", tar(folder))
        put("upload", "imagefolder.tar.gz", tar([("ds/" + n, d) for n, d in folder], mode="w:gz"))
        put("upload", "imagefolder.zip", zip_of(folder))
        put("upload", "fill50k.tar", tar([
            ("prompt.json", b'{"source": "source/0.png", "target": "target/0.png", "prompt": "red"}\n'),
            ("source/0.png", cond), ("target/0.png", target)], tarfile.USTAR_FORMAT))
        put("upload", "shards.tar", tar([("train-0.tar", tar([("k.png", target), ("k.cond.png", cond),
                                                              ("k.txt", b"red")]))]))

        put("dataset_index", "metadata.jsonl", b"\x00" +
            b'{"image": "image.png", "conditioning_image": "image.png", "text": "a"}\n'
            b'{"file_name": "image.png", "conditioning_image_file_name": "image.png", "text": ["b", "c"]}\n')
        put("dataset_index", "metadata.csv", b"\x01file_name,conditioning_image,text\n"
            b'image.png,image.png,"a, quoted ""caption"""\nimage.png,image.png,plain\n')
        put("dataset_index", "prompt.json", b"\x02" +
            b'{"source": "image.png", "target": "image.png", "prompt": "a"}\n'
            b'{"source": "image.png", "target": "image.png", "prompt": ""}\n')

        b64 = __import__("base64").b64encode(target).decode()
        put("api_generate", "minimal.json", json.dumps({"model": "base", "prompt": "a red circle"}))
        put("api_generate", "full.json", json.dumps({
            "model": "base", "controlnet": "cn", "prompt": "a red circle", "negative_prompt": "blurry",
            "steps": 4, "width": 64, "height": 64, "seed": 7, "guidance": 7.5, "scheduler": "ddim",
            "num_images": 2, "image": b64, "async": True}))
        put("api_generate", "sdxl.json", json.dumps({
            "model": "base", "prompt": "x", "prompt_2": "y", "original_size": [64, 64],
            "crops_coords_top_left": [0, 0], "target_size": [64, 64], "preprocess": "canny",
            "canny_low_threshold": 100, "canny_high_threshold": 200, "guess_mode": True}))
        put("api_generate", "hub.json", json.dumps({"model": "hf://org/name@main", "prompt": "p"}))
        put("api_train", "minimal.json", json.dumps(
            {"pretrained_model_name_or_path": "base", "dataset": DATASET_ID}))
        put("api_train", "full.json", json.dumps({
            "pretrained_model_name_or_path": "base", "controlnet_model_name_or_path": "cn",
            "dataset": DATASET_ID, "resolution": 64, "train_batch_size": 2, "max_train_steps": 10,
            "learning_rate": 1e-5, "lr_scheduler": "constant", "lr_warmup_steps": 0,
            "checkpointing_steps": 5, "gradient_accumulation_steps": 2, "mixed_precision": "no",
            "validation_prompt": ["a red circle"], "validation_image": ["images/a.png"],
            "validation_steps": 5, "seed": 3, "proportion_empty_prompts": 0.1}))
        put("api_train", "hub.json", json.dumps(
            {"pretrained_model_name_or_path": "hf://org/name", "dataset": DATASET_ID,
             "push_to_hub": {"repo_id": "org/cn"}}))

        boundary = b"XyZ"
        ct = b"multipart/form-data; boundary=XyZ\n"
        put("multipart", "generate.txt", ct + multipart(boundary, [
            ("model", None, b"base"), ("prompt", None, b"a red circle"), ("steps", None, b"20"),
            ("seed", None, b"1"), ("image", "c.png", target)]))
        put("multipart", "size_guess.txt", ct + multipart(boundary, [
            ("prompt", None, b"x"), ("original_size", None, b"64,64"),
            ("guess_mode", None, b"true"), ("guidance", None, b"7.5")]))
        put("multipart", "quoted.txt", b'multipart/form-data; charset=utf-8; boundary="a b"\n' +
            multipart(b"a b", [("prompt", None, b"\xc3\xa9t\xc3\xa9")]))

        write_dict("api", table_names("api/api_generate.c") + table_names("api/api_train.c") +
                   ["hf://", "@main", "base", "cn", "j_", DATASET_ID, "true", "null", "[]", "{}"])
        write_dict("multipart", ["multipart/form-data", "boundary=", "--", "\r\n", "\r\n\r\n",
                                 "Content-Disposition: form-data; name=", "; filename=",
                                 "Content-Type: ", "Content-Transfer-Encoding: ", "image", "prompt"] +
                   table_names("api/api_generate.c"))
        write_dict("config", ["_class_name", "down_block_types", "up_block_types", "block_out_channels",
                              "layers_per_block", "attention_head_dim", "num_attention_heads",
                              "cross_attention_dim", "transformer_layers_per_block", "trained_betas",
                              "addition_embed_type", "text_time", "CrossAttnDownBlock2D",
                              "DownBlock2D", "UpBlock2D", "CrossAttnUpBlock2D", "DDIMScheduler",
                              "EulerDiscreteScheduler", "null", "[", "]", "1e308"])
        write_dict("torch", ["ctorch._utils\n_rebuild_tensor_v2\n", "ccollections\nOrderedDict\n",
                             "ctorch\nFloatStorage\n", "ctorch\nHalfStorage\n", "storage", "cpu",
                             "state_dict", "data.pkl", "byteorder", "PK\x03\x04", "PK\x01\x02",
                             "PK\x05\x06"])
        write_dict("webdataset", [".png", ".jpg", ".jpeg", ".cond.png", ".cond.jpg", ".txt", "ustar",
                                  "../", "/"])
        write_dict("upload", ["metadata.jsonl", "metadata.csv", "prompt.json", ".tar", "ustar", "../",
                              "PK\x03\x04", "\x1f\x8b"])
        write_dict("dataset", ["image", "conditioning_image", "text", "file_name",
                               "conditioning_image_file_name", "source", "target", "prompt",
                               "image.png", '"', ","])
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()

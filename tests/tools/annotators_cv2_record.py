#!/usr/bin/python3
"""Records what OpenCV itself makes of the test pictures, through the calls
the sd-webui-controlnet extension's model-free preprocessors make
(scripts/preprocessor/legacy/processor.py, annotator/shuffle,
annotator/color, resize_image_with_pad), into tests/tools/annotators_cv2.json:
a second, recorded truth beside the pure-Python reference
(tests/tools/annotators_ref.py reads both); each output's pixels zlib'd,
in base64. Needs numpy and cv2 (Debian's
python3-numpy and python3-opencv); run it again only to re-record:

    /usr/bin/python3 tests/tools/annotators_cv2_record.py

The pictures are annotators_ref.picture's; the calls are written here from
the extension's source, not imported from it.
"""
import base64
import json
import os
import sys
import zlib

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import annotators_ref as ref  # noqa: E402  (the test pictures)


def array(img):
    return np.array(img.d, dtype=np.uint8).reshape(img.h, img.w, 3)


def fit(img, res):
    """resize_image_with_pad: (padded, remove_pad)."""
    h, w = img.shape[:2]
    k = float(res) / float(min(h, w))
    interp = cv2.INTER_CUBIC if k > 1 else cv2.INTER_AREA
    ht, wt = int(np.round(float(h) * k)), int(np.round(float(w) * k))
    img = cv2.resize(img, (wt, ht), interpolation=interp)
    ph = int(np.ceil(float(ht) / 64.0) * 64 - ht)
    pw = int(np.ceil(float(wt) / 64.0) * 64 - wt)
    padded = np.pad(img, [[0, ph], [0, pw], [0, 0]], mode="edge")
    return padded, (lambda x: np.ascontiguousarray(x[:ht, :wt]))


def gray3(x):
    return np.stack([x] * 3, axis=2) if x.ndim == 2 else x


def threshold(img, a, res, seed):
    p, crop = fit(img, res)
    out = np.zeros_like(p, dtype=np.uint8)
    out[np.min(p, axis=2) > a] = 255
    return crop(out)


def scribble_xdog(img, a, res, seed):
    p, crop = fit(img, res)
    g1 = cv2.GaussianBlur(p.astype(np.float32), (0, 0), 0.5)
    g2 = cv2.GaussianBlur(p.astype(np.float32), (0, 0), 5.0)
    dog = (255 - np.min(g2 - g1, axis=2)).clip(0, 255).astype(np.uint8)
    out = np.zeros_like(p, dtype=np.uint8)
    out[2 * (255 - dog) > a] = 255
    return crop(out)


def lineart_standard(img, a, res, seed):
    p, crop = fit(img, res)
    x = p.astype(np.float32)
    g = cv2.GaussianBlur(x, (0, 0), 6.0)
    inten = np.min(g - x, axis=2).clip(0, 255)
    inten /= max(16, np.median(inten[inten > 8]))
    inten *= 127
    return gray3(crop(inten.clip(0, 255).astype(np.uint8)))


def noise_disk(H, W, F):
    noise = np.random.uniform(low=0, high=1, size=((H // F) + 2, (W // F) + 2, 1))
    noise = cv2.resize(noise, (W + 2 * F, H + 2 * F), interpolation=cv2.INTER_CUBIC)
    noise = noise[F:F + H, F:F + W]
    noise -= np.min(noise)
    noise /= np.max(noise)
    return noise[:, :, None]


def shuffle(img, a, res, seed):
    p, crop = fit(img, res)
    im = crop(p)
    np.random.seed(seed)
    H, W = im.shape[:2]
    x = noise_disk(H, W, 256) * float(W - 1)
    y = noise_disk(H, W, 256) * float(H - 1)
    flow = np.concatenate([x, y], axis=2).astype(np.float32)
    return cv2.remap(im, flow, None, cv2.INTER_LINEAR)


def tile_resample(img, a, res, seed):
    if a < 1.1:
        return img
    h, w = img.shape[:2]
    return cv2.resize(img, (int(float(w) / float(a)), int(float(h) / float(a))),
                      interpolation=cv2.INTER_AREA)


def blur_gaussian(img, a, res, seed):
    p, crop = fit(img, res)
    return cv2.GaussianBlur(crop(p), (0, 0), float(a))


def color(img, a, res, seed):
    h, w = img.shape[:2]
    if h < w:
        nh, nw = res, int(round(w / h * res))
    else:
        nw, nh = res, int(round(h / w * res))
    img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
    small = cv2.resize(img, (nw // 64, nh // 64), interpolation=cv2.INTER_CUBIC)
    return cv2.resize(small, (nw, nh), interpolation=cv2.INTER_NEAREST)


def canny(img, a, res, seed):
    p, crop = fit(img, res)
    return gray3(crop(cv2.Canny(p, 100, 200)))


def invert(img, a, res, seed):
    return 255 - img


# (annotator, picture w, h, picture seed, threshold_a or None, processor_res, seed)
CASES = [
    ("invert", 11, 8, 1, None, 0, 0),
    ("threshold", 23, 17, 2, 127, 0, 0), ("threshold", 23, 17, 2, 60, 0, 0),
    ("threshold", 23, 17, 2, 127, 5, 0), ("threshold", 23, 17, 2, 200, 14, 0),
    ("threshold", 23, 17, 2, 127, 23, 0), ("threshold", 40, 30, 3, 100, 64, 0),
    ("scribble_xdog", 23, 17, 2, 32, 0, 0), ("scribble_xdog", 23, 17, 2, 4, 0, 0),
    ("scribble_xdog", 23, 17, 2, 20, 11, 0), ("scribble_xdog", 40, 30, 3, 32, 64, 0),
    ("lineart_standard", 23, 17, 2, None, 0, 0), ("lineart_standard", 23, 17, 2, None, 29, 0),
    ("lineart_standard", 40, 30, 3, None, 64, 0),
    ("shuffle", 11, 8, 1, None, 0, 0), ("shuffle", 11, 8, 1, None, 0, 12345),
    ("shuffle", 11, 8, 1, None, 12, 7), ("shuffle", 40, 30, 3, None, 0, 99),
    ("tile_resample", 23, 17, 2, 2.0, 0, 0), ("tile_resample", 23, 17, 2, 3.0, 0, 0),
    ("tile_resample", 23, 17, 2, 1.5, 0, 0), ("tile_resample", 22, 16, 7, 2.0, 0, 0),
    ("tile_resample", 21, 15, 8, 3.0, 0, 0), ("tile_resample", 64, 48, 4, 2.5, 0, 0),
    ("blur_gaussian", 11, 8, 1, 9.0, 0, 0), ("blur_gaussian", 11, 8, 1, 0.6, 0, 0),
    ("blur_gaussian", 11, 8, 1, 2.5, 12, 0), ("blur_gaussian", 40, 30, 3, 1.7, 0, 0),
    ("color", 70, 64, 3, None, 64, 0), ("color", 150, 130, 4, None, 130, 0),
    ("color", 150, 130, 5, None, 100, 0), ("color", 70, 64, 3, None, 131, 0),
    ("canny", 23, 17, 2, None, 40, 0), ("canny", 40, 30, 3, None, 64, 0),
]

FUNCS = {f.__name__: f for f in (invert, threshold, scribble_xdog, lineart_standard, shuffle,
                                  tile_resample, blur_gaussian, color, canny)}


def main():
    out = {"opencv": cv2.__version__, "numpy": np.__version__, "cases": []}
    for name, w, h, pseed, a, res, seed in CASES:
        img = array(ref.picture(w, h, pseed))
        r = res if res > 0 else min(w, h)
        got = np.ascontiguousarray(FUNCS[name](img, a, r, seed), dtype=np.uint8)
        out["cases"].append({"name": name, "w": w, "h": h, "picture": pseed, "a": a, "res": res,
                             "seed": seed, "out_w": int(got.shape[1]), "out_h": int(got.shape[0]),
                             "pixels": base64.b64encode(zlib.compress(got.tobytes(), 9)).decode()})
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "annotators_cv2.json")
    with open(path, "w") as f:
        f.write("{\"opencv\": %s, \"numpy\": %s, \"cases\": [\n" % (json.dumps(out["opencv"]), json.dumps(out["numpy"])))
        f.write(",\n".join(json.dumps(c) for c in out["cases"]))
        f.write("\n]}\n")
    print("wrote %s: %d cases, OpenCV %s" % (path, len(out["cases"]), cv2.__version__))


if __name__ == "__main__":
    main()

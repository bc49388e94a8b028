#!/bin/sh
# `cnet preprocess --preprocess depth --preprocess_model DIR` on the tiny DPT
# of tests/fixtures-dpt: the picture stored in its golden gives the golden's
# 8-bit depth map (tests/tools/dpt_golden.py; within one level, the
# truncation to uint8), and without the folder it fails saying the weights
# are needed (exit 1); `cnet generate --preprocess depth --preprocess_model
# DIR` on tests/fixtures/tiny-sd runs it, and fails the same way without.
# Run from the repository root.
. tests/lib/lib_check.sh
BUILD=${BUILD:-build}
CNET=$BUILD/cnet
DIFF=$BUILD/tests/tool_imgdiff
FIX=tests/fixtures-dpt
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

# The golden's image and depth_u8 (grey on three channels) as RGB PNGs,
# written with Python's zlib and json (no image library).
python3 - "$FIX/golden.safetensors" "$T/in.png" "$T/want.png" <<'PY'
import json, struct, sys, zlib
blob = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", blob[:8])[0]
head = json.loads(blob[8:8 + n])
def tensor(name):
    b, e = head[name]["data_offsets"]
    return head[name]["shape"], blob[8 + n + b:8 + n + e]
def png(path, w, h, rgb):
    raw = b"".join(b"\0" + rgb[y * w * 3:(y + 1) * w * 3] for y in range(h))
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
(h, w, _), image = tensor("image")
png(sys.argv[2], w, h, image)
(h, w), depth = tensor("depth_u8")
png(sys.argv[3], w, h, bytes(v for d in depth for v in (d, d, d)))
PY

run() { "$CNET" preprocess "$@" >"$T/out" 2>"$T/err"; echo $? >"$T/rc"; }
rc_is() { [ "$(cat "$T/rc")" = "$1" ]; }
within_one() { "$DIFF" "$T/want.png" "$T/d.png" | grep -qE 'max_abs [01]$'; }

run --image "$T/in.png" --preprocess depth --preprocess_model "$FIX/model" --out "$T/d.png"
check "depth writes a png" rc_is 0
check "depth equals the golden's 8-bit map within one level" within_one
run --image "$T/in.png" --preprocess depth --out "$T/x.png"
check "depth without --preprocess_model: exit 1 saying why" sh -c \
    "[ \"\$(cat '$T/rc')\" = 1 ] && grep -q 'needs its weights' '$T/err' && [ ! -e '$T/x.png' ]"
gen() {
    "$CNET" generate --model tests/fixtures/tiny-sd --image "$T/in.png" --preprocess depth \
        --prompt "a cat" --steps 2 --width 64 --height 64 --seed 1 "$@" >"$T/out" 2>"$T/err"
    echo $? >"$T/rc"
}
gen --preprocess_model "$FIX/model" --out "$T/g.png"
check "generate with depth and its folder" sh -c "[ \"\$(cat '$T/rc')\" = 0 ] && [ -s '$T/g.png' ]"
gen --out "$T/g2.png"
check "generate with depth without its folder: exit 1 saying why" sh -c \
    "[ \"\$(cat '$T/rc')\" = 1 ] && grep -q 'needs its weights' '$T/err' && [ ! -e '$T/g2.png' ]"
summary preprocess_depth_test

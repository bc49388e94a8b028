#!/bin/sh
# `cnet preprocess` (server/cli/cmd_preprocess.c): invert twice gives the
# picture back and once changes it (tests/tools/tool_imgdiff compares), the
# output's extension picks the format, threshold gives only black and white,
# and the refusals: a threshold outside its annotator's range (exit 2, naming
# --threshold_a), an unknown preprocessor (2), no --image (2), a picture the
# annotator cannot take (1, saying why). Run from the repository root.
. tests/lib/lib_check.sh
BUILD=${BUILD:-build}
CNET=$BUILD/cnet
DIFF=$BUILD/tests/tool_imgdiff
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

# A 23x17 RGB PNG written with Python's zlib (no image library).
python3 - "$T/in.png" <<'PY'
import struct, sys, zlib
w, h = 23, 17
raw = b"".join(b"\0" + bytes((x * 11 + c * 70 + (90 if abs(x - y) < 2 else 0)) % 256
                             for x in range(w) for c in range(3)) for y in range(h))
def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
open(sys.argv[1], "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                              + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
PY

run() { "$CNET" preprocess "$@" >"$T/out" 2>"$T/err"; echo $? >"$T/rc"; }
rc_is() { [ "$(cat "$T/rc")" = "$1" ]; }

run --image "$T/in.png" --preprocess invert --out "$T/a.png"
check "invert writes a png" rc_is 0
run --image "$T/a.png" --preprocess invert --out "$T/b.png"
check "invert twice is the picture" sh -c "\"$DIFF\" \"$T/in.png\" \"$T/b.png\" | grep -q 'max_abs 0\$'"
check "invert once changes it" sh -c "! \"$DIFF\" \"$T/in.png\" \"$T/a.png\" | grep -q 'max_abs 0\$'"
run --image "$T/in.png" --preprocess threshold --threshold_a 100 --out "$T/t.jpg"
check "a .jpg output is a JPEG" sh -c "[ \"\$(cat '$T/rc')\" = 0 ] && head -c 3 '$T/t.jpg' | od -An -tx1 | grep -q 'ff d8 ff'"
run --image "$T/in.png" --preprocess threshold --threshold_a 300 --out "$T/x.png"
check "a threshold outside threshold's range: exit 2 naming --threshold_a" sh -c \
    "[ \"\$(cat '$T/rc')\" = 2 ] && grep -qF -- '--threshold_a: 300 is outside threshold' '$T/err'"
run --image "$T/in.png" --preprocess sobel
check "an unknown preprocessor: exit 2" rc_is 2
run --preprocess invert
check "no --image: exit 2" sh -c "[ \"\$(cat '$T/rc')\" = 2 ] && grep -q 'missing --image' '$T/err'"
run --image "$T/in.png" --preprocess color --out "$T/c.png"
check "color on a 23x17 picture: exit 1 saying why" sh -c \
    "[ \"\$(cat '$T/rc')\" = 1 ] && grep -q '64-pixel block' '$T/err' && [ ! -e '$T/c.png' ]"
summary preprocess_cli_test

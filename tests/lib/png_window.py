# Whether the pixels of PNG B equal a B-sized window of PNG A (stdlib only:
# the test machines have no imaging module). Usage: png_window.py A B [X]
# exits 0 when B equals A's columns X .. X + width(B) - 1 (X default 0) over
# all rows, 1 otherwise. Reads 8-bit RGB, non-interlaced PNGs (what
# engine/image/image_png.c writes), undoing the five PNG row filters of the
# PNG specification (section 9); anything else is refused by an assertion.
import struct, sys, zlib
def pixels(p):
    d = open(p, "rb").read()
    at, idat, w, h = 8, b"", 0, 0
    while at < len(d):
        n, kind = struct.unpack(">I4s", d[at:at + 8])
        body = d[at + 8:at + 8 + n]
        if kind == b"IHDR":
            w, h, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color == 2, "8-bit RGB only"
        if kind == b"IDAT":
            idat += body
        at += 12 + n
    raw, stride, rows, prev = zlib.decompress(idat), 3 * w, [], bytearray(3 * w)
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - 3] if x >= 3 else 0
            b, c = prev[x], prev[x - 3] if x >= 3 else 0
            pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
            pred = [0, a, b, (a + b) // 2, a if pa <= pb and pa <= pc else b if pb <= pc else c][f]
            line[x] = (line[x] + pred) & 255
        rows.append(bytes(line))
        prev = line
    return w, h, rows
wa, ha, a = pixels(sys.argv[1])
wb, hb, b = pixels(sys.argv[2])
x0 = int(sys.argv[3]) if len(sys.argv) > 3 else 0
sys.exit(ha != hb or x0 + wb > wa or any(a[y][3 * x0:3 * (x0 + wb)] != b[y] for y in range(hb)))

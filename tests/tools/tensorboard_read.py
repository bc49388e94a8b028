"""Reads TensorBoard event files independently of cnet: TFRecord framing
with its own CRC-32C (bit by bit, from the reflected Castagnoli polynomial)
and the masks of tensorflow/core/lib/hash/crc32c.h, the Event protobufs
through Debian's python3-protobuf and the module protoc made from
tensorboard_events.proto, and each image summary's PNG header.

usage: tensorboard_read.py PROTO_MODULE_DIR [--shown] EVENT_FILE...
Prints one line per event:
    file NAME
    version STEP FILE_VERSION
    start STEP                      (a SessionLog START)
    scalar STEP TAG VALUE
    image STEP TAG HEIGHT WIDTH COLORSPACE PNG_WIDTH PNG_HEIGHT
and exits 1 with a message at the first bad length, CRC or message.
--shown prints what TensorBoard shows instead: a SessionLog START at step S
drops the scalars and images with step >= S read before it, as
tensorboard/backend/event_processing/event_accumulator.py's
_CheckForRestartAndMaybePurge does for files of version brain.Event:2."""
import struct
import sys

sys.path.insert(0, sys.argv[1])
import tensorboard_events_pb2 as pb  # noqa: E402


def crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def masked(crc):
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def records(path):
    with open(path, "rb") as f:
        data = f.read()
    at = 0
    while at < len(data):
        header = data[at : at + 12]
        if len(header) < 12:
            sys.exit(f"{path}: {len(header)} bytes of a record header at {at}")
        (length,) = struct.unpack("<Q", header[:8])
        (length_crc,) = struct.unpack("<I", header[8:])
        if masked(crc32c(header[:8])) != length_crc:
            sys.exit(f"{path}: bad length crc at {at}")
        body = data[at + 12 : at + 12 + length]
        footer = data[at + 12 + length : at + 16 + length]
        if len(body) != length or len(footer) != 4:
            sys.exit(f"{path}: record at {at} cut short")
        if masked(crc32c(body)) != struct.unpack("<I", footer)[0]:
            sys.exit(f"{path}: bad data crc at {at}")
        yield body
        at += 16 + length


def png_size(png):
    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        sys.exit("an image summary is not a PNG")
    return struct.unpack(">II", png[16:24])


shown = len(sys.argv) > 2 and sys.argv[2] == "--shown"
lines = []  # (step or None, text): None for lines no purge drops
for path in sys.argv[3 if shown else 2 :]:
    lines.append((None, "file " + path.rsplit("/", 1)[-1]))
    for body in records(path):
        event = pb.Event()
        event.ParseFromString(body)
        what = event.WhichOneof("what")
        if what == "file_version":
            lines.append((None, f"version {event.step} {event.file_version}"))
        elif what == "session_log":
            if event.session_log.status != pb.SessionLog.START:
                sys.exit(f"{path}: a session_log of status {event.session_log.status}")
            if shown:
                lines = [(s, t) for s, t in lines if s is None or s < event.step]
            lines.append((None, f"start {event.step}"))
        elif what == "summary":
            for value in event.summary.value:
                kind = value.WhichOneof("value")
                if kind == "simple_value":
                    lines.append((event.step, f"scalar {event.step} {value.tag} "
                                  + repr(value.simple_value)))
                elif kind == "image":
                    img = value.image
                    w, h = png_size(img.encoded_image_string)
                    tag = value.tag.replace(" ", "_")
                    lines.append((event.step, f"image {event.step} {tag} {img.height} "
                                  f"{img.width} {img.colorspace} {w} {h}"))
                else:
                    sys.exit(f"{path}: a summary value of kind {kind}")
        else:
            sys.exit(f"{path}: an event of kind {what}")
for _, text in lines:
    print(text)

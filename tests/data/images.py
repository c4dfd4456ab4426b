"""Image files written byte by byte: real small ones, and hostile headers.

Every builder returns bytes. The small ones decode (TensorFlow's decoders
read them); the hostile ones are tiny files whose headers claim huge or
degenerate sizes, as an attacker would send them. Nothing here imports
TensorFlow, so a sandboxed child can use it cheaply.
"""

import struct
import zlib


def png(width, height, *, channels=3, ihdr=None):
    """A PNG of zeros, really decodable (zlib rows); `ihdr` overrides the claimed size."""
    color_type = {1: 0, 3: 2, 4: 6}[channels]
    raw = (b"\0" + b"\0" * (width * channels)) * height
    claimed = ihdr or (width, height)

    def chunk(kind, body):
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", *claimed, 8, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b""))  # fmt: skip


def _lzw_literals(pixels, min_code_size=8):
    """GIF LZW data that codes each pixel as a literal, with a clear code every 200 codes."""
    clear, end, width = 1 << min_code_size, (1 << min_code_size) + 1, min_code_size + 1
    codes = []
    for i, p in enumerate(pixels):
        if i % 200 == 0:
            codes.append(clear)
        codes.append(p)
    codes.append(end)
    bits, count, out = 0, 0, bytearray()
    for code in codes:
        bits |= code << count
        count += width
        while count >= 8:
            out.append(bits & 0xFF)
            bits >>= 8
            count -= 8
    if count:
        out.append(bits & 0xFF)
    return bytes(out)


def _sub_blocks(data):
    return b"".join(bytes([len(data[i : i + 255])]) + data[i : i + 255]
                    for i in range(0, len(data), 255)) + b"\0"  # fmt: skip


def gif_frame(width, height, *, left=0, top=0, data=True, extension=True):
    """One image descriptor (optionally after a graphic control extension) and its LZW data."""
    out = b""
    if extension:
        out += b"\x21\xf9" + _sub_blocks(b"\x00\x0a\x00\x00")
    out += b"\x2c" + struct.pack("<HHHHB", left, top, width, height, 0)
    pixels = [i % 4 for i in range(width * height)] if data else [0]
    return out + b"\x08" + _sub_blocks(_lzw_literals(pixels))


def gif(width, height, frames=None, *, comment=b""):
    """A GIF with a 256-colour global table; `frames` (descriptors) default to one full frame."""
    palette = bytes(range(256)) * 3
    screen = b"GIF89a" + struct.pack("<HHBBB", width, height, 0xF7, 0, 0) + palette
    if comment:
        screen += b"\x21\xfe" + _sub_blocks(comment)
    frames = [gif_frame(width, height)] if frames is None else frames
    return screen + b"".join(frames) + b"\x3b"


def bmp(width, height, *, bits=24, header_size=40):
    """A BMP of zeros; a negative `height` is top-down. `header_size=12` is the OS/2 core header."""
    row = (bits // 8 * width + 3) // 4 * 4
    pixels = b"\0" * (row * abs(height))
    if header_size == 12:
        info = struct.pack("<IHHHH", 12, width, height, 1, bits)
    else:
        info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, bits, 0, len(pixels), 0, 0, 0, 0)
    offset = 14 + len(info)
    return b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + info + pixels


def bmp_header(width, height, *, header_size=40):
    """Only the first 54 bytes of a BMP claiming `width` x `height` (a hostile header)."""
    info = struct.pack("<IiiHH", header_size, width, height, 1, 24) + b"\0" * 24
    return b"BM" + struct.pack("<IHHI", 54, 0, 0, 54) + info


class _Bits:
    def __init__(self):
        self.value, self.count = 0, 0

    def put(self, value, count):
        self.value |= value << self.count
        self.count += count

    def bytes(self):
        return self.value.to_bytes((self.count + 7) // 8, "little")


def webp_lossless(width, height, rgb=(0, 0, 0)):
    """A VP8L WebP of one colour: every prefix code has one symbol, so pixels cost 0 bits.

    That is why such a file is tiny at any size, 16383 x 16383 included.
    """
    bits = _Bits()
    bits.put(0x2F, 8)
    bits.put(width - 1, 14)
    bits.put(height - 1, 14)
    bits.put(0, 1)  # alpha is not used
    bits.put(0, 3)  # version 0
    bits.put(0, 1)  # no transform
    bits.put(0, 1)  # no colour cache
    bits.put(0, 1)  # no meta prefix codes
    for symbol in (rgb[1], rgb[0], rgb[2], 255, 0):  # green, red, blue, alpha, distance
        bits.put(1, 1)  # a simple code
        bits.put(0, 1)  # of one symbol
        bits.put(1, 1)  # 8 bits wide
        bits.put(symbol, 8)
    payload = bits.bytes()
    payload += b"\0" * (len(payload) % 2)
    chunk = b"VP8L" + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def webp_lossy_header(width, height):
    """The first 30 bytes of a VP8 (lossy) WebP claiming `width` x `height`."""
    frame = b"\x50\x00\x00" + b"\x9d\x01\x2a" + struct.pack("<HH", width, height)
    chunk = b"VP8 " + struct.pack("<I", len(frame)) + frame
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def webp_extended_header(width, height, flags=0):
    """A VP8X WebP header whose canvas is `width` x `height`, followed by nothing."""
    body = bytes([flags, 0, 0, 0]) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(
        3, "little")  # fmt: skip
    chunk = b"VP8X" + struct.pack("<I", len(body)) + body
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def jpeg(width=32, height=24, *, quality=90):
    """A real JPEG (TensorFlow encodes it); the one builder that imports TensorFlow."""
    import tensorflow as tf

    return tf.io.encode_jpeg(tf.zeros((height, width, 3), tf.uint8), quality=quality).numpy()


def jpeg_header(width, height, *, app_bytes=0, sof=0xC0):
    """A JPEG's markers up to its frame header claiming `width` x `height`, then an EOI.

    `app_bytes` of APP1 segments (64 KB at most each) come before the SOF, as
    EXIF thumbnails and ICC profiles do in real files.
    """
    out = b"\xff\xd8"
    while app_bytes > 0:
        n = min(app_bytes, 65533)
        out += b"\xff\xe1" + struct.pack(">H", n + 2) + b"\0" * n
        app_bytes -= n
    sof_body = struct.pack(">BHHB", 8, height, width, 3) + b"\x01\x11\x00\x02\x11\x00\x03\x11\x00"
    return out + bytes([0xFF, sof]) + struct.pack(">H", len(sof_body) + 2) + sof_body + b"\xff\xd9"

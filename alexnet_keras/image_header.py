"""Image sizes read from file headers, and the bounds every image must meet before decoding.

A decoder allocates what the header claims before it reads a pixel, and a
few bytes can claim gigapixels, so every reader (image folders, `predict`,
`load_image`, the serving graph's TensorFlow twin in `serving.graph`) reads
the size here and refuses it, in one line, before decoding. Pure Python: no
TensorFlow, no PIL.

The format is told from the first bytes, as `tf.io.decode_image` tells it,
and the size is the one TensorFlow decodes to:

- JPEG: the first frame header (SOFn), found by walking the marker segments
  as libjpeg does (stray bytes and fill bytes skipped).
- PNG: the IHDR chunk.
- GIF: the largest width and the largest height over every image descriptor
  (TensorFlow decodes to that canvas, not to the logical screen), and the
  frames' pixels in all, since giflib keeps every frame.
- BMP: the int32 width and height at offsets 18 and 22 that TensorFlow reads
  (a negative height is a top-down image); the 12-byte OS/2 core header
  holds 16-bit ones.
- WebP: the VP8 frame header, the VP8L header or the VP8X canvas.
"""

import os
import stat

from alexnet_keras.files import existing_file
from alexnet_keras.limits import (
    MAX_GIF_PIXELS,
    MAX_HEADER_STEPS,
    MAX_IMAGE_BYTES,
    MAX_IMAGE_PIXELS,
    MAX_IMAGE_SIDE,
    MAX_RESIZED_PIXELS,
    MIN_IMAGE_SIDE,
)

__all__ = [
    "FIRST_READ",
    "FORMATS",
    "JPEG_ERRORS",
    "JPEG_WINDOW",
    "RESIZE",
    "SIGNATURES",
    "Incomplete",
    "check_image_size",
    "image_format",
    "image_size",
    "read_image_size",
    "resized_pixels",
    "size_problem",
]

# The shorter side after resizing: `preprocessing.load_image`'s default and
# the serving graph's. MAX_RESIZED_PIXELS bounds the image it makes.
RESIZE = 256
# The formats `tf.io.decode_image` tells apart, in its order, and how each
# starts (WebP: RIFF, a size, WEBP).
FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WebP")
SIGNATURES = {"JPEG": b"\xff\xd8\xff", "PNG": b"\x89PNG\r\n\x1a\n", "GIF": b"GIF8",
              "BMP": b"BM"}  # fmt: skip
# Stray bytes between JPEG segments are skipped this many at a time (one step).
JPEG_WINDOW = 4096
# `read_image_size` reads this much first: enough for every header but a
# JPEG's after a large EXIF or ICC segment (then it reads on).
FIRST_READ = 4096
# Why a JPEG walk stopped without a size, by its status in the graph twin
# (0 walking, 1 found); the serving graph gathers its message from here.
JPEG_ERRORS = (
    "",
    "",
    "a truncated JPEG header: the file ends before the image size",
    "a JPEG without a frame header (SOF) before its scan or end marker",
    "a JPEG with a second start-of-image marker before its frame header",
    "a JPEG marker segment with a length below 2",
    f"a JPEG with more than {MAX_HEADER_STEPS} segments before its frame header",
)
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


class Incomplete(ValueError):
    """The bytes end inside the header; reading up to `needed` bytes lets the walk go on."""

    def __init__(self, message, needed):
        super().__init__(message)
        self.needed = needed


def _need(data, end, what):
    if len(data) < end:
        raise Incomplete(f"a truncated {what} header: the file ends before the image size", end)


def _int(data, pos, size, order="little", signed=False):
    return int.from_bytes(data[pos : pos + size], order, signed=signed)


def image_format(data):
    """`"JPEG"`, `"PNG"`, `"GIF"`, `"BMP"` or `"WebP"` from the first bytes, else `None`.

    Example:

    >>> from alexnet_keras.image_header import image_format
    >>> image_format(b"GIF89a..."), image_format(b"hello")
    ('GIF', None)
    """
    for name, magic in SIGNATURES.items():
        if data.startswith(magic):
            return name
    if data[:4] == b"RIFF" and len(data) > 12 and data[8:12] == b"WEBP":
        return "WebP"
    return None


def _jpeg(data):
    pos, steps = 2, 0
    while True:
        steps += 1
        if steps > MAX_HEADER_STEPS:
            raise ValueError(JPEG_ERRORS[6])
        if len(data) < pos + 2:
            raise Incomplete(JPEG_ERRORS[2], pos + 2)
        if data[pos] != 0xFF:  # stray bytes: libjpeg skips to the next 0xFF
            found = data.find(b"\xff", pos, pos + JPEG_WINDOW)
            if found < 0 and len(data) < pos + JPEG_WINDOW:
                raise Incomplete(JPEG_ERRORS[2], pos + JPEG_WINDOW)
            pos = found if found >= 0 else pos + JPEG_WINDOW
            continue
        marker = data[pos + 1]
        if marker in (0xFF, 0x00):  # a fill byte; FF00 is stuffing, skipped as stray
            pos += 1 if marker == 0xFF else 2
        elif marker in _SOF:
            if len(data) < pos + 9:
                raise Incomplete(JPEG_ERRORS[2], pos + 9)
            return _int(data, pos + 7, 2, "big"), _int(data, pos + 5, 2, "big")
        elif marker in (0xDA, 0xD9):
            raise ValueError(JPEG_ERRORS[3])
        elif marker == 0xD8:
            raise ValueError(JPEG_ERRORS[4])
        elif marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
        else:
            if len(data) < pos + 4:
                raise Incomplete(JPEG_ERRORS[2], pos + 4)
            length = _int(data, pos + 2, 2, "big")
            if length < 2:
                raise ValueError(JPEG_ERRORS[5])
            pos += 2 + length


def _gif(data):
    """`(width, height, total pixels)` over every frame: the whole file is needed."""
    _need(data, 13, "GIF")
    packed = data[10]
    pos = 13 + (3 << ((packed & 7) + 1) if packed & 0x80 else 0)
    width = height = total = frames = steps = 0
    in_blocks = False
    while pos < len(data):
        steps += 1
        if steps > MAX_HEADER_STEPS:
            raise ValueError(f"a GIF with more than {MAX_HEADER_STEPS} blocks")
        if in_blocks:  # a sub-block: its size, then its bytes; size 0 ends the chain
            in_blocks = data[pos] != 0
            pos += 1 + data[pos]
        elif data[pos] == 0x21:  # an extension: its label, then sub-blocks
            pos, in_blocks = pos + 2, True
        elif data[pos] == 0x2C and len(data) >= pos + 10:  # an image descriptor
            w, h, flags = _int(data, pos + 5, 2), _int(data, pos + 7, 2), data[pos + 9]
            frames, total = frames + 1, total + w * h
            width, height = max(width, w), max(height, h)
            pos += 11 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)  # and the LZW code size
            in_blocks = True
        else:
            break  # the trailer (0x3B), or a record giflib stops at
    if not frames:
        raise ValueError("a GIF without an image descriptor (no frame to decode)")
    if total > MAX_GIF_PIXELS:
        raise ValueError(
            f"a GIF of {frames} frames holding {total} pixels in all; the decoder keeps "
            f"every frame, so at most {MAX_GIF_PIXELS} are accepted"
        )
    return width, height


def _bmp(data):
    _need(data, 18, "BMP")
    if _int(data, 14, 4) == 12:  # the OS/2 core header: 16-bit sizes
        _need(data, 22, "BMP")
        return _int(data, 18, 2), _int(data, 20, 2)
    _need(data, 26, "BMP")
    width, height = _int(data, 18, 4, signed=True), _int(data, 22, 4, signed=True)
    if width < 0:
        raise ValueError("a BMP with a negative width")
    return width, abs(height)


def _webp(data):
    _need(data, 20, "WebP")
    chunk = data[12:16]
    if chunk == b"VP8 ":
        _need(data, 30, "WebP")
        if data[23:26] != b"\x9d\x01\x2a":
            raise ValueError("a WebP whose VP8 chunk has no key-frame start code")
        return _int(data, 26, 2) & 0x3FFF, _int(data, 28, 2) & 0x3FFF
    if chunk == b"VP8L":
        _need(data, 25, "WebP")
        if data[20] != 0x2F:
            raise ValueError("a WebP whose VP8L chunk has no signature byte 0x2F")
        bits = _int(data, 21, 4)
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        _need(data, 30, "WebP")
        return _int(data, 24, 3) + 1, _int(data, 27, 3) + 1
    raise ValueError("a WebP whose first chunk is not VP8, VP8L or VP8X")


def image_size(data):
    """`(format, width, height)` that `tf.io.decode_image` would decode, from the header.

    Args:
        data: the file's bytes, or its first bytes (a GIF needs them all: its
            frames are spread through the file).

    Raises:
        Incomplete: `data` ends inside the header (a `ValueError`: for the
            whole file, the header is truncated).
        ValueError: not a JPEG, PNG, GIF, BMP or WebP file, or a header that
            does not parse; the message does not name the file.

    Example:

    >>> import struct
    >>> from alexnet_keras.image_header import image_size
    >>> image_size(b"\\x89PNG\\r\\n\\x1a\\n" + struct.pack(">I4sII", 13, b"IHDR", 1, 100000))
    ('PNG', 1, 100000)
    """
    data = data if isinstance(data, bytes) else bytes(data)
    kind = image_format(data)
    if kind == "JPEG":
        width, height = _jpeg(data)
    elif kind == "PNG":
        _need(data, 24, "PNG")
        if data[12:16] != b"IHDR":
            raise ValueError("a PNG whose first chunk is not IHDR")
        width, height = _int(data, 16, 4, "big"), _int(data, 20, 4, "big")
    elif kind == "GIF":
        width, height = _gif(data)
    elif kind == "BMP":
        width, height = _bmp(data)
    elif kind == "WebP":
        width, height = _webp(data)
    else:
        raise ValueError("not a JPEG, PNG, GIF, BMP or WebP image")
    return kind, width, height


def resized_pixels(width, height, size=RESIZE):
    """Pixels once the shorter side is resized to `size`, rounded as `resize_shorter` does.

    Example:

    >>> from alexnet_keras.image_header import resized_pixels
    >>> resized_pixels(16, 50000)
    204800000
    """
    scale = size / min(width, height)
    return max(size, round(width * scale)) * max(size, round(height * scale))


def size_problem(width, height):
    """Why a `width` x `height` image is refused, or `None`: the one set of bounds.

    Example:

    >>> from alexnet_keras.image_header import size_problem
    >>> size_problem(1, 100000)
    'the image is 1x100000 pixels; at least 16x16 is needed'
    >>> size_problem(640, 480) is None
    True
    """
    size = f"the image is {width}x{height} pixels"
    if min(width, height) < MIN_IMAGE_SIDE:
        return f"{size}; at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} is needed"
    if max(width, height) > MAX_IMAGE_SIDE:
        return f"{size}; each side may be at most {MAX_IMAGE_SIDE}"
    if width * height > MAX_IMAGE_PIXELS:
        return f"{size} ({width * height}); at most {MAX_IMAGE_PIXELS} are accepted"
    resized = resized_pixels(width, height)
    if resized > MAX_RESIZED_PIXELS:
        return (
            f"{size}; its shorter side resized to {RESIZE} makes {resized} pixels, at most "
            f"{MAX_RESIZED_PIXELS} are accepted (an aspect ratio up to "
            f"{MAX_RESIZED_PIXELS // RESIZE // RESIZE}:1)"
        )
    return None


def check_image_size(width, height, what):
    """Raises `ValueError("{what}: the problem")` unless `size_problem` finds none."""
    problem = size_problem(width, height)
    if problem:
        raise ValueError(f"{what}: {problem}")


def read_image_size(path, *, formats=FORMATS, tail=0):
    """`(format, width, height)` of an image file, reading only the bytes its header needs.

    The file must be a regular file of at most `MAX_IMAGE_BYTES`, checked with
    `stat` before it is opened and again, with `fstat`, once it is open
    (without blocking, so a FIFO swapped in between cannot hang the read).
    The first `FIRST_READ` bytes hold most headers; a JPEG reads on to its
    frame header and a GIF is read whole (its frames are spread through it).

    Args:
        path: the file.
        formats: the formats accepted (`FORMATS` by default).
        tail: also return the file's last `tail` bytes, as a fourth item (one
            open for both).

    Raises:
        ValueError: `"{path}: the problem"`, one line, for a file that is not
            a regular file, is empty or too large, is not of `formats`, or has
            a header `image_size` refuses. The size bounds are not applied
            here (see `check_image_size`).

    Example:

    >>> from alexnet_keras.image_header import read_image_size
    >>> read_image_size("../shared/data/cifar10-mini/train/cat/0000.jpg")
    ('JPEG', 32, 32)
    """
    existing_file(path, "an image file", MAX_IMAGE_BYTES)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as e:
        raise ValueError(f"{path}: cannot be read ({e.strerror or e})") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or not 0 < info.st_size <= MAX_IMAGE_BYTES:
            raise ValueError(f"{path}: changed while being opened; expected an image file")
        found = _read_size(f, info.st_size, path, formats)
        if not tail:
            return found
        f.seek(max(0, info.st_size - tail))
        return (*found, f.read(tail))


def _read_size(f, size, path, formats):
    """`image_size` of an open file of `size` bytes, reading on as far as its header needs."""
    data = f.read(FIRST_READ)
    while True:
        if image_format(data) == "GIF":
            data += f.read(size - len(data))
        if image_format(data) not in formats:
            names = ", ".join(formats[:-1]) + " or " + formats[-1]
            raise ValueError(f"{path}: not a {names} file (it starts with {data[:4]!r})")
        try:
            found = image_size(data)
            riff = int.from_bytes(data[4:8], "little") + 8  # a WebP's length: it has no end marker
            if found[0] == "WebP" and riff > size:
                raise ValueError(f"truncated WebP ({size} of {riff} bytes)")
            return found
        except Incomplete as e:
            want = min(max(e.needed, 2 * len(data)), size)
            more = f.read(want - len(data)) if want > len(data) else b""
            if not more:  # the whole file (or all it still holds) is read
                raise ValueError(f"{path}: {e}") from None
            data += more
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None

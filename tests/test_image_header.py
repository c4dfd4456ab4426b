"""Image sizes from headers: one table of fixtures, read by the Python reader and its graph twin.

`image_header.image_size` (folders, `predict`, `load_image`) and
`data.image_graph.header_size` (serving and dataset graphs, TensorFlow ops only) must
give the same size and the same refusal for the same bytes; each row also
says what TensorFlow itself decodes, where the file is real.
"""

import struct

import numpy as np
import pytest
import tensorflow as tf

from alexnet_keras import image_header, limits
from alexnet_keras.data import image_graph as graph
from alexnet_keras.image_header import image_size, read_image_size, size_problem
from tests.data import images as im

_JPEG_TRUNCATED = "a truncated JPEG header: the file ends before the image size"


def _segment(marker, body):
    return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body


def _gif_with_blocks(count):
    """A comment extension of `count` one-byte sub-blocks before a real frame."""
    comment = b"\x21\xfe" + b"\x01x" * count + b"\0"
    frames = [comment + im.gif_frame(20, 20)]
    return im.gif(20, 20, frames)


SOF = im.jpeg_header(64, 48)[2:]  # the frame header and EOI, after SOI
# name: (bytes, (format, width, height) or the refusal's message)
CASES = {
    "jpeg": (im.jpeg(33, 24), ("JPEG", 33, 24)),
    "jpeg after 200 KB of EXIF": (
        im.jpeg_header(4000, 3000, app_bytes=200_000),
        ("JPEG", 4000, 3000),
    ),  # fmt: skip
    "jpeg progressive SOF2": (im.jpeg_header(640, 480, sof=0xC2), ("JPEG", 640, 480)),
    "jpeg fill bytes, stuffing, RST": (
        b"\xff\xd8\xff\xff\xff\x00\xff\xd3" + SOF,
        ("JPEG", 64, 48),
    ),  # fmt: skip
    "jpeg stray bytes": (
        b"\xff\xd8" + _segment(0xFE, b"c") + b"\x00" * 9000 + SOF,
        ("JPEG", 64, 48),
    ),  # fmt: skip
    "jpeg DHT is not a SOF": (b"\xff\xd8" + _segment(0xC4, b"\0" * 20) + SOF, ("JPEG", 64, 48)),
    "jpeg truncated in a segment": (
        im.jpeg_header(100, 100, app_bytes=1000)[:500],
        _JPEG_TRUNCATED,
    ),  # fmt: skip
    "jpeg truncated in stray bytes": (b"\xff\xd8\xff\xfe\x00\x02" + b"\x01" * 100, _JPEG_TRUNCATED),
    "jpeg scan before frame": (
        b"\xff\xd8" + _segment(0xDA, b"\0" * 8) + SOF,
        image_header.JPEG_ERRORS[3],
    ),  # fmt: skip
    "jpeg second SOI": (b"\xff\xd8\xff\xd8" + SOF, image_header.JPEG_ERRORS[4]),
    "jpeg length 1": (b"\xff\xd8\xff\xe0\x00\x01" + SOF, image_header.JPEG_ERRORS[5]),
    "jpeg 1x65535": (im.jpeg_header(1, 65535), ("JPEG", 1, 65535)),
    "png": (im.png(20, 30), ("PNG", 20, 30)),
    "png 1x100000": (im.png(1, 100_000, channels=1), ("PNG", 1, 100_000)),
    "png 16x50000": (im.png(16, 50_000, channels=1), ("PNG", 16, 50_000)),
    "png 4G claim": (im.png(20, 20, ihdr=(0xFFFFFFFF, 20)), ("PNG", 0xFFFFFFFF, 20)),
    "png truncated": (
        im.png(20, 20)[:20],
        "a truncated PNG header: the file ends before the image size",
    ),
    "png without IHDR first": (
        im.png(20, 20)[:12] + b"IDAT" + im.png(20, 20)[16:],
        "a PNG whose first chunk is not IHDR",
    ),  # fmt: skip
    "gif": (im.gif(20, 20), ("GIF", 20, 20)),
    "gif frame larger than screen": (im.gif(16, 16, [im.gif_frame(40, 30)]), ("GIF", 40, 30)),
    "gif frame smaller than screen": (im.gif(40, 30, [im.gif_frame(20, 20)]), ("GIF", 20, 20)),
    "gif largest over frames": (
        im.gif(20, 20, [im.gif_frame(20, 20), im.gif_frame(50, 10)]),
        ("GIF", 50, 20),
    ),  # fmt: skip
    "gif huge later frame": (
        im.gif(16, 16, [im.gif_frame(16, 16), im.gif_frame(16383, 16383, data=False)]),
        "a GIF of 2 frames holding 268402945 pixels in all; the decoder keeps "
        "every frame, so at most 100000000 are accepted",
    ),  # fmt: skip
    "gif many large frames": (
        im.gif(16, 16, [im.gif_frame(8000, 6000, data=False)] * 3),
        "a GIF of 3 frames holding 144000000 pixels in all; the decoder "
        "keeps every frame, so at most 100000000 are accepted",
    ),  # fmt: skip
    "gif frame with a local colour table": (
        im.gif(
            20,
            20,
            [
                b"\x2c"
                + struct.pack("<HHHHB", 0, 0, 30, 20, 0x81)
                + b"\0" * 12
                + b"\x08\x02\x00\x01\x00"
            ],
        ),
        ("GIF", 30, 20),
    ),  # fmt: skip
    "gif without trailer": (im.gif(20, 20)[:-1], ("GIF", 20, 20)),
    "gif stops at an unknown record": (
        im.gif(20, 20)[:-1] + b"\x99" + im.gif_frame(900, 900),
        ("GIF", 20, 20),
    ),  # fmt: skip
    "gif without a frame": (
        im.gif(20, 20, [], comment=b"hi"),
        "a GIF without an image descriptor (no frame to decode)",
    ),  # fmt: skip
    "gif truncated screen": (
        b"GIF89a\x10\x00",
        "a truncated GIF header: the file ends before the image size",
    ),  # fmt: skip
    "gif of 1000 sub-blocks": (_gif_with_blocks(1000), ("GIF", 20, 20)),
    "bmp": (im.bmp(20, 30), ("BMP", 20, 30)),
    "bmp top-down": (im.bmp(20, -30), ("BMP", 20, 30)),
    "bmp core header": (im.bmp(20, 30, header_size=12), ("BMP", 20, 30)),
    "bmp huge": (im.bmp_header(100_000, 100_000), ("BMP", 100_000, 100_000)),
    "bmp most negative height": (im.bmp_header(20, -(2**31)), ("BMP", 20, 2**31)),
    "bmp negative width": (im.bmp_header(-20, 20), "a BMP with a negative width"),
    "bmp truncated": (
        im.bmp(20, 20)[:20],
        "a truncated BMP header: the file ends before the image size",
    ),  # fmt: skip
    "webp lossless": (im.webp_lossless(300, 200), ("WebP", 300, 200)),
    "webp 16383x16383": (im.webp_lossless(16383, 16383), ("WebP", 16383, 16383)),
    "webp lossy": (im.webp_lossy_header(640, 480), ("WebP", 640, 480)),
    "webp extended": (im.webp_extended_header(20000, 20000), ("WebP", 20000, 20000)),
    "webp lossy without start code": (
        im.webp_lossy_header(640, 480)[:23] + b"\0\0\0" + im.webp_lossy_header(640, 480)[26:],
        "a WebP whose VP8 chunk has no key-frame start code",
    ),  # fmt: skip
    "webp lossless without signature": (
        im.webp_lossless(20, 20)[:20] + b"\0" + im.webp_lossless(20, 20)[21:],
        "a WebP whose VP8L chunk has no signature byte 0x2F",
    ),  # fmt: skip
    "webp unknown chunk": (
        im.webp_lossless(20, 20).replace(b"VP8L", b"ALPH"),
        "a WebP whose first chunk is not VP8, VP8L or VP8X",
    ),  # fmt: skip
    "webp truncated": (
        im.webp_lossless(20, 20)[:22],
        "a truncated WebP header: the file ends before the image size",
    ),  # fmt: skip
    "riff of 12 bytes": (b"RIFF\x04\0\0\0WEBP", "not a JPEG, PNG, GIF, BMP or WebP image"),
    "text": (b"this is not a picture\n", "not a JPEG, PNG, GIF, BMP or WebP image"),
    "one byte": (b"\xff", "not a JPEG, PNG, GIF, BMP or WebP image"),
}


def _python(data):
    try:
        return image_size(data)
    except ValueError as e:
        return str(e)


@pytest.fixture(scope="module")
def graph_reader():
    reader = tf.function(graph.header_size, input_signature=[tf.TensorSpec([], tf.string)])

    def read(data):
        width, height, problem = (t.numpy() for t in reader(tf.constant(data)))
        return problem.decode() or (int(width), int(height))

    return read


@pytest.mark.parametrize("name", CASES)
def test_python_and_graph_readers_agree(name, graph_reader):
    data, want = CASES[name]
    got = _python(data)
    assert got == want
    assert graph_reader(data) == (want[1:] if isinstance(want, tuple) else want)


REAL_FILES = ["jpeg", "png", "png 1x100000", "png 16x50000", "gif", "gif frame larger than screen",
              "gif frame smaller than screen", "gif largest over frames", "gif without trailer",
              "gif stops at an unknown record", "gif of 1000 sub-blocks", "bmp", "bmp top-down",
              "webp lossless"]  # fmt: skip


@pytest.mark.parametrize("name", REAL_FILES)
def test_real_files_decode_to_the_header_size(name):
    """What TensorFlow decodes is what the header reader says (GIF: the largest frame)."""
    data, (_, width, height) = CASES[name]
    image = tf.io.decode_image(data, channels=3, expand_animations=False)
    assert image.shape[:2] == (height, width)


def test_too_many_steps_are_refused_by_both(graph_reader, monkeypatch):
    """The walk bound: a JPEG of empty segments, a GIF of one-byte sub-blocks."""
    monkeypatch.setattr(image_header, "MAX_HEADER_STEPS", 50)
    monkeypatch.setattr(graph, "MAX_HEADER_STEPS", 50)
    jpeg = b"\xff\xd8" + b"\xff\xfe\x00\x02" * 60 + SOF
    # A fresh trace reads the patched bound.
    reader = tf.function(graph.header_size, input_signature=[tf.TensorSpec([], tf.string)])
    assert _python(jpeg) == image_header.JPEG_ERRORS[6]
    assert reader(tf.constant(jpeg))[2].numpy().decode() == image_header.JPEG_ERRORS[6]
    assert graph_reader(jpeg) == (64, 48)  # traced with the real bound
    gif = _gif_with_blocks(60)
    assert _python(gif) == "a GIF with more than 50 blocks"
    assert reader(tf.constant(gif))[2].numpy().decode() == "a GIF with more than 50 blocks"
    assert _python(_gif_with_blocks(40)) == ("GIF", 20, 20)


@pytest.mark.parametrize(
    "width, height, fragment",
    [
        (1, 100_000, "at least 16x16 is needed"),
        (16, 50_000, "each side may be at most 16384"),
        (16_384, 16_384, "(268435456); at most 50000000 are accepted"),
        (
            300,
            5000,
            "makes 1092352 pixels, at most 1048576 are accepted (an aspect ratio up to 16:1)",
        ),
        (16, 256, None),
        (8160, 6120, None),
        (256, 4096, None),
        (240, 3840, None),
    ],
)
def test_size_bounds_python_and_graph(width, height, fragment):
    got = size_problem(width, height)
    assert (got is None) if fragment is None else (fragment in got)
    assert graph.size_problem(width, height).numpy().decode() == (got or "")


def test_resized_pixels_is_resize_shorter(rng):
    from alexnet_keras.preprocessing import resize_shorter

    for height, width in rng.integers(16, 700, (20, 2)):
        shape = resize_shorter(tf.zeros((height, width, 1)), 256).shape
        assert image_header.resized_pixels(width, height) == shape[0] * shape[1]


def test_the_bounds_are_the_limits():
    assert graph.MIN_IMAGE_SIDE == limits.MIN_IMAGE_SIDE == 16
    assert graph.MAX_IMAGE_PIXELS == limits.MAX_IMAGE_PIXELS
    assert limits.MAX_RESIZED_PIXELS == 256 * 4096 and graph.RESIZE == image_header.RESIZE == 256


def test_read_image_size_reads_on_only_as_far_as_needed(tmp_path, monkeypatch):
    reads = []
    real_read = image_header.os.fdopen

    class Counting:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def read(self, n):
            reads.append(n)
            return self.f.read(n)

    monkeypatch.setattr(image_header.os, "fdopen", lambda fd, mode: Counting(real_read(fd, mode)))
    path = tmp_path / "exif.jpg"
    path.write_bytes(im.jpeg_header(4000, 3000, app_bytes=100_000) + b"\0" * 5_000_000)
    assert read_image_size(path) == ("JPEG", 4000, 3000)
    assert sum(reads) < 300_000, reads
    reads.clear()
    path = tmp_path / "a.png"
    path.write_bytes(im.png(30, 20) + b"\0" * 100_000)
    assert read_image_size(path) == ("PNG", 30, 20) and reads == [image_header.FIRST_READ]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_bytes(b""), "the file is empty"),
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: p.symlink_to("/dev/zero"), "is a device"),
        (lambda p: p.write_bytes(im.png(20, 20)[:20]), "a truncated PNG header"),
        (lambda p: p.write_bytes(b"GIF89a" + b"\0" * 7 + b"\x21\xfe\x05abc"),
         "a GIF without an image descriptor"),
    ],
)  # fmt: skip
def test_read_image_size_refuses_in_one_line_naming_the_file(tmp_path, make, message):
    path = tmp_path / "x.jpg"
    make(path)
    with pytest.raises(ValueError) as info:
        read_image_size(path)
    assert str(info.value).startswith(f"{path}: ") and message in str(info.value)
    assert "\n" not in str(info.value)


def test_a_fifo_is_refused_without_opening_it(tmp_path):
    path = tmp_path / "x.jpg"
    import os

    os.mkfifo(path)
    with pytest.raises(ValueError, match="FIFO"):
        read_image_size(path)


def test_check_image_size_names_what():
    with pytest.raises(ValueError, match=r"^a\.png: the image is 1x100000 pixels"):
        image_header.check_image_size(1, 100_000, "a.png")
    image_header.check_image_size(np.int64(640), 480, "b.png")

"""Hostile requests to the serving graph: refused as INVALID_ARGUMENT, by name, before decoding.

The 50-megapixel guard used to be bypassed: WebP had no check (a 34-byte
16383x16383 image cost +4 GB), a GIF's screen was checked but its frames
decoded (+2.2 GB), and a 16x50000 strip cost +2.6 GB in the resize. One
child builds a small `ServingModule` and sends every case (`tests.sandbox`:
a timeout and an RSS cap, so a bound that gives way fails the test instead
of the machine).
"""

import json
import pathlib

import pytest

from tests.data import images as im
from tests.sandbox import run_isolated

ROOT = pathlib.Path(__file__).resolve().parents[2]
# The child: AlexNet with TensorFlow takes about 1.2 GB; any one bomb adds 2 GB or more.
RSS_MB = 2000

# name: (request bytes, what the refusal says; None: served)
CASES = {
    "webp 16383x16383": (im.webp_lossless(16383, 16383),
                         "the image is 16383x16383 pixels (268402689); at most 50000000"),
    "webp canvas 20000x20000": (im.webp_extended_header(20000, 20000),
                                "the image is 20000x20000 pixels; each side may be at most 16384"),
    "webp lossy 16383x16383": (im.webp_lossy_header(16383, 16383),
                               "the image is 16383x16383 pixels (268402689)"),
    "gif small screen, huge frame": (im.gif(16, 16, [im.gif_frame(16383, 16383, data=False)]),
                                     "a GIF of 1 frames holding 268402689 pixels in all"),
    "gif frames over the screen": (
        im.gif(16, 16, [im.gif_frame(16, 16), im.gif_frame(12000, 5000, data=False)]),
        "the image is 12000x5000 pixels (60000000); at most 50000000"),
    "gif many frames": (im.gif(16, 16, [im.gif_frame(8000, 6000, data=False)] * 3),
                        "a GIF of 3 frames holding 144000000 pixels in all"),
    "png 16x50000": (im.png(16, 50_000, channels=1),
                     "the image is 16x50000 pixels; each side may be at most 16384"),
    "png 300x5000": (im.png(300, 5000, channels=1),
                     "its shorter side resized to 256 makes 1092352 pixels, at most 1048576"),
    "png 1x100000": (im.png(1, 100_000, channels=1),
                     "the image is 1x100000 pixels; at least 16x16 is needed"),
    "bmp 100000x100000": (im.bmp_header(100_000, -100_000),
                          "the image is 100000x100000 pixels; each side may be at most 16384"),
    "jpeg 65535x16": (im.jpeg_header(65535, 16) , "the image is 65535x16 pixels; each side"),
    "jpeg without a frame header": (b"\xff\xd8\xff\xda\x00\x02\xff\xd9",
                                    "a JPEG without a frame header (SOF)"),
    "64 MB and a byte": (None, "67108865 bytes; at most 67108864 are accepted"),  # made there
    "webp 300x200": (im.webp_lossless(300, 200), None),
    "gif 40x30": (im.gif(40, 30), None),
    "gif 40x30 with a 60x20 frame": (im.gif(40, 30, [im.gif_frame(40, 30), im.gif_frame(60, 20)]),
                                     None),
    "bmp 40x30": (im.bmp(40, 30), None),
    "png 16x256": (im.png(16, 256), None),
}  # fmt: skip

CHILD = """
import json, sys
import tensorflow as tf
import alexnet_keras
from alexnet_keras.serving.graph import ServingModule
from tests.data import images as im

module = ServingModule(alexnet_keras.AlexNet(classes=3), preprocessing="bvlc",
                       labels=["a", "b", "c"], top_k=2)
good = im.png(40, 30)

def run(name, call):
    try:
        call()
        print(json.dumps([name, None]), flush=True)
    except tf.errors.InvalidArgumentError as e:
        lines = [l for l in e.message.splitlines() if "assertion failed: [" in l]
        text = lines[0].split("assertion failed: [", 1)[1].rsplit("]", 1)[0] if lines else e.message
        print(json.dumps([name, text]), flush=True)

from tests.serving.test_hostile_images import CASES
for name, (data, _) in CASES.items():
    data = b"\\xff" * ((64 << 20) + 1) if data is None else data
    run(name, lambda: module.serve_bytes(tf.constant([good, data])))
run("predict_images 16x5000", lambda: module.predict_images(tf.zeros([1, 16, 5000, 3])))
run("predict_images 8x8", lambda: module.predict_images(tf.zeros([1, 8, 8, 3])))
peak = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")][0]
print(json.dumps(["VmHWM kB", peak]), flush=True)
"""


@pytest.fixture(scope="module")
def served():
    outcome = run_isolated(CHILD, timeout=300, rss_mb=RSS_MB, cwd=ROOT)
    assert not outcome.timed_out and not outcome.over_memory, outcome.describe()
    assert outcome.returncode == 0 and "Traceback" not in outcome.stderr, outcome.describe()
    return dict(json.loads(line) for line in outcome.stdout.splitlines() if line.startswith("["))


@pytest.mark.parametrize("name", CASES)
def test_a_hostile_request_is_refused_naming_the_image(served, name):
    want = CASES[name][1]
    got = served[name]
    if want is None:
        assert got is None
    else:
        assert got.startswith("image_bytes[1]: ") and want in got, got


def test_predict_images_bounds_the_resize_too(served):
    assert served["predict_images 16x5000"] == (
        "images: the image is 5000x16 pixels; its shorter side resized to 256 makes 20480000 "
        "pixels, at most 1048576 are accepted (an aspect ratio up to 16:1)"
    )
    assert (
        served["predict_images 8x8"] == "images: the image is 8x8 pixels; at least 16x16 is needed"
    )


def test_the_child_s_own_peak_is_within_the_cap(served):
    """Its own high-water mark (the sandbox's figure may include this process's, see sandbox)."""
    assert served["VmHWM kB"] < RSS_MB * 1024

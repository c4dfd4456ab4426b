"""Hostile image folders and files: `predict`, `evaluate`, folder datasets, `--verify-images`.

Every case runs in a child with a timeout and an RSS cap (`tests.sandbox`):
a symlink to `/dev/zero` named `x.jpg` used to be read until memory ran out,
a FIFO hung, two `.` symlinks made the walk explode, and a 1x100000 PNG gave
a `ResourceExhaustedError` traceback. `predict` fails on a bad file, by
name; a dataset skips it and counts it; a symlink leading out of the folder
or into a loop is not followed, and said so once.
"""

import os
import pathlib
import time

import pytest

from alexnet_keras.data.image_folder import check_image, walk_images
from tests.data import images as im
from tests.sandbox import assert_loaded, assert_refused, run_isolated

TF_LOG_LINES = ("WARNING: All log messages before absl", "I0000 ", "W0000 ", "E0000 ")


ROOT = pathlib.Path(__file__).resolve().parents[1]
# A child that runs the model: TensorFlow, AlexNet and its 228 MB of weights
# peak at about 1.5 GB; a bomb adds 2 GB or more.
MODEL_RSS_MB = 2500


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A 2-class weights file, written by a child: this process stays small, so the
    children it starts do not inherit a large peak RSS (see `tests.sandbox`)."""
    path = tmp_path_factory.mktemp("hostile") / "chm.weights.h5"
    code = f"from tests import exports\nexports.make_weights({str(path)!r}, 'chm2012', classes=2)"
    outcome = run_isolated(code, timeout=180, rss_mb=4000, cwd=ROOT)
    assert outcome.returncode == 0 and path.exists(), outcome.describe()
    return path


def _good(folder, name="good.png", size=(40, 30)):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(im.png(*size))
    return folder / name


def _sparse(path, size):
    path.write_bytes(b"\xff\xd8\xff")
    os.truncate(path, size)


def _messages(stderr):
    """Python's lines on stderr, without TensorFlow's C++ log lines."""
    return [line for line in stderr.strip().splitlines()
            if not line.startswith(TF_LOG_LINES) and line.strip()]  # fmt: skip


def _loops(folder, up=True):
    """Two `.` symlinks (without loop detection the walk visits 2**depth folders), and `..`."""
    os.symlink(".", folder / "a")
    os.symlink(".", folder / "b")
    if up:
        os.symlink("..", folder / "up")


# name: (file name, how to make it in `folder`, what the refusal says)
HOSTILE_FILES = {
    "fifo": ("x.jpg", lambda p: os.mkfifo(p), "is a FIFO (named pipe)"),
    "device": ("x.jpg", lambda p: p.symlink_to("/dev/zero"), "is a device"),
    "png 1x100000": ("strip.png", lambda p: p.write_bytes(im.png(1, 100_000, channels=1)),
                     "the image is 1x100000 pixels; at least 16x16 is needed"),  # fmt: skip
    "png 16x50000": ("strip.png", lambda p: p.write_bytes(im.png(16, 50_000, channels=1)),
                     "the image is 16x50000 pixels; each side may be at most 16384"),  # fmt: skip
    "png 300x5000": ("strip.png", lambda p: p.write_bytes(im.png(300, 5000, channels=1)),
                     "makes 1092352 pixels, at most 1048576 are accepted"),  # fmt: skip
    "gif frame": ("a.gif", lambda p: p.write_bytes(
        im.gif(16, 16, [im.gif_frame(16383, 16383, data=False)])), "a GIF of 1 frames holding"),
    "gif 2 frames": ("a.gif", lambda p: p.write_bytes(
        im.gif(16, 16, [im.gif_frame(16, 16), im.gif_frame(12000, 5000, data=False)])),
        "the image is 12000x5000 pixels (60000000); at most 50000000"),
    "bmp": ("a.bmp", lambda p: p.write_bytes(im.bmp_header(100_000, -100_000)),
            "the image is 100000x100000 pixels"),  # fmt: skip
    "webp named jpg": ("w.jpg", lambda p: p.write_bytes(im.webp_lossless(16383, 16383)),
                       "the image is 16383x16383 pixels"),  # fmt: skip
    "too large": ("big.jpg", lambda p: _sparse(p, 65 << 20),
                  "at most 67,108,864 are read as an image file"),  # fmt: skip
}  # fmt: skip


@pytest.mark.parametrize("case", HOSTILE_FILES)
def test_check_image_refuses_without_reading_much(tmp_path, case):
    name, make, message = HOSTILE_FILES[case]
    make(tmp_path / name)
    start = time.monotonic()
    assert message in check_image(tmp_path / name)
    assert time.monotonic() - start < 2


@pytest.mark.parametrize("case", ["fifo", "device", "png 1x100000", "gif frame", "bmp"])
def test_predict_refuses_a_hostile_file_among_good_ones(tmp_path, weights, case):
    name, make, message = HOSTILE_FILES[case]
    folder = tmp_path / "images"
    good = _good(folder)
    make(folder / name if case != "device" else tmp_path / "x.jpg")
    bad = folder / name if case != "device" else tmp_path / "x.jpg"
    outcome = run_isolated(cli=["predict", "--weights", weights, good, bad], timeout=60)
    assert_refused(outcome, f"Error: {bad}: ", message)


def test_predict_on_a_folder_refuses_a_fifo_inside_it_by_name(tmp_path, weights):
    folder = tmp_path / "images"
    _good(folder)
    os.mkfifo(folder / "sub.jpg")
    outcome = run_isolated(cli=["predict", "--weights", weights, folder], timeout=60)
    assert_refused(outcome, f"{folder / 'sub.jpg'}: is a FIFO")


def test_predict_on_a_folder_leaves_out_loops_and_links_out_of_it(tmp_path, weights):
    """`.` loops, `/dev/zero` and a photo outside: not followed, said once; the good image runs."""
    outside = _good(tmp_path / "elsewhere", "private.png")
    folder = tmp_path / "images"
    good = _good(folder)
    _loops(folder)
    (folder / "x.jpg").symlink_to("/dev/zero")
    (folder / "secret.png").symlink_to(outside)
    (folder / "inside.png").symlink_to(good)  # a symlink within the folder is followed
    outcome = run_isolated(cli=["predict", "--weights", weights, "--top", 1, folder], timeout=120,
                           rss_mb=MODEL_RSS_MB)  # fmt: skip
    assert_loaded(outcome)
    lines = outcome.stdout.splitlines()
    assert [line for line in lines if not line.startswith(" ")] == [
        str(good),
        str(folder / "inside.png"),
    ]
    warnings = _messages(outcome.stderr)
    # a and b (seen), up, secret.png and x.jpg (out of the folder)
    assert len(warnings) == 1 and "left out 5 symlinks or folders" in warnings[0], outcome.stderr


def test_the_walk_ends_on_loops_and_is_bounded_in_depth(tmp_path):
    folder = tmp_path / "class"
    _good(folder)
    _loops(folder)
    deep = folder
    for i in range(40):
        deep = deep / f"d{i}"
    deep.mkdir(parents=True)
    (deep / "deep.png").write_bytes(im.png(20, 20))
    code = (
        "import os, time\n"
        "from alexnet_keras.data import image_folder\n"
        "start = time.monotonic()\n"
        f"files, left_out = image_folder.walk_images({str(folder)!r})\n"
        "print(time.monotonic() - start, [os.path.basename(f) for f in files], left_out)\n"
        "image_folder.MAX_WALK_DEPTH = 64\n"
        f"print(len(image_folder.walk_images({str(folder)!r})[0]))\n"
    )
    outcome = run_isolated(code, timeout=30)
    assert_loaded(outcome)
    first, second = outcome.stdout.splitlines()
    seconds, rest = first.split(" ", 1)
    # a, b (. again), up (out of the folder), d32 (too deep)
    assert float(seconds) < 1 and rest == "['good.png'] 4" and second == "2"


def test_a_symlinked_folder_out_of_the_dataset_is_not_followed(tmp_path):
    outside = tmp_path / "outside"
    _good(outside, "x.png")
    root = tmp_path / "data"
    _good(root / "a")
    (root / "a" / "more").symlink_to(outside)
    files, left_out = walk_images(root / "a", root)
    assert [os.path.basename(f) for f in files] == ["good.png"] and left_out == 1
    # Within the dataset, a symlinked folder is followed.
    (root / "b").mkdir()
    (root / "b" / "same").symlink_to(root / "a")
    files, left_out = walk_images(root / "b", root)
    assert [os.path.basename(f) for f in files] == ["good.png"] and left_out == 1


def _hostile_dataset(root):
    for cls in ("a", "b"):
        for i in range(3):
            _good(root / "train" / cls, f"{i}.png", (40 + i, 30))
    for case in ("fifo", "png 1x100000", "png 16x50000", "gif frame", "bmp", "webp named jpg"):
        name, make, _ = HOSTILE_FILES[case]
        make(root / "train" / "a" / f"{case.replace(' ', '_')}-{name}")
    (root / "train" / "b" / "zero.jpg").symlink_to("/dev/zero")
    _loops(root / "train" / "b", up=False)  # `..` would be train/: inside, and followed
    return root


def test_a_folder_dataset_skips_counts_and_logs_hostile_files(tmp_path):
    root = _hostile_dataset(tmp_path / "ds")
    code = (
        "import logging, sys\n"
        "from alexnet_keras.data import open_dataset, dataset_summary\n"
        "logging.basicConfig(stream=sys.stderr, format='%(message)s')\n"
        f"splits, info = open_dataset('folder:{root}', holdout=0.5)\n"
        "print(dataset_summary(info))\n"
        "print(sum(1 for _ in splits['train']) + sum(1 for _ in splits['eval']))\n"
        "try:\n"
        f"    open_dataset('folder:{root}', strict=True)\n"
        "except ValueError as e:\n"
        "    print(e)\n"
    )
    outcome = run_isolated(code, timeout=60)
    assert_loaded(outcome)
    summary, decoded, strict = outcome.stdout.strip().splitlines()
    # 6 hostile files, the /dev/zero link and the two loop links.
    assert "skipped 9 (train 9, eval 0)" in summary and decoded == "6", outcome.describe()
    warnings = _messages(outcome.stderr)
    assert len(warnings) == 1 and "skipped 9 files" in warnings[0], outcome.stderr
    # strict=True stops at the first bad file, by name.
    assert strict.startswith(f"{root}/train/a/bmp-a.bmp: not a valid image: the image is 100000x")


def test_evaluate_on_a_hostile_folder_skips_and_scores_the_good_images(tmp_path, weights):
    root = _hostile_dataset(tmp_path / "ds")
    out = tmp_path / "confusion.csv"
    outcome = run_isolated(cli=["evaluate", "--weights", weights, "--dataset", f"folder:{root}",
                                "--split", "train", "--output", out, "--json"],
                           timeout=120, rss_mb=MODEL_RSS_MB)  # fmt: skip
    assert_loaded(outcome)
    assert '"count": 5' in outcome.stdout  # the hold-out takes 1 of the 6 good images
    warnings = _messages(outcome.stderr)
    assert len(warnings) == 1 and "skipped 9 files" in warnings[0], outcome.stderr


@pytest.mark.slow
def test_verify_images_refuses_a_fifo_and_a_strip_in_its_folder(tmp_path):
    from alexnet_keras.cuda_convnet import cfg_net
    from tests import convnet_files as cf
    from tests.conftest import SHARED, require

    layers_cfg = require(SHARED / "data/chm-release/example-layers/layers-18pct.cfg")
    params_cfg = layers_cfg.with_name("layer-params-18pct.cfg")
    net = cfg_net.read_net(layers_cfg, params_cfg)
    ckpt = cf.write_checkpoint(tmp_path / "18pct.zip", cf.layers_from_net(net, seed=2),
                               container="zip")  # fmt: skip
    args = ["convert", ckpt, "--format", "cuda-convnet", "--layers", layers_cfg, "--params",
            params_cfg, "-o", tmp_path / "out.weights.h5", "--verify-images"]  # fmt: skip
    for name, make, message in [HOSTILE_FILES["fifo"], HOSTILE_FILES["png 1x100000"]]:
        folder = tmp_path / name.replace(".", "_")
        _good(folder, "a.png", (32, 32))
        (folder / "zero.jpg").symlink_to("/dev/zero")  # out of the folder: left out
        make(folder / name)
        outcome = run_isolated(cli=[*args, folder], timeout=90)
        assert outcome.returncode == 2 and not outcome.over_memory, outcome.describe()
        assert "Traceback" not in outcome.stderr, outcome.describe()
        # TensorFlow's log lines and the walk's note aside, one line: the error.
        lines = [line for line in _messages(outcome.stderr) if "left out 1 symlinks" not in line]
        assert len(lines) == 1 and lines[0].startswith(f"Error: {folder / name}: "), lines
        assert message in lines[0]


def test_load_image_checks_the_header_before_decoding(tmp_path):
    """`load_image`, the decoder of predict and --verify-images, refuses by itself too."""
    names = []
    for case in ("png 1x100000", "png 300x5000", "gif frame", "bmp", "device", "too large"):
        name, make, message = HOSTILE_FILES[case]
        path = tmp_path / case.replace(" ", "_") / name
        path.parent.mkdir()
        make(path)
        names.append((str(path), message))
    code = (
        "from alexnet_keras.preprocessing import load_image\n"
        f"for path, _ in {names!r}:\n"
        "    try:\n"
        "        load_image(path)\n"
        "        print('loaded', path)\n"
        "    except ValueError as e:\n"
        "        print(e)\n"
    )
    outcome = run_isolated(code, timeout=60)
    assert_loaded(outcome)
    lines = outcome.stdout.splitlines()
    assert len(lines) == len(names)
    for line, (path, message) in zip(lines, names, strict=True):
        assert line.startswith(f"{path}: ") and message in line, line

"""Hostile images inside datasets: checked before decoding, skipped deterministically.

A TFDS split reaches the pipelines as encoded records (`SkipDecoding`), so a
`Split` of encoded bytes is what a hostile TFDS record looks like to them.
One child (`tests.sandbox`: a timeout and an RSS cap; any one bomb below costs
2 GB or more when decoded unchecked) decodes every serving case with
`decode_image`, runs the pipelines over a split that mixes them with good
records, resumes an epoch mid-way, and swaps a folder file after the listing.
"""

import json
import pathlib
import re

import pytest

from tests.sandbox import run_isolated

ROOT = pathlib.Path(__file__).resolve().parents[2]
RSS_MB = 1500
GOOD = 6  # good records, each before a hostile one

CHILD = """
import json, pathlib, sys, tempfile
import numpy as np
import tensorflow as tf
from alexnet_keras.data import eval_pipeline, open_dataset, train_pipeline
from alexnet_keras.data.split import Split, decode_image
from tests.data import images as im
from tests.serving.test_hostile_images import CASES

GOOD = 6
decode = tf.function(decode_image)  # as in tf.data: a graph
decode_path = tf.function(lambda path: decode_image(path, is_path=True))

def out(*row):
    print(json.dumps(row), flush=True)

def refusal(call):
    try:
        return list(call().shape)
    except tf.errors.InvalidArgumentError as e:
        lines = [l for l in e.message.splitlines() if "assertion failed: [" in l]
        return lines[0].split("assertion failed: [", 1)[1].rsplit("]", 1)[0] if lines else e.message

def payload(data):
    return b"\\xff" * ((64 << 20) + 1) if data is None else data

for name, (data, _) in CASES.items():
    out("decode", name, refusal(lambda: decode(tf.constant(payload(data)))))
out("decode", "not an image", refusal(lambda: decode(tf.constant(b"hello, world"))))

# A TFDS-like split: encoded records, good ones between the hostile ones.
hostile = [payload(d) for d, want in CASES.values() if want is not None]
raws, labels = [], []
for i, data in enumerate(hostile):
    if i < GOOD:
        raws.append(im.png(40 + len(raws), 30)); labels.append(len(raws) % 3)
    raws.append(data); labels.append(9)
raws, labels = np.array(raws, dtype=object), np.array(labels, np.int32)
out("records", len(raws), int((labels != 9).sum()))
refs = lambda: tf.data.Dataset.from_tensor_slices((tf.constant(raws, tf.string), labels))
ekw = dict(input_size=16, batch_size=2, preprocessing=None, resize=20)
kw = dict(ekw, pca_std=0)
for kind, load in (("in memory", lambda: (raws, labels)), ("streamed", None)):
    split = Split(refs(), len(raws), False, load)
    full = [x.numpy() for x, _ in train_pipeline(split, **kw)]
    ys = [y.numpy().tolist() for _, y in train_pipeline(split, **kw)]
    same = []
    for k in (1, 2):  # resumed after batch k: its remaining batches, bit for bit
        resumed = [x.numpy() for x, _ in train_pipeline(split, skip_batches=k, **kw)]
        same.append(len(resumed) == len(full) - k
                    and all((a == b).all() for a, b in zip(full[k:], resumed)))
    ev = [y.numpy().tolist() for _, y in eval_pipeline(split, **ekw)]
    out("pipeline", kind, len(full), sorted(sum(ys, [])), same, sorted(sum(ev, [])))

# A folder file swapped for a bomb after the listing checked it.
root = pathlib.Path(tempfile.mkdtemp())
for part, count in (("train", 3), ("test", 1)):
    for c in "ab":
        (root / part / c).mkdir(parents=True)
        for i in range(count):
            (root / part / c / f"{i}.png").write_bytes(im.png(40, 30))
splits, info = open_dataset(f"folder:{root}")
swapped = root / "train" / "a" / "0.png"
swapped.write_bytes(im.png(16, 50_000, channels=1))
out("swapped", refusal(lambda: decode_path(tf.constant(str(swapped)))))
n = sum(int(tf.size(y)) for _, y in train_pipeline(splits["train"], **kw))
m = sum(int(tf.size(y)) for s in splits.values() for _, y in s)
out("folder", len(splits["train"]) + len(splits["eval"]), n, m)
peak = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")][0]
out("VmHWM kB", peak)
"""


@pytest.fixture(scope="module")
def child():
    outcome = run_isolated(CHILD, timeout=300, rss_mb=RSS_MB, cwd=ROOT)
    assert not outcome.timed_out and not outcome.over_memory, outcome.describe()
    assert outcome.returncode == 0 and "Traceback" not in outcome.stderr, outcome.describe()
    rows = [json.loads(line) for line in outcome.stdout.splitlines() if line.startswith("[")]
    return rows, outcome.stderr


def _rows(child, kind):
    return [row[1:] for row in child[0] if row[0] == kind]


def test_decode_image_refuses_every_hostile_case_before_decoding(child):
    from tests.serving.test_hostile_images import CASES

    got = {name: result for name, result in _rows(child, "decode")}
    for name, (_, want) in CASES.items():
        if want is None:
            assert isinstance(got[name], list) and got[name][2] == 3, (name, got[name])
        else:
            assert isinstance(got[name], str) and want in got[name], (name, got[name])
    assert got["not an image"] == "not a JPEG, PNG, GIF, BMP or WebP image"


@pytest.mark.parametrize("kind", ["in memory", "streamed"])
def test_bad_records_are_skipped_and_a_resumed_epoch_is_the_same(child, kind):
    ((total, good),) = _rows(child, "records")
    assert good == GOOD and total > good
    ((n_batches, train_labels, resumed_same, eval_labels),) = (
        row[1:] for row in _rows(child, "pipeline") if row[0] == kind
    )
    assert n_batches == GOOD // 2 and 9 not in train_labels and len(train_labels) == GOOD
    assert sorted(eval_labels) == train_labels  # every good record, no bad one
    assert resumed_same == [True, True]


def test_each_skipped_record_is_one_warning_line(child):
    _, stderr = child
    ((total, good),) = _rows(child, "records")
    warnings = [line for line in stderr.splitlines() if line.startswith("Warning: dataset record")]
    assert all(re.match(r"Warning: dataset record \d+ skipped: \S", w) for w in warnings)
    # Each bad record once per pass: 4 train passes and 1 eval pass, twice (in memory, streamed).
    assert len(warnings) == 2 * 5 * (total - good), warnings[:3]


def test_a_folder_file_swapped_after_listing_is_refused_by_name_and_dropped(child):
    ((message,),) = _rows(child, "swapped")
    assert message.endswith(
        "0.png: the image is 16x50000 pixels; each side may be at most 16384"
    ), message
    ((listed, trained, decoded),) = _rows(child, "folder")
    assert (listed, trained, decoded) == (8, 4, 7)  # 5 train images left: 2 batches of 2


def test_the_child_s_own_peak_is_within_the_cap(child):
    ((peak,),) = _rows(child, "VmHWM kB")
    assert peak < RSS_MB * 1024

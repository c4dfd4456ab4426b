"""Splits carry their references and decoder: one decode per image per epoch; `take` keeps that."""

import collections
import hashlib
import pathlib
import shutil
import weakref

import numpy as np
import pytest
import tensorflow as tf

from alexnet_keras.data import (
    eval_pipeline,
    open_dataset,
    pipelines,
    sources,
    split,
    train_pipeline,
)
from alexnet_keras.data.image_folder import seeded_permutation
from alexnet_keras.data.split import Split, read_all
from tests.conftest import SHARED, require
from tests.data.test_pipelines import SMALL, assert_same_batches, batches, make_folder

TFDS_DIR = SHARED / "data" / "tfds"
CIFAR_MINI = SHARED / "data" / "cifar10-mini"
EVAL_KW = dict(batch_size=8, preprocessing=None, **SMALL)
KW = dict(EVAL_KW, pca_std=0)


def _digest(data):
    return hashlib.sha1(bytes(data)).hexdigest()


@pytest.fixture
def decodes(monkeypatch):
    """Every image decode that runs, by the sha1 of the bytes decoded.

    `tf.io.decode_image` and `tf.io.decode_and_crop_jpeg` (the training crop's
    window, `data.crop_decode`) are wrapped, so a decode is counted wherever it
    is built: in the split, in the pipeline, or anywhere else.
    """
    seen = collections.Counter()

    def record(data):
        seen[_digest(data.numpy())] += 1
        return np.int64(0)

    def counted(real):
        def counting(contents, *args, **kwargs):
            image = real(contents, *args, **kwargs)
            tick = tf.py_function(record, [contents], tf.int64)
            with tf.control_dependencies([tick]):
                return tf.identity(image)

        return counting

    monkeypatch.setattr(tf.io, "decode_image", counted(tf.io.decode_image))
    monkeypatch.setattr(tf.io, "decode_and_crop_jpeg", counted(tf.io.decode_and_crop_jpeg))
    return seen


def _encoded(split):
    """The encoded bytes of every image of a split, as its references hold them."""
    raw, _ = read_all(split.references)
    if split.is_path:
        return [pathlib.Path(p.decode()).read_bytes() for p in raw]
    return list(raw)


def _assert_one_decode_per_image_per_epoch(split, decodes, **kw):
    want = collections.Counter(_digest(b) for b in _encoded(split))
    for epoch in (0, 1):
        decodes.clear()
        count = sum(len(y) for _, y in train_pipeline(split, epoch=epoch, **KW, **kw))
        assert count == len(split)
        assert decodes == want, f"epoch {epoch}: {sum(decodes.values())} decodes"


def test_a_folder_split_decodes_each_image_once_per_epoch(decodes):
    splits, _ = open_dataset(f"folder:{require(CIFAR_MINI)}")
    _assert_one_decode_per_image_per_epoch(splits["train"], decodes)
    decodes.clear()
    assert sum(len(y) for _, y in eval_pipeline(splits["eval"], **EVAL_KW)) == 100
    assert sum(decodes.values()) == 100 and len(decodes) == 100


def test_a_tfds_split_decodes_each_image_once_per_epoch(decodes):
    splits, _ = open_dataset("cifar10", data_dir=str(require(TFDS_DIR)))
    assert splits["train"].load is not None and len(splits["train"]) == 50000
    _assert_one_decode_per_image_per_epoch(splits["train"].take(200), decodes)


def test_a_streamed_tfds_split_decodes_each_image_once_per_epoch(decodes, monkeypatch):
    monkeypatch.setattr(sources, "MATERIALIZE_MAX_BYTES", 0)  # too big for memory
    splits, _ = open_dataset("cifar10", data_dir=str(require(TFDS_DIR)))
    part = splits["train"].take(200)
    assert part.arrays() is None  # the shuffle buffer path
    _assert_one_decode_per_image_per_epoch(part, decodes, shuffle_buffer=64)


@pytest.fixture
def folders(tmp_path, rng):
    """A train/test folder, and one whose train/ holds only the first 6 train images."""
    make_folder(tmp_path / "all", {"train/a": 5, "train/b": 5, "train/c": 5, "test/a": 1,
                                   "test/b": 1}, rng)  # fmt: skip
    names = ["a/000.png", "a/001.png", "a/002.png", "a/003.png", "a/004.png", "b/000.png"]
    for sub in ["train/" + n for n in names] + ["train/c/.keep", "test/a/000.png"]:
        target = tmp_path / "part" / sub
        target.parent.mkdir(parents=True, exist_ok=True)
        if sub.endswith(".png"):
            shutil.copy(tmp_path / "all" / sub, target)
    return tmp_path / "all", tmp_path / "part"


def test_take_gives_the_batches_of_a_dataset_of_those_images(folders):
    every, first = (open_dataset(f"folder:{f}")[0]["train"] for f in folders)
    part = every.take(6)
    assert isinstance(part, Split) and len(part) == 6 == len(first)
    for seed, epoch in ((0, 0), (3, 1)):
        kw = dict(KW, batch_size=2, seed=seed, epoch=epoch, drop_remainder=False)
        got = batches(train_pipeline(part, **kw))
        assert_same_batches(got, batches(train_pipeline(first, **kw)))
        # The exact seeded permutation of those 6 (a shuffle buffer would not give it).
        order = every.arrays()[1][:6][seeded_permutation(6, seed, epoch)]
        assert np.concatenate([y for _, y in got]).tolist() == order.tolist()
    assert_same_batches(
        batches(eval_pipeline(part, **EVAL_KW)), batches(eval_pipeline(first, **EVAL_KW))
    )


def test_take_of_a_tfds_split_reads_only_what_it_takes():
    splits, _ = open_dataset("cifar10", data_dir=str(require(TFDS_DIR)))
    train = splits["train"]
    part = train.take(50)
    raw, labels = part.arrays()
    assert len(raw) == 50 and train._arrays is None  # the 50,000 were not read for it
    again = part.take(20)
    assert again.arrays()[0].tolist() == raw[:20].tolist() and len(again) == 20
    # Once the parent holds its arrays, a take slices them: the same references.
    assert train.arrays()[0][:50].tolist() == raw.tolist()
    assert train.take(50).arrays()[1].tolist() == labels.tolist()
    assert len(train.take(-1)) == len(train.take(10**9)) == 50000


def test_a_split_iterates_as_decoded_pairs_and_holds_no_side_table():
    splits, _ = open_dataset(f"folder:{require(CIFAR_MINI)}")
    part = splits["eval"].take(3)
    pairs = list(part)
    assert [tuple(x.shape) for x, _ in pairs] == [(32, 32, 3)] * 3
    assert [int(y) for _, y in pairs] == [int(y) for _, y in part.dataset()]
    for module in (sources, split, pipelines):
        assert not any(isinstance(v, weakref.WeakKeyDictionary) for v in vars(module).values())

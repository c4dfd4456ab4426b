"""The fused training crop (`data.crop_decode`): today's crops from the crop's window only."""

import numpy as np
import pytest
import tensorflow as tf

from alexnet_keras.data import open_dataset, train_pipeline
from alexnet_keras.data.crop_decode import crop_window, random_crop
from alexnet_keras.preprocessing import resize_shorter
from tests.conftest import IMAGENET_SAMPLE, SHARED, require

CIFAR_MINI = SHARED / "data" / "cifar10-mini"


def _whole_image_crop(data, size, resize, seed):
    """Today's path, spelled out: decode all, resize the shorter side, random crop."""
    image = tf.cast(tf.io.decode_image(data, channels=3, expand_animations=False), tf.float32)
    return tf.image.stateless_random_crop(resize_shorter(image, resize), [size, size, 3], seed)


def _real_jpegs(count):
    files = sorted(require(IMAGENET_SAMPLE).glob("*/*.JPEG"))[:: 1000 // count][:count]
    return [tf.io.read_file(str(f)) for f in files]


def _resized(data, shorter, encode=tf.io.encode_jpeg):
    image = tf.io.decode_jpeg(data, channels=3)
    h, w = image.shape[:2]
    size = [round(h * shorter / min(h, w)), round(w * shorter / min(h, w))]
    return encode(tf.cast(tf.clip_by_value(tf.image.resize(image, size), 0, 255), tf.uint8))


@pytest.mark.parametrize("seed", range(40))
def test_the_crop_offsets_are_stateless_random_crops(seed):
    """The crop's position is drawn by the same call on the same shape: the same distribution."""
    height, width = 300 + 7 * seed, 500 - 3 * seed
    offset, resized, _ = crop_window(tf.constant(height), tf.constant(width), size=227,
                                     resize=256, seed=tf.constant([seed, 11]))  # fmt: skip
    rows, cols = np.meshgrid(np.arange(resized[0]), np.arange(resized[1]), indexing="ij")
    where = np.stack([rows, cols, rows], -1).astype(np.int32)  # each pixel holds its position
    crop = tf.image.stateless_random_crop(where, [227, 227, 3], seed=tf.constant([seed, 11]))
    assert crop[0, 0, :2].numpy().tolist() == offset.numpy().tolist()


def test_at_the_shorter_side_256_the_crops_are_bit_identical():
    """ImageNet-sample's JPEGs have a shorter side of 256: no resize, the same pixels."""
    for i, data in enumerate(_real_jpegs(12)):
        seed = tf.constant([i, 5], tf.int64)
        expected = _whole_image_crop(data, 227, 256, seed)
        got = random_crop(data, size=227, resize=256, seed=seed)
        np.testing.assert_array_equal(got.numpy(), expected.numpy())


@pytest.mark.parametrize("shorter", [500, 333, 180, 32])
@pytest.mark.parametrize("encode", [tf.io.encode_jpeg, tf.io.encode_png], ids=["jpeg", "png"])
def test_resized_crops_equal_the_whole_image_path(shorter, encode):
    """Down- and upscaled real images: the window's resize samples as the whole one does."""
    worst = 0.0
    for i, data in enumerate(_real_jpegs(6)):
        data = _resized(data, shorter, encode)
        for k in range(3):
            seed = tf.constant([k, i], tf.int64)
            expected = _whole_image_crop(data, 227, 256, seed).numpy()
            got = random_crop(data, size=227, resize=256, seed=seed).numpy()
            worst = max(worst, float(np.abs(got - expected).max()))
    # Float rounding of the sample positions only (measured <= 0.004 of 255); a window
    # one pixel off, or a translation with the wrong sign, moves pixels by tens.
    assert worst < 0.02, worst


def _folder(root, encoded):
    """`root/train/class{0,1}/` with the images, and one test image a class."""
    for i, data in enumerate(encoded):
        for part in ("train", "test") if i < 2 else ("train",):
            folder = root / part / f"class{i % 2}"
            folder.mkdir(parents=True, exist_ok=True)
            tf.io.write_file(str(folder / f"{i}.jpg"), data)


def test_the_training_pipeline_gives_todays_batches(tmp_path):
    """A folder of real JPEGs at a shorter side of 400: fused and whole-image epochs agree."""
    _folder(tmp_path, [_resized(data, 400) for data in _real_jpegs(8)])
    splits, _ = open_dataset(f"folder:{tmp_path}")
    kw = dict(input_size=227, batch_size=4, preprocessing="bvlc", seed=3, epoch=1)
    fused = list(train_pipeline(splits["train"], **kw))
    whole = list(train_pipeline(splits["train"], fused_crop=False, **kw))
    assert len(fused) == len(whole) == 2
    for (xf, yf), (xw, yw) in zip(fused, whole, strict=True):
        np.testing.assert_array_equal(yf.numpy(), yw.numpy())
        np.testing.assert_allclose(xf.numpy(), xw.numpy(), atol=0.02)


def test_cifar_tfds_records_take_the_fused_path_too(monkeypatch):
    """TFDS records are encoded PNGs: upsampled 8x, the window path agrees with today's."""
    monkeypatch.setenv("TFDS_DATA_DIR", str(SHARED / "data" / "tfds"))
    splits, _ = open_dataset("cifar10")
    split = splits["train"].take(16)
    kw = dict(input_size=227, batch_size=8, preprocessing=None, seed=0, epoch=0)
    whole = train_pipeline(split, fused_crop=False, **kw)
    for (xf, _), (xw, _) in zip(train_pipeline(split, **kw), whole, strict=True):
        np.testing.assert_allclose(xf.numpy(), xw.numpy(), atol=0.02)


def test_a_file_cut_after_the_listing_is_dropped(tmp_path):
    """The window path keeps `decode_image`'s check: a file changed since its listing fails
    it and is dropped (`ignore_errors`), as on the whole-image path; the epoch goes on."""
    _folder(tmp_path, [data.numpy() for data in _real_jpegs(4)])
    splits, _ = open_dataset(f"folder:{tmp_path}")
    cut = tmp_path / "train" / "class1" / "3.jpg"
    cut.write_bytes(cut.read_bytes()[:3000])  # no end-of-image marker any more
    batches = list(train_pipeline(splits["train"], input_size=227, batch_size=1,
                                  preprocessing=None))  # fmt: skip
    assert len(batches) == 3

"""preprocess_input, crops, class names, decode_predictions, load_image."""

import numpy as np
import pytest
import tensorflow as tf

import alexnet_keras
from alexnet_keras.preprocessing import imagenet_classes
from tests.conftest import IMAGENET_SAMPLE, require

BGR_MEAN = np.array([104.00699, 116.66877, 122.67891])


def test_imagenet_classes_are_the_sorted_wnids():
    classes = imagenet_classes()
    assert len(classes) == 1000
    wnids = [w for w, _ in classes]
    assert wnids == sorted(wnids) and len(set(wnids)) == 1000
    assert classes[0] == ("n01440764", "tench") and classes[999][0] == "n15075141"


def test_imagenet_classes_match_the_shared_synsets():
    synsets = require(IMAGENET_SAMPLE / "synsets.txt").read_text().splitlines()
    assert [" ".join(c) for c in imagenet_classes()] == synsets


def test_preprocess_bvlc_is_bgr_minus_mean(rng):
    x = rng.uniform(0, 255, (2, 5, 5, 3))
    y = alexnet_keras.preprocess_input(x, variant="bvlc")
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, x[..., ::-1] - BGR_MEAN, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(alexnet_keras.preprocess_input(x, variant="caffenet"), y)


def test_preprocess_chm2012_is_rgb_minus_mean(rng):
    x = rng.uniform(0, 255, (5, 5, 3))
    y = alexnet_keras.preprocess_input(x, variant="chm2012")
    np.testing.assert_allclose(y, x - BGR_MEAN[::-1], rtol=1e-5, atol=1e-4)
    mean_image = rng.uniform(0, 255, (5, 5, 3))
    y = alexnet_keras.preprocess_input(x, variant="chm2012", mean=mean_image)
    np.testing.assert_allclose(y, x - mean_image, rtol=1e-5, atol=1e-4)


def test_preprocess_tensor_path_equals_numpy_path(rng):
    x = rng.uniform(0, 255, (2, 4, 4, 3)).astype(np.float32)
    for variant in ("bvlc", "chm2012"):
        y = alexnet_keras.preprocess_input(tf.constant(x), variant=variant)
        assert isinstance(y, tf.Tensor)
        np.testing.assert_allclose(y.numpy(), alexnet_keras.preprocess_input(x, variant=variant))
    traced = tf.function(lambda t: alexnet_keras.preprocess_input(t))(tf.constant(x))
    np.testing.assert_allclose(traced.numpy(), alexnet_keras.preprocess_input(x))


def test_preprocess_rejects_bad_input():
    with pytest.raises(ValueError, match=r"Received: x.shape=\(2, 2, 4\)"):
        alexnet_keras.preprocess_input(np.zeros((2, 2, 4)))
    with pytest.raises(ValueError, match=r"Received: variant='resnet'"):
        alexnet_keras.preprocess_input(np.zeros((2, 2, 3)), variant="resnet")


def test_decode_predictions():
    preds = np.zeros((2, 1000))
    preds[0, [3, 7, 1]] = [0.5, 0.3, 0.2]
    preds[1, 999] = 1.0
    top = alexnet_keras.decode_predictions(preds, top=3)
    assert [t[0] for t in top[0]] == ["n01491361", "n01514668", "n01443537"]
    assert top[0][0][1] == "tiger shark" and top[0][0][2] == 0.5
    assert top[1][0][:2] == ("n15075141", "toilet tissue")
    custom = alexnet_keras.decode_predictions(
        np.array([[0.1, 0.9]]), top=1, class_names=["cat", "dog"]
    )
    assert custom == [[("1", "dog", 0.9)]]


def test_decode_predictions_rejects_wrong_shape():
    with pytest.raises(ValueError, match=r"Received: preds.shape=\(1, 10\)"):
        alexnet_keras.decode_predictions(np.zeros((1, 10)))


def test_center_crop_uses_caffe_offsets():
    img = np.arange(256 * 256 * 3, dtype=np.float32).reshape(256, 256, 3)
    crop = alexnet_keras.center_crop(img, 227)
    np.testing.assert_array_equal(crop, img[14:241, 14:241])  # (256 - 227) // 2 = 14
    np.testing.assert_array_equal(alexnet_keras.center_crop(img, 224), img[16:240, 16:240])
    batch = alexnet_keras.center_crop(tf.constant(img[None]), 227)
    np.testing.assert_array_equal(batch.numpy()[0], crop)
    with pytest.raises(ValueError, match=r"Received: image size=200x256"):
        alexnet_keras.center_crop(img[:200], 227)


def test_ten_crop_corners_center_then_mirrors():
    img = np.random.default_rng(1).uniform(size=(256, 260, 3)).astype(np.float32)
    crops = alexnet_keras.ten_crop(img, 227)
    assert crops.shape == (10, 227, 227, 3)
    starts = [(0, 0), (0, 33), (29, 0), (29, 33), (14, 16)]
    for i, (y, x) in enumerate(starts):
        np.testing.assert_array_equal(crops[i], img[y : y + 227, x : x + 227])
        np.testing.assert_array_equal(crops[i + 5], img[y : y + 227, x : x + 227][:, ::-1])
    batch = alexnet_keras.ten_crop(tf.constant(np.stack([img, img])), 227)
    assert batch.shape == (2, 10, 227, 227, 3)
    np.testing.assert_array_equal(batch.numpy()[1], crops)


def test_load_image_real_jpeg(imagenet_dir):
    path = sorted(imagenet_dir.glob("*/*.JPEG"))[0]
    img = alexnet_keras.load_image(path)
    assert img.dtype == np.float32 and min(img.shape[:2]) == 256 and img.shape[2] == 3
    assert 0 <= img.min() and img.max() <= 255.5


def test_load_image_rejects_non_images(tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_bytes(b"this is not a jpeg")
    with pytest.raises(ValueError, match=r"notes\.jpg: not a readable image"):
        alexnet_keras.load_image(bad)
    with pytest.raises(ValueError, match=r"nothing\.jpg: not a readable image"):
        alexnet_keras.load_image(tmp_path / "nothing.jpg")

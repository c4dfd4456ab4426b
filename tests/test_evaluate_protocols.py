"""Evaluation protocols: BVLC's 256x256 warp against a NumPy reference, the weights' default,
`evaluate` end to end through the console script, and `preprocess_input` on a KerasTensor.

The reference is written here from the protocol's definition, in NumPy: a
bilinear warp to 256x256 with half-pixel centres and no antialiasing (OpenCV
`INTER_LINEAR`, which made Caffe's ImageNet LMDB), BGR minus the mean, the
centre 227 crop at offset 14. Only the JPEG decode is TensorFlow's, as in
the code under test, so the comparison is of the geometry and arithmetic.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import alexnet_keras
from alexnet_keras import variants
from alexnet_keras.data import eval_pipeline, open_dataset
from alexnet_keras.geometry import layer_plan
from alexnet_keras.preprocessing import (
    center_crop,
    load_image,
    preprocess_fn,
    weights_protocol,
)
from alexnet_keras.weights import read_metadata, write_arrays
from alexnet_keras.weights._schema import Refusal, check_metadata
from tests import val_files as V
from tests.conftest import IMAGENET_SAMPLE, require

MEAN_BGR = np.array(variants.IMAGENET_MEAN_BGR)
PRE = {"color_order": "BGR", "mean": list(variants.IMAGENET_MEAN_BGR)}
COUNT = 12


def small_weights(path, classes=1000, protocol="bvlc", seed=0):
    """Random AlexNet weights (He-scaled, so every layer works), written without building a model.

    AlexNet's fc6 alone is 151 MB, so no weights file is small; `write_arrays`
    at least skips building and compiling the model.
    """
    rng = np.random.default_rng(seed)
    arrays = {}
    for p in layer_plan("bvlc", classes=classes):
        if p.weight_shapes:
            kernel, bias = p.weight_shapes
            std = np.sqrt(2.0 / np.prod(kernel[:-1]))
            w = rng.standard_normal(kernel, dtype=np.float32) * np.float32(std)
            arrays[p.name] = [w, np.zeros(bias, np.float32)]
    names = [list(c) for c in variants.imagenet_classes()] if classes == 1000 else None
    return write_arrays(path, arrays, variant="bvlc", class_names=names, protocol=protocol)


def decode(path):
    return tf.io.decode_jpeg(path.read_bytes(), channels=3).numpy().astype(np.float64)


def bilinear(image, height, width):
    """OpenCV INTER_LINEAR: half-pixel centres, edge pixels repeated, no antialiasing."""

    def axis(out, size):
        src = np.clip((np.arange(out) + 0.5) * size / out - 0.5, 0, size - 1)
        low = np.floor(src).astype(int)
        return low, np.minimum(low + 1, size - 1), src - low

    y0, y1, wy = axis(height, image.shape[0])
    x0, x1, wx = axis(width, image.shape[1])
    rows = image[y0] * (1 - wy)[:, None, None] + image[y1] * wy[:, None, None]
    return rows[:, x0] * (1 - wx)[None, :, None] + rows[:, x1] * wx[None, :, None]


def bvlc_reference(path, size=227):
    warped = bilinear(decode(path), 256, 256)
    x = warped[..., ::-1] - MEAN_BGR
    top = (256 - size) // 2
    return x[top : top + size, top : top + size]


@pytest.fixture(scope="module")
def val(tmp_path_factory):
    require(IMAGENET_SAMPLE)
    return V.make_val_folder(IMAGENET_SAMPLE, tmp_path_factory.mktemp("ilsvrc") / "val", COUNT)


def _batches(val, protocol, tmp_path):
    splits, _ = open_dataset(
        f"imagenet-val:{val.folder}", labels=V.write_caffe(val, tmp_path / "v")
    )
    ds = eval_pipeline(splits["eval"], input_size=227, batch_size=COUNT, preprocessing=PRE,
                       protocol=protocol)  # fmt: skip
    (x, y), *rest = list(ds)
    assert not rest and y.numpy().tolist() == val.labels
    return x.numpy()


def test_bvlc_protocol_is_the_numpy_warp_mean_and_centre_crop(val, tmp_path):
    want = np.stack([bvlc_reference(p) for p in val.sources])
    got = _batches(val, "bvlc", tmp_path)
    assert got.shape == (COUNT, 227, 227, 3)
    np.testing.assert_allclose(got, want, atol=2e-3, rtol=0)
    # The shorter-side protocol keeps the aspect ratio: a different image, by far.
    other = _batches(val, "shorter-side", tmp_path)
    square = [decode(p).shape[0] == decode(p).shape[1] for p in val.sources]
    assert square.count(False) >= COUNT // 2
    for o, w, sq in zip(other, want, square, strict=True):
        assert (np.abs(o - w).mean() < 1e-3) if sq else (np.abs(o - w).mean() > 1.0)


def test_predict_shares_the_protocol_resize(val, tmp_path):
    """`load_image(..., protocol="bvlc")` + crop + preprocessing: what predict runs.

    The sample images have a shorter side of 256 already; a 500x375 one, as
    most of ILSVRC-2012 val, is scaled down on both axes.
    """
    big = tf.image.resize(decode(val.sources[1]), (375, 500)).numpy().round().clip(0, 255)
    (tmp_path / "big.jpg").write_bytes(tf.io.encode_jpeg(big.astype(np.uint8)).numpy())
    fn = preprocess_fn(PRE, 227)
    for path in [tmp_path / "big.jpg", *val.sources[:3]]:
        got = fn(center_crop(load_image(path, protocol="bvlc"), 227))
        np.testing.assert_allclose(got, bvlc_reference(path), atol=2e-3, rtol=0)


def test_the_protocol_is_metadata_and_old_files_get_a_sensible_default():
    meta = {"variant": "bvlc", "classes": 10, "input_size": 227}
    assert check_metadata({**meta, "protocol": "bvlc"})["protocol"] == "bvlc"
    with pytest.raises(Refusal, match="metadata `protocol` must be one of"):
        check_metadata({**meta, "protocol": "warp"})
    assert weights_protocol({"protocol": "shorter-side", "source": {"format": "caffemodel"}}) == (
        "shorter-side"
    )
    for fmt, want in (("caffemodel", "bvlc"), ("npy", "bvlc"), ("cuda-convnet", "shorter-side")):
        assert weights_protocol({**meta, "source": {"format": fmt}}) == want
    assert weights_protocol({**meta, "source": None}) == "shorter-side"  # trained here


def test_the_caffe_converter_writes_the_bvlc_protocol(tmp_path):
    from alexnet_keras.caffe.convert import convert_file
    from tests import caffe_files
    from tests import reference as ref

    params = ref.random_caffe_params(np.random.default_rng(1), classes=10)
    src = tmp_path / "net.caffemodel"
    caffe_files.write_caffemodel(src, caffe_files.alexnet_layers(params))
    convert_file(src, tmp_path / "net.weights.h5")
    assert read_metadata(tmp_path / "net.weights.h5")["protocol"] == "bvlc"


def test_preprocess_input_takes_a_keras_tensor_as_keras_does():
    import keras

    for variant in ("bvlc", "chm2012"):
        inputs = keras.Input((227, 227, 3))
        out = alexnet_keras.preprocess_input(inputs, variant=variant)
        assert isinstance(out, keras.KerasTensor) and tuple(out.shape) == (None, 227, 227, 3)
        model = keras.Model(inputs, out)
        x = np.random.default_rng(0).uniform(0, 255, (2, 227, 227, 3)).astype(np.float32)
        want = alexnet_keras.preprocess_input(x, variant=variant)
        np.testing.assert_allclose(model.predict_on_batch(x), want, atol=1e-4)
    # keras' own works the same way: `keras.applications.vgg16.preprocess_input(inputs)`.
    assert tuple(keras.applications.vgg16.preprocess_input(inputs).shape) == tuple(out.shape)


@pytest.fixture(scope="module")
def scored(val, tmp_path_factory):
    """A weights file, and labels chosen from its NumPy-reference ranking of each image.

    Image i gets its top class (i % 3 == 0), its third (1: top-5 only) or its
    50th (2: a miss), so `evaluate` must reproduce the reference's ranking.
    """
    folder = tmp_path_factory.mktemp("scored")
    path = small_weights(folder / "w.weights.h5")
    model = alexnet_keras.AlexNet(weights=path)
    x = np.stack([bvlc_reference(p) for p in val.sources]).astype(np.float32)
    order = np.argsort(-model.predict_on_batch(x), axis=-1)
    del model
    ranks = [(0, 2, 49)[i % 3] for i in range(COUNT)]
    val = V.ValFolder(val.folder, val.names, [int(order[i, r]) for i, r in enumerate(ranks)], [])
    labels = V.write_caffe(val, folder / "val.txt")
    top1 = sum(r == 0 for r in ranks) / COUNT
    top5 = sum(r < 5 for r in ranks) / COUNT
    return path, labels, top1, top5, len(set(order[:, 0].tolist()))


def test_evaluate_console_script_reproduces_the_numpy_top1_and_top5(val, scored, tmp_path):
    path, labels, top1, top5, distinct = scored
    assert distinct > 1  # the random net tells the images apart
    exe = os.path.join(os.path.dirname(sys.executable), "alexnet-keras")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [exe, "evaluate", "--weights", str(path), "--dataset", f"imagenet-val:{val.folder}",
         "--labels", str(labels), "--batch-size", "5", "--json", "--output",
         str(tmp_path / "confusion.csv")],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["protocol"] == "bvlc"  # the weights' own
    assert (result["count"], result["skipped"]) == (COUNT, 0)
    assert result["top1"] == pytest.approx(top1) and result["top5"] == pytest.approx(top5)
    lines = done.stderr.strip().splitlines()
    assert lines and all(line.startswith("evaluate: ") for line in lines), done.stderr
    assert lines[-1].startswith(f"evaluate: {COUNT}/{COUNT} images") and "ETA" in lines[-1]

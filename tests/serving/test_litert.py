"""The LiteRT export on the LiteRT runtime (`ai_edge_litert`), with a small stand-in network.

`ServingModule` takes any Keras classifier, so a two-layer net at 227 exercises the real crop,
mean, softmax, top-k and labels, and the conversion takes a second instead of AlexNet's
minutes. The full-size AlexNet against the numpy reference is
`test_export.py::test_tflite_matches_the_keras_model` (slow).
"""

import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from alexnet_keras.preprocessing import center_crop_tensor
from alexnet_keras.serving import export, lite
from alexnet_keras.serving.graph import ServingModule

pytest.importorskip("ai_edge_litert", reason="the LiteRT runtime: pip install ai-edge-litert")

LABELS = [f"class {i}" for i in range(6)]
# The conv features of 0..255 pixels are large: this gain keeps the softmax far from both
# uniform and one-hot, so a wrong crop, mean or net moves every probability.
GAIN = 0.05


def _module(seed=0, protocol="shorter-side"):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((227, 227, 3)),
        keras.layers.Conv2D(4, 11, strides=8, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(6, activation="softmax"),
    ])  # fmt: skip
    dense = model.layers[-1]
    dense.set_weights([w * GAIN for w in dense.get_weights()])
    return ServingModule(model, preprocessing="caffenet", labels=LABELS, top_k=3,
                         protocol=protocol)  # fmt: skip


def _pixels(shape=(256, 300, 3), seed=1):
    return np.random.default_rng(seed).uniform(0, 255, shape).astype(np.float32)


@pytest.fixture(scope="module")
def converted():
    """A module and its flatbuffer, converted once (the conversion is most of the cost)."""
    module = _module()
    return module, lite.tflite_bytes(module)


@pytest.fixture
def reuse(converted, monkeypatch):
    """`_litert_model` converts: hand it the module's flatbuffer already made."""
    module, data = converted
    monkeypatch.setattr(lite, "tflite_bytes", lambda m: data)
    return module


def test_the_model_runs_on_litert_with_the_graphs_outputs(converted):
    module, data = converted
    runner = lite.interpreter(data).get_signature_runner("serving_default")
    for shape in [(256, 300, 3), (301, 256, 3), (256, 256, 3)]:  # the runner resizes its input
        pixels = _pixels(shape)
        got = runner(images=pixels[None])
        want = module.classify(center_crop_tensor(tf.constant(pixels[None]), 227))
        np.testing.assert_allclose(got["probabilities"], want["probabilities"], atol=1e-6)
        assert got["top_k_labels"].tolist() == want["top_k_labels"].numpy().tolist()
        assert got["top_k_labels"][0][0].decode() in LABELS
        assert np.ptp(got["probabilities"]) > 0.1  # a test that can see a wrong crop or mean


@pytest.mark.parametrize(
    "name, images, error, message",
    [
        ("narrower than the crop", np.zeros((1, 300, 226, 3), np.float32), RuntimeError, None),
        ("smaller than the crop", np.zeros((1, 100, 100, 3), np.float32), RuntimeError, None),
        ("four channels", np.zeros((1, 256, 256, 4), np.float32), RuntimeError, None),
        ("integers", np.zeros((1, 256, 256, 3), np.int32), ValueError, "expected type FLOAT32"),
    ],
)  # fmt: skip
def test_bad_requests_fail_and_the_next_one_is_served(converted, name, images, error, message):
    """An image under the crop size used to be classified from a crop read past its edge."""
    module, data = converted
    runner = lite.interpreter(data).get_signature_runner("serving_default")
    with pytest.raises(error, match=message):
        runner(images=images)
    assert runner(images=_pixels()[None])["probabilities"].shape == (1, 6)  # the same runner


def test_the_export_check_passes_and_says_it_ran_on_litert(reuse):
    notes = []
    data = export._litert_model(reuse, notes)
    assert data[4:8] == b"TFL3"  # the flatbuffer's file identifier
    assert len(notes) == 1 and notes[0].startswith("ran on LiteRT (ai-edge-litert)")


def test_the_export_check_refuses_a_model_that_disagrees(reuse):
    """A planted bug: the flatbuffer comes from another net (other weights) than the one served."""
    with pytest.raises(ValueError, match="disagrees with the TensorFlow graph"):
        export._litert_model(_module(seed=7), [])


def test_a_bvlc_protocol_model_is_checked_at_256x256(reuse, monkeypatch):
    seen = []
    real = lite.verify
    monkeypatch.setattr(lite, "verify", lambda data, module, px: seen.append(px.shape) or real(
        data, module, px))  # fmt: skip
    export._litert_model(_module(protocol="bvlc"), [])
    assert seen == [(256, 256, 3)]


def test_without_the_runtime_the_model_is_written_and_the_note_says_why(reuse, monkeypatch):
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # import fails
    notes = []
    data = export._litert_model(reuse, notes)
    assert data and notes == [f"not run on LiteRT: {lite.MISSING_RUNTIME}"]
    with pytest.raises(ValueError, match="ai-edge-litert"):
        lite.interpreter(data)


_QUIET_SCRIPT = """
import numpy as np
from tests.serving.test_litert import _module, _pixels
from alexnet_keras.serving import lite
module = _module()
diff, same = lite.verify(lite.tflite_bytes(module), module, _pixels())
print(diff < 1e-4 and same)
"""


# The control (logs asked for: the line is there, so the check can fail) is slow.
@pytest.mark.parametrize(
    "level, quiet", [("3", True), pytest.param("0", False, marks=pytest.mark.slow)]
)
def test_the_check_keeps_litert_s_native_log_off_stderr(level, quiet):
    """LiteRT logs "Created TensorFlow Lite XNNPACK delegate" once per process, to fd 2."""
    import os
    import pathlib
    import subprocess

    root = pathlib.Path(__file__).parents[2]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": level, "PYTHONPATH": str(root)}
    run = subprocess.run([sys.executable, "-c", _QUIET_SCRIPT], capture_output=True, text=True,
                         env=env, cwd=root, timeout=300)  # fmt: skip
    assert run.returncode == 0 and run.stdout.strip() == "True", run.stderr
    assert ("XNNPACK" not in run.stderr) == quiet, run.stderr

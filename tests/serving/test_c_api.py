"""The SavedModel served without Python: TensorFlow's C API from the installed wheel.

`serve_c_api.c` (built by `tests/c_api.py`) is compiled against the wheel's
`tensorflow/include` and linked with its `libtensorflow_cc.so.2` and
`libtensorflow_framework.so.2`. It loads the export with
`TF_LoadSessionFromSavedModel` (tag `serve`: the C++ loader that
`tensorflow_model_server` embeds) and runs `serving_default` with
`TF_SessionRun` on real JPEG bytes. A graph that needed Python (a
`tf.py_function`) would fail there: the planted one does.
"""

import shutil

import numpy as np
import pytest
import tensorflow as tf

from alexnet_keras.serving.warmup import WARMUP_FILE
from tests import c_api


@pytest.fixture(scope="module")
def serve_c_api(tmp_path_factory):
    """The compiled program, or a skip that names what is missing."""
    try:
        return c_api.build(tmp_path_factory.mktemp("c_api"))
    except c_api.CannotBuild as e:
        pytest.skip(str(e))


def test_the_c_program_equals_python(serve_c_api, bvlc_export, imagenet_dir):
    """The bvlc export, four real ImageNet JPEGs in one request: C and Python agree to 1e-6."""
    files = sorted(imagenet_dir.glob("*/*.JPEG"))[::250]
    served, stderr = c_api.run(serve_c_api, bvlc_export.folder, [files])
    assert served is not None, stderr
    signature = tf.saved_model.load(str(bvlc_export.folder)).signatures["serving_default"]
    want = signature(image_bytes=tf.constant([f.read_bytes() for f in files]))
    assert set(served) == set(want) and want["probabilities"].numpy().max() > 0.05
    for key in ("probabilities", "top_k_scores"):
        np.testing.assert_allclose(served[key], want[key].numpy(), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(served["top_k_indices"], want["top_k_indices"].numpy())
    assert served["top_k_labels"].tolist() == want["top_k_labels"].numpy().tolist()


# Slow set: test_warmup replays the same records through the same graph from Python.
@pytest.mark.slow
def test_the_warmup_requests_run_from_c_before_a_client(serve_c_api, bvlc_export, imagenet_dir,
                                                       tmp_path):  # fmt: skip
    """TF Serving replays them in this C++ session: each must run, and the client's is unchanged."""
    pytest.importorskip("tensorflow_serving", reason="needs pip install tensorflow-serving-api")
    from tensorflow_serving.apis import prediction_log_pb2

    path = bvlc_export.folder / "assets.extra" / WARMUP_FILE
    requests = []
    for i, record in enumerate(tf.data.TFRecordDataset(str(path))):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        images = tf.make_ndarray(log.predict_log.request.inputs["image_bytes"])
        requests.append([tmp_path / f"{i}-{j}.jpg" for j in range(len(images))])
        for file, data in zip(requests[-1], images, strict=True):
            file.write_bytes(data)
    client = sorted(imagenet_dir.glob("*/*.JPEG"))[1:3]
    served, stderr = c_api.run(serve_c_api, bvlc_export.folder, [*requests, client], runs=2)
    assert served is not None, stderr
    assert sorted(c_api.timings(stderr)) == [(i + 1, 1) for i in range(len(requests))] + [
        (len(requests) + 1, 1), (len(requests) + 1, 2)]  # fmt: skip
    signature = tf.saved_model.load(str(bvlc_export.folder)).signatures["serving_default"]
    want = signature(image_bytes=tf.constant([f.read_bytes() for f in client]))
    np.testing.assert_allclose(served["probabilities"], want["probabilities"].numpy(), atol=1e-6)


def small_export(folder, plant_py_function=False):
    """A ServingModule graph around a two-layer model; optionally a tf.py_function in it."""
    import keras

    from alexnet_keras.serving.graph import ServingModule

    model = keras.Sequential([keras.Input((227, 227, 3)), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(3, activation="softmax")])  # fmt: skip
    module = ServingModule(model, preprocessing="bvlc", labels=["a", "b", "c"], top_k=2)
    if plant_py_function:
        forward = module._forward
        module._forward = lambda x: tf.py_function(forward, [x], tf.float32)
    tf.saved_model.save(module, str(folder), signatures=module.signatures())
    return folder


@pytest.fixture(scope="module")
def small_plain(tmp_path_factory):
    return small_export(tmp_path_factory.mktemp("small") / "plain")


def test_a_py_function_in_the_graph_fails_from_c(serve_c_api, small_plain, imagenet_dir,
                                                 tmp_path):  # fmt: skip
    files = sorted(imagenet_dir.glob("*/*.JPEG"))[:2]
    served, stderr = c_api.run(serve_c_api, small_plain, [files])  # the control: it runs
    assert served is not None, stderr
    signature = tf.saved_model.load(str(small_plain)).signatures["serving_default"]
    want = signature(image_bytes=tf.constant([f.read_bytes() for f in files]))["probabilities"]
    np.testing.assert_allclose(served["probabilities"], want.numpy(), rtol=0, atol=1e-6)
    planted = small_export(tmp_path / "planted", plant_py_function=True)
    assert b"EagerPyFunc" in (planted / "saved_model.pb").read_bytes()
    served, stderr = c_api.run(serve_c_api, planted, [files])
    assert served is None and "error: TF_SessionRun: " in stderr and "EagerPyFunc" in stderr


def test_a_bad_image_fails_the_c_request_naming_it(serve_c_api, small_plain, imagenet_dir,
                                                   tmp_path):  # fmt: skip
    text = tmp_path / "notes.txt"
    text.write_text("this is a text file, not a picture\n")
    files = [sorted(imagenet_dir.glob("*/*.JPEG"))[0], text]
    served, stderr = c_api.run(serve_c_api, small_plain, [files])
    assert served is None and "error: TF_SessionRun: " in stderr
    assert "image_bytes[1]: not a JPEG, PNG, GIF, BMP" in stderr


def test_no_compiler_is_a_named_skip(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert c_api.compiler_problem() == "no C compiler (gcc or cc) on PATH"
    with pytest.raises(c_api.CannotBuild, match="no C compiler"):
        c_api.build("unused")

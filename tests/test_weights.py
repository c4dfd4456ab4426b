"""The weights file: metadata, rebuilding from it, atomic writes, broken files."""

import json
import os
import re
import signal
import struct
import sys
import time

import h5py
import numpy as np
import pytest

import alexnet_keras
from alexnet_keras import weights as W


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """One chm2012 model with 7 classes, saved with metadata (uncompiled: ~230 MB)."""
    model = alexnet_keras.AlexNet(variant="chm2012", classes=7, classifier_activation=None)
    path = tmp_path_factory.mktemp("w") / "chm.weights.h5"
    names = [f"class{i}" for i in range(7)]
    W.save_weights(model, path, variant="chm2012", class_names=names,
                   source={"format": "test", "sha256": "0" * 64})  # fmt: skip
    return model, path


def test_metadata_is_embedded(saved):
    _, path = saved
    meta = W.read_metadata(path)
    assert meta["variant"] == "chm2012" and meta["classes"] == 7 and meta["input_size"] == 224
    assert meta["class_names"][3] == "class3"
    assert meta["preprocessing"]["color_order"] == "RGB"
    assert meta["source"]["format"] == "test"
    assert meta["alexnet_keras_version"] == alexnet_keras.__version__
    assert not list(path.parent.glob(".*tmp*")), "the temporary file was left behind"


def test_alexnet_rebuilds_from_the_file_alone(saved, rng):
    model, path = saved
    loaded = alexnet_keras.AlexNet(weights=path, classifier_activation=None)
    assert loaded.name == "alexnet_chm2012" and loaded.output_shape == (None, 7)
    x = rng.normal(0, 50, (2, 224, 224, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict_on_batch(x), model.predict_on_batch(x))


def test_file_loads_headless_and_at_the_other_size(saved, rng):
    model, path = saved
    headless = alexnet_keras.AlexNet(weights=path, include_top=False, input_shape=(227, 227, 3))
    np.testing.assert_array_equal(
        headless.get_layer("conv5").get_weights()[0], model.get_layer("conv5").get_weights()[0]
    )
    assert headless.output_shape == (None, 6, 6, 256)


def test_disagreeing_arguments_are_refused(saved):
    _, path = saved
    with pytest.raises(ValueError, match=r"7 classes\. Received: classes=1000"):
        alexnet_keras.AlexNet(weights=path, classes=1000)
    with pytest.raises(ValueError, match=r"'chm2012'\. Received: variant='bvlc'"):
        alexnet_keras.AlexNet(weights=path, variant="bvlc")


def test_broken_weights_files(tmp_path):
    missing = tmp_path / "missing.weights.h5"
    with pytest.raises(ValueError, match=r"missing\.weights\.h5: no such weights file"):
        alexnet_keras.AlexNet(weights=missing)
    garbage = tmp_path / "garbage.weights.h5"
    garbage.write_bytes(b"\x89HDF\r\n" + b"\0" * 100)
    with pytest.raises(ValueError, match=r"garbage\.weights\.h5: not an HDF5 file"):
        alexnet_keras.AlexNet(weights=garbage)
    plain = tmp_path / "plain.weights.h5"
    with h5py.File(plain, "w") as f:
        f.create_group("layers")
    with pytest.raises(
        ValueError, match=r"plain\.weights\.h5: a weights file without alexnet-keras"
    ):
        alexnet_keras.AlexNet(weights=plain)
    with h5py.File(plain, "a") as f:
        f.attrs[W.METADATA_KEY] = "{not json"
    with pytest.raises(ValueError, match=r"plain\.weights\.h5: the alexnet-keras metadata is not"):
        alexnet_keras.AlexNet(weights=plain)
    with h5py.File(plain, "a") as f:
        f.attrs[W.METADATA_KEY] = json.dumps(
            {"variant": "bvlc", "classes": 1000, "input_size": 227}
        )
    with pytest.raises(ValueError, match=r"plain\.weights\.h5: has no weights for layer 'conv1'"):
        alexnet_keras.AlexNet(weights=plain, include_top=False)


def test_save_refuses_wrong_suffix(tmp_path):
    model = alexnet_keras.AlexNet(include_top=False)
    with pytest.raises(ValueError, match=r"Received: path="):
        W.save_weights(model, tmp_path / "model.h5", variant="bvlc")


def _h5_layout(path):
    import h5py

    out = {}
    with h5py.File(path, "r") as f:

        def visit(name, obj):
            shape = getattr(obj, "shape", None)
            dtype = str(obj.dtype) if shape is not None else None
            attrs = {k: v for k, v in obj.attrs.items() if k != "alexnet_keras"}
            out[name] = (shape, dtype, attrs)

        f.visititems(visit)
    return out


@pytest.mark.parametrize(
    "variant,size", [("bvlc", 227), ("caffenet", 224), ("chm2012", 224), ("chm2012", 227)]
)
def test_layer_plan_and_write_arrays_match_keras(variant, size, tmp_path):
    """The converters write the file without Keras; it must be exactly what Keras writes."""
    from alexnet_keras.geometry import layer_plan

    model = alexnet_keras.AlexNet(variant=variant, input_shape=(size, size, 3), classes=10)
    plan = layer_plan(variant, size, classes=10)
    assert [(p.name, p.keras_class, p.weight_shapes) for p in plan] == [
        (layer.name, type(layer).__name__, tuple(tuple(w.shape) for w in layer.weights))
        for layer in model.layers
    ]
    rng = np.random.default_rng(0)
    arrays = {
        p.name: [rng.standard_normal(s).astype(np.float32) for s in p.weight_shapes]
        for p in plan
        if p.weight_shapes
    }
    for name, values in arrays.items():
        model.get_layer(name).set_weights(values)
    keras_path = alexnet_keras.weights.save_weights(
        model, tmp_path / "k.weights.h5", variant=variant
    )
    ours = alexnet_keras.weights.write_arrays(
        tmp_path / "o.weights.h5", arrays, variant=variant, input_size=size
    )
    assert _h5_layout(ours) == _h5_layout(keras_path)
    other = alexnet_keras.AlexNet(variant=variant, input_shape=(size, size, 3), classes=10)
    other.load_weights(ours)  # Keras' own loader
    for name, values in arrays.items():
        for got, want in zip(other.get_layer(name).get_weights(), values, strict=False):
            np.testing.assert_array_equal(got, want)


def test_read_arrays_hands_back_the_saved_arrays(saved):
    model, path = saved
    arrays = W.read_arrays(path)
    assert sorted(arrays) == ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]
    for name, values in arrays.items():
        for got, want in zip(values, model.get_layer(name).get_weights(), strict=True):
            assert got.dtype == np.float32 and got.flags.writeable
            np.testing.assert_array_equal(got, want)


def _small(path, meta):
    """A small Keras-layout file (not AlexNet's plan): read with `kind="any"`."""
    with h5py.File(path, "w") as f:
        if meta is not None:
            f.attrs[W.METADATA_KEY] = json.dumps(meta)
        g = f.create_group("layers/dense/vars")
        g.attrs["name"] = "fc"
        g.create_dataset("0", data=np.arange(6, dtype=np.float32).reshape(2, 3))
        g.create_dataset("1", data=np.ones(3, np.float32))
    return path


def test_any_kind_reads_other_keras_files_and_the_cache_follows_rewrites(tmp_path):
    path = _small(tmp_path / "a.weights.h5", {"model": "other", "n": 1})
    assert W.read_metadata(path, kind="any") == {"model": "other", "n": 1}
    np.testing.assert_array_equal(
        W.read_arrays(path, kind="any")["fc"][0], np.arange(6).reshape(2, 3)
    )
    with pytest.raises(ValueError, match=r"a\.weights\.h5: the alexnet-keras metadata lacks"):
        W.read_metadata(path)
    new = _small(tmp_path / "new.weights.h5", {"model": "other", "n": 2})
    os.replace(new, path)  # a new file under the same name: the cached metadata is not reused
    assert W.read_metadata(path, kind="any")["n"] == 2
    assert W.read_metadata(_small(tmp_path / "b.weights.h5", None), kind="any") is None


# A stand-in reader (`python -m tests.test_weights`), chosen by an environment variable.
if __name__ == "__main__":
    behaviour = os.environ.get("FAKE_WEIGHTS_READER")
    if behaviour == "segfault":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif behaviour == "hang":
        time.sleep(60)
    elif behaviour == "lie":  # a header claiming an array the trailer never delivers
        header = json.dumps({"metadata": None, "arrays": [["fc", 0, [1 << 40, 1 << 40]]]})
        sys.stdout.buffer.write(b"AKW1" + struct.pack("<Q", len(header)) + header.encode())
    elif behaviour == "bug":
        raise AttributeError("a bug in the reader")


@pytest.mark.parametrize("behaviour,message", [
    ("segfault", r"a corrupt HDF5 file \(the reader crashed with SIGSEGV\)"),
    ("hang", r"the weights reader did not finish within 1 s"),
    ("lie", r"a corrupt HDF5 file \(the reader's answer is malformed: header: .*more array"),
])  # fmt: skip
def test_a_reader_that_crashes_hangs_or_lies_is_a_refusal(tmp_path, monkeypatch, behaviour,
                                                          message):  # fmt: skip
    from alexnet_keras import limits
    from alexnet_keras.weights import _sandbox

    path = _small(tmp_path / "a.weights.h5", {"n": 1})
    monkeypatch.setattr(_sandbox, "READER", "tests.test_weights")
    monkeypatch.setattr(limits, "WEIGHTS_READ_SECONDS", 1)
    monkeypatch.setenv("FAKE_WEIGHTS_READER", behaviour)
    started = time.monotonic()
    with pytest.raises(ValueError, match=f"^{re.escape(str(path))}: {message}"):
        W.read_arrays(path, kind="any")
    assert time.monotonic() - started < 20


def test_a_reader_bug_is_not_passed_off_as_a_bad_file(tmp_path, monkeypatch):
    from alexnet_keras.weights import _sandbox

    monkeypatch.setattr(_sandbox, "READER", "tests.test_weights")
    monkeypatch.setenv("FAKE_WEIGHTS_READER", "bug")
    with pytest.raises(RuntimeError, match="a bug in the reader"):
        W.read_arrays(_small(tmp_path / "a.weights.h5", {"n": 1}), kind="any")

"""`alexnet-keras features`: a layer's outputs equal the model's own, resumed runs, bad input."""

import os

import h5py
import keras
import numpy as np
import pytest
from click.testing import CliRunner

import alexnet_keras
from alexnet_keras import weights as weights_file
from alexnet_keras.cli import cli
from alexnet_keras.features import store
from alexnet_keras.features.extract import extract_features
from alexnet_keras.features.store import partial_path, read_features
from tests.conftest import SHARED, require

MINI = SHARED / "data" / "cifar10-mini"


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Random bvlc weights, as `convert` writes a file (BGR, the ImageNet mean, shorter side)."""
    keras.utils.set_random_seed(1)
    path = tmp_path_factory.mktemp("w") / "random.weights.h5"
    return weights_file.save_weights(alexnet_keras.AlexNet(), path, variant="bvlc")


@pytest.fixture(scope="module")
def files(imagenet_dir):
    """Three real ILSVRC-2012 images of three classes."""
    return [sorted(imagenet_dir.glob(f"{wnid}/*.JPEG"))[0]
            for wnid in ("n01440764", "n02123045", "n04487081")]  # fmt: skip


def _invoke(*args):
    return CliRunner().invoke(cli, ["features", *map(str, args)])


def _reference(weights, files, layer, ten_crop, batch_size):
    """The layer's output in the full model, on inputs prepared here from the public API.

    The views go through the model in the batches the extractor uses: oneDNN
    picks its kernels by batch shape, and another pick moves float32 sums by 1e-5.
    """
    model = alexnet_keras.AlexNet(weights=weights)
    sub = keras.Model(model.inputs, model.get_layer(layer).output)
    views = []
    for f in files:
        image = alexnet_keras.load_image(f)  # shorter side 256: the file names no protocol
        views.append(alexnet_keras.ten_crop(image, 227) if ten_crop
                     else alexnet_keras.center_crop(image, 227)[None])  # fmt: skip
    x = alexnet_keras.preprocess_input(np.concatenate(views), variant="bvlc")  # BGR minus mean
    per_image = len(views[0])
    out = sub.predict(x, batch_size=batch_size * per_image, verbose=0)
    return out.reshape(len(files), per_image, *out.shape[1:]).mean(axis=1)


@pytest.mark.parametrize("layer,ten_crop", [("fc7", False), ("conv3", False), ("relu7", True),
                                            ("pool5", True)])  # fmt: skip
def test_features_are_the_layer_outputs(weights, files, tmp_path, layer, ten_crop):
    (tmp_path / "holiday").mkdir()  # a folder that names no class: label -1
    files = [*files, tmp_path / "holiday" / os.fsdecode(b"caf\xe9.jpg")]  # not UTF-8: kept
    files[-1].write_bytes(files[1].read_bytes())
    out = tmp_path / "f.h5"
    result = _invoke("--weights", weights, "--layer", layer, *files, "-o", out, "--batch-size", 2,
                     *(["--ten-crop"] if ten_crop else []))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    got = read_features(out)
    want = _reference(weights, files, layer, ten_crop, batch_size=2)
    assert got["features"].dtype == np.float32 and got["features"].shape == want.shape
    assert np.abs(want).max() > 1e-2  # a comparison of zeros would prove nothing
    np.testing.assert_allclose(got["features"], want, rtol=1e-6, atol=1e-6)
    assert got["paths"] == [str(f) for f in files]
    assert got["labels"].tolist() == [0, 281, 874, -1]  # tench, tabby, trolleybus, holiday/
    assert len(got["class_names"]) == 1000 and got["class_names"][281] == "tabby"
    attrs = got["attrs"]
    assert attrs["layer"] == layer and attrs["ten_crop"] == ten_crop and attrs["complete"]
    assert (attrs["variant"], attrs["input_size"], attrs["color_order"]) == ("bvlc", 227, "BGR")
    assert attrs["protocol"] == "shorter-side" and attrs["source"] == "files"
    np.testing.assert_allclose(attrs["mean"], [104.00699, 116.66877, 122.67891], rtol=1e-6)
    assert attrs["weights_sha256"] == alexnet_keras.registry.file_digests(weights)["sha256"]
    assert attrs["alexnet_keras_version"] == alexnet_keras.__version__
    assert not partial_path(out).exists()


def _interrupt_after(monkeypatch, batches):
    """Stops a run after `batches` appended batches, as Ctrl-C would."""
    real, calls = store.PartialFile.append, []

    def append(self, start, rows, extra):
        if len(calls) == batches:
            raise KeyboardInterrupt
        calls.append(start)
        real(self, start, rows, extra)

    monkeypatch.setattr(store.PartialFile, "append", append)
    return calls


def test_an_interrupted_run_resumes_where_it_stopped(weights, imagenet_dir, tmp_path,
                                                     monkeypatch):  # fmt: skip
    folders = sorted(imagenet_dir.iterdir())[:7]
    whole = extract_features(weights, "fc6", tmp_path / "whole.h5", images=folders, batch_size=2)
    out = tmp_path / "f.h5"
    with monkeypatch.context() as m:
        _interrupt_after(m, 2)
        with pytest.raises(KeyboardInterrupt):
            extract_features(weights, "fc6", out, images=folders, batch_size=2)
    assert not out.exists()
    with h5py.File(partial_path(out)) as f:
        assert f.attrs["count"] == 4 and not f.attrs["complete"]
    loaded, real_load = [], alexnet_keras.preprocessing.load_image

    def load(path, **kwargs):
        loaded.append(path)
        return real_load(path, **kwargs)

    monkeypatch.setattr(alexnet_keras.preprocessing, "load_image", load)
    result = _invoke("--weights", weights, "--layer", "fc6", *folders, "-o", out,
                     "--batch-size", 2)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert [p.parent.name for p in loaded] == [p.name for p in folders[4:]]  # only the rest
    got, want = read_features(out), read_features(whole)
    np.testing.assert_array_equal(got["features"], want["features"])
    assert got["paths"] == want["paths"] and got["labels"].tolist() == want["labels"].tolist()
    assert not partial_path(out).exists()


@pytest.fixture
def tiny_dataset(tmp_path):
    """Real CIFAR-10 images, 3 per class of 2 classes in train/ and test/: a quick folder set."""
    root = tmp_path / "tiny"
    for split in ("train", "test"):
        for name in ("cat", "ship"):
            (root / split / name).mkdir(parents=True)
            for f in sorted((require(MINI) / split / name).iterdir())[:3]:
                (root / split / name / f.name).write_bytes(f.read_bytes())
    return root


def test_a_dataset_split_resumes_with_its_indices_and_labels(weights, tiny_dataset, tmp_path,
                                                             monkeypatch):  # fmt: skip
    out = tmp_path / "f.h5"
    args = dict(dataset=f"folder:{tiny_dataset}", split="eval", batch_size=2)
    with monkeypatch.context() as m:
        calls = _interrupt_after(m, 1)
        with pytest.raises(KeyboardInterrupt):
            extract_features(weights, "pool5", out, **args)
        assert calls == [0]
    with monkeypatch.context() as m:
        calls = _interrupt_after(m, 99)
        extract_features(weights, "pool5", out, **args)
        assert calls == [2, 4]  # the first batch was not computed again
    got = read_features(out)
    assert got["features"].shape == (6, 6, 6, 256)
    assert got["indices"].tolist() == list(range(6))
    assert got["labels"].tolist() == [0, 0, 0, 1, 1, 1]
    assert got["class_names"] == ["cat", "ship"]
    assert got["attrs"]["dataset"] == f"folder:{os.path.abspath(tiny_dataset)}"
    assert got["attrs"]["split"] == "eval" and got["attrs"]["source"] == "dataset"
    first = sorted((tiny_dataset / "test" / "cat").iterdir())[0]
    model = alexnet_keras.AlexNet(weights=weights)
    sub = keras.Model(model.inputs, model.get_layer("pool5").output)
    x = alexnet_keras.preprocess_input(alexnet_keras.center_crop(alexnet_keras.load_image(first)))
    # The pipeline resizes in the graph, `load_image` eagerly: the pixels agree to float32 noise.
    np.testing.assert_allclose(got["features"][0], sub.predict(x[None], verbose=0)[0],
                               rtol=1e-5, atol=1e-5)  # fmt: skip


def fails(args, *fragments):
    """The command ends with one `Error:` line holding `fragments`, and exit code 2."""
    result = _invoke(*args)
    (line,) = result.stderr.strip().splitlines()  # one line: no traceback, no progress
    assert (result.exit_code, line[:7]) == (2, "Error: "), result.output
    assert all(fragment in line for fragment in fragments), line
    return line


def test_an_unknown_layer_lists_the_layers(weights, files, tmp_path):
    out = tmp_path / "f.h5"
    fails(["--weights", weights, "--layer", "fc9", files[0], "-o", out],
          "Unknown layer 'fc9'", "conv1, relu1, norm1", "fc7, relu7", "prob")  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_a_broken_image_is_named(weights, files, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(files[0].read_bytes()[:3000])  # a JPEG cut short
    fails(["--weights", weights, "--layer", "fc7", files[0], bad, "-o", tmp_path / "f.h5"],
          f"Error: {bad}: ")  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.jpg"]


def test_an_output_in_a_missing_or_read_only_folder(weights, files, tmp_path):
    from tests.training.test_checkpoint_faults import _read_only

    out = tmp_path / "no" / "f.h5"
    fails(["--weights", weights, "--layer", "fc7", files[0], "-o", out],
          f"Error: {out}: its folder {out.parent} does not exist")  # fmt: skip
    folder = tmp_path / "ro"
    folder.mkdir()
    undo = _read_only([folder])
    try:
        fails(["--weights", weights, "--layer", "fc7", files[0], "-o", folder / "f.h5"],
              f"Error: {folder / 'f.h5'}: cannot be written: ")  # fmt: skip
    finally:
        undo()
    assert list(folder.iterdir()) == []


def test_an_existing_output_needs_overwrite(weights, files, tmp_path):
    out = tmp_path / "f.h5"
    out.write_text("mine")
    fails(["--weights", weights, "--layer", "fc7", files[0], "-o", out], "pass --overwrite")
    assert out.read_text() == "mine"
    fails(["--weights", weights, "--layer", "fc7", "-o", out, "--overwrite"], "not neither")


def test_a_partial_file_of_other_arguments_or_corrupt_is_refused(weights, files, tmp_path,
                                                                  monkeypatch):  # fmt: skip
    out = tmp_path / "f.h5"
    with monkeypatch.context() as m:
        _interrupt_after(m, 1)
        with pytest.raises(KeyboardInterrupt):
            extract_features(weights, "fc7", out, images=files, batch_size=1)
    partial = partial_path(out)
    fails(["--weights", weights, "--layer", "fc6", *files, "-o", out],
          f"Error: {partial}: a partial file of other arguments: layer='fc7', this run has 'fc6'",
          "--overwrite")  # fmt: skip
    fails(["--weights", weights, "--layer", "fc7", *files[:2], "-o", out], "images_sha256=")
    partial.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(200))  # a header, then nothing
    fails(["--weights", weights, "--layer", "fc7", *files, "-o", out],
          f"Error: {partial}: unreadable (", "--overwrite")  # fmt: skip
    result = _invoke("--weights", weights, "--layer", "fc7", *files, "-o", out, "--overwrite")
    assert result.exit_code == 0, result.output
    assert f"Warning: {partial}: unreadable" in result.stderr
    assert read_features(out)["features"].shape == (3, 4096) and not partial.exists()

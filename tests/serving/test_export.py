"""`alexnet-keras export`: SavedModel parity, size, in-graph checks, safe writes, LiteRT."""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from alexnet_keras.cli import cli
from tests import exports

CLIENT = pathlib.Path(__file__).resolve().parents[1] / "savedmodel_client.py"


def sample_files(imagenet_dir, n=6):
    files = sorted(imagenet_dir.glob("*/*.JPEG"))
    return [files[i] for i in np.linspace(0, len(files) - 1, n).astype(int)]


@pytest.fixture(scope="module")
def request_files(imagenet_dir, tmp_path_factory):
    """Real photos at sizes that make the graph resize: the sample's are already 256.

    Four ImageNet JPEGs as they are, two re-encoded larger and smaller (JPEG
    and PNG), and a 32x32 CIFAR-10 JPEG that is upsampled.
    """
    files = sample_files(imagenet_dir, 6)
    tmp = tmp_path_factory.mktemp("requests")
    resized = []
    for f, (h, w), encode in [(files[4], (411, 600), tf.io.encode_jpeg),
                              (files[5], (231, 240), tf.io.encode_png)]:  # fmt: skip
        image = tf.io.decode_jpeg(f.read_bytes())
        image = tf.cast(tf.clip_by_value(tf.image.resize(image, (h, w)), 0, 255), tf.uint8)
        out = tmp / f"{f.stem}-{h}x{w}.{'jpg' if encode is tf.io.encode_jpeg else 'png'}"
        out.write_bytes(encode(image).numpy())
        resized.append(out)
    cifar = imagenet_dir.parent / "cifar10-mini" / "test" / "cat" / "0000.jpg"
    return files[:4] + resized + ([cifar] if cifar.exists() else [])


def run_fresh_client(export_, files, tmp_path):
    out = tmp_path / "served.npz"
    env = {**os.environ, "PYTHONPATH": ""}
    done = subprocess.run(
        [sys.executable, str(CLIENT), str(export_.folder), str(out), *map(str, files)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(np.load(out))


@pytest.mark.parametrize("which", ["bvlc_export", "chm_export"])
def test_served_probabilities_equal_the_keras_model(which, request, request_files, tmp_path):
    """A fresh process, TensorFlow only, real images: the graph's preprocessing is the library's."""
    export_ = request.getfixturevalue(which)
    files = request_files
    served = run_fresh_client(export_, files, tmp_path)
    want = exports.reference_probabilities(export_, files)
    assert want.max() > 0.05  # a peaked softmax: preprocessing mistakes would show
    np.testing.assert_allclose(served["bytes_probabilities"], want, rtol=0, atol=1e-5)
    # predict_images is called once per image: compare with batches of one.
    want_one = exports.reference_probabilities(export_, files, one_by_one=True)
    np.testing.assert_allclose(served["images_probabilities"], want_one, rtol=0, atol=1e-5)
    order = np.argsort(-want, axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(served["bytes_top_k_indices"], order)
    np.testing.assert_allclose(served["bytes_top_k_scores"], np.take_along_axis(want, order, 1),
                               atol=1e-5)  # fmt: skip
    labels = [[export_.labels[i] for i in row] for row in order]
    assert served["bytes_top_k_labels"].astype(str).tolist() == labels


def test_the_labels_are_the_embedded_class_names(bvlc_export, chm_export):
    assert bvlc_export.labels[:2] == ["tench", "goldfish"]
    assert chm_export.labels == exports.CIFAR_NAMES
    pb = (chm_export.folder / "saved_model.pb").read_bytes()
    assert all(name.encode() in pb for name in exports.CIFAR_NAMES)


@pytest.mark.parametrize("which", ["bvlc_export", "chm_export"])
def test_variables_are_stored_once_and_nothing_forces_xla(which, request):
    export_ = request.getfixturevalue(which)
    model_bytes = 4 * (60_965_224 - 4097 * 1000 + 4097 * export_.meta["classes"])
    stored = sum(p.stat().st_size for p in (export_.folder / "variables").iterdir())
    assert stored <= 1.05 * model_bytes, (stored, model_bytes)
    assert b"_XlaMustCompile" not in (export_.folder / "saved_model.pb").read_bytes()


@pytest.fixture(scope="module")
def serving_default(bvlc_export):
    return tf.saved_model.load(str(bvlc_export.folder)).signatures["serving_default"]


def _png(height, width):
    return tf.io.encode_png(tf.zeros((height, width, 3), tf.uint8)).numpy()


def _bad_requests(good):
    return {
        "not an image": (b"this is a text file, not a picture\n", "not a JPEG, PNG, GIF, BMP"),
        "empty string": (b"", "empty string, not an image"),
        "truncated JPEG": (good[: len(good) // 2], "truncated JPEG"),
        "1x1 image": (_png(1, 1), "the image is 1x1 pixels; at least 16x16"),
        "a huge PNG header": (
            _png(20, 20)[:16] + (60000).to_bytes(4, "big") * 2 + _png(20, 20)[24:],
            "the image is 60000x60000 pixels; each side may be at most 16384",
        ),
    }


@pytest.mark.parametrize("case", ["not an image", "empty string", "truncated JPEG", "1x1 image",
                                  "a huge PNG header"])  # fmt: skip
def test_bad_requests_are_invalid_argument_and_the_next_one_works(case, serving_default,
                                                                   imagenet_dir):  # fmt: skip
    good = sample_files(imagenet_dir, 1)[0].read_bytes()
    data, message = _bad_requests(good)[case]
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        serving_default(image_bytes=tf.constant([good, data]))
    assert "image_bytes[1]: " in info.value.message and message in info.value.message
    out = serving_default(image_bytes=tf.constant([good]))
    assert out["probabilities"].shape == (1, 1000)


def test_small_and_odd_images_are_served(serving_default):
    """CIFAR-sized, grey, RGBA, GIF and BMP inputs all decode to RGB and get an answer."""
    pixels = tf.random.uniform((32, 48, 4), 0, 255, tf.int32, seed=1)
    pixels = tf.cast(pixels, tf.uint8)
    images = [
        tf.io.encode_jpeg(pixels[..., :3]).numpy(),
        tf.io.encode_png(pixels[..., :1]).numpy(),
        tf.io.encode_png(pixels).numpy(),
        tf.io.encode_jpeg(pixels[..., :1]).numpy(),
    ]
    out = serving_default(image_bytes=tf.constant(images))
    np.testing.assert_allclose(out["probabilities"].numpy().sum(axis=1), 1.0, atol=1e-5)
    # RGBA and grey PNGs must agree with their RGB content as decode_image(channels=3) gives it.
    rgb = tf.io.encode_png(pixels[..., :3]).numpy()
    np.testing.assert_allclose(serving_default(image_bytes=tf.constant([rgb]))["probabilities"],
                               out["probabilities"][2:3], atol=1e-6)  # fmt: skip


def test_an_existing_version_is_refused_without_overwrite(bvlc_export, tmp_path):
    result = CliRunner().invoke(cli, ["export", "--weights", str(bvlc_export.weights),
                                      "--output", str(bvlc_export.folder)])  # fmt: skip
    assert result.exit_code == 2
    assert (
        "already exists; pass --overwrite" in result.output
        and str(bvlc_export.folder) in result.output
    )
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_overwrite_replaces_and_leaves_no_temporary_folders(tmp_path):
    weights = exports.make_weights(tmp_path / "m.weights.h5", "bvlc", classes=10)
    folder = tmp_path / "models" / "m" / "3"
    folder.mkdir(parents=True)
    (folder / "stale.txt").write_text("old version")
    exports.export(weights, folder, "--overwrite", "--top-k", "3")
    assert sorted(os.listdir(folder.parent)) == ["3"]
    assert not (folder / "stale.txt").exists() and (folder / "saved_model.pb").exists()
    assert oct(folder.stat().st_mode & 0o777) == oct(0o777 & ~_umask())
    out = tf.saved_model.load(str(folder)).signatures["predict_images"](
        images=tf.zeros([2, 256, 300, 3])
    )
    assert out["top_k_labels"].shape == (2, 3) and out["probabilities"].shape == (2, 10)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_failed_export_leaves_nothing_under_the_final_name(tmp_path, monkeypatch):
    from alexnet_keras.serving import export as export_module

    weights = exports.make_weights(tmp_path / "m.weights.h5", "bvlc", classes=10)

    def crash(module, folder, record, **_):
        (folder / "saved_model.pb").write_bytes(b"half")
        raise OSError(28, "No space left on device", str(folder))

    monkeypatch.setattr(export_module, "_write_saved_model", crash)
    output = tmp_path / "models" / "m" / "1"
    result = CliRunner().invoke(cli, ["export", "--weights", str(weights), "--output", str(output)])
    assert result.exit_code == 1
    assert f"{output}: cannot be written: the disk is full; it needs about 228 MB" in result.output
    assert os.listdir(tmp_path / "models" / "m") == []


@pytest.mark.parametrize(
    "args, message",
    [
        (["--top-k", "11"], "--top-k must be 1..10"),
        (["--input-size", "200"], "200 is not in the range 224<=x<=227"),
        (["--format", "pb"], "'pb' is not one of"),
    ],
)
def test_bad_export_arguments_exit_2(args, message, tmp_path):
    weights = tmp_path / "m.weights.h5"
    if args[0] == "--top-k":
        exports.make_weights(weights, "bvlc", classes=10)
    else:
        weights.write_bytes(b"")
    result = CliRunner().invoke(cli, ["export", "--weights", str(weights),
                                      "--output", str(tmp_path / "out" / "1"), *args])  # fmt: skip
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "out" / "1").exists()


def test_bad_weights_exit_2_naming_the_file(tmp_path):
    bad = tmp_path / "bad.weights.h5"
    bad.write_bytes(b"not hdf5")
    result = CliRunner().invoke(cli, ["export", "--weights", str(bad),
                                      "--output", str(tmp_path / "out" / "1")])  # fmt: skip
    assert (
        result.exit_code == 2 and str(bad) in result.output and "not an HDF5 file" in result.output
    )
    assert not (tmp_path / "out").exists()


def test_a_mean_image_fixes_the_input_size(chm_export, tmp_path):
    args = ["--weights", chm_export.weights, "--output", tmp_path / "m" / "1", "--input-size", 227]
    result = CliRunner().invoke(cli, ["export", *map(str, args)])
    assert result.exit_code == 2 and str(chm_export.weights) in result.output
    assert "mean image is 224x224" in result.output and not (tmp_path / "m").exists()


def test_a_version_folder_that_is_not_a_number_is_noted(tmp_path):
    weights = exports.make_weights(tmp_path / "m.weights.h5", "bvlc", classes=10)
    result = exports.export(weights, tmp_path / "alexnet" / "latest")
    assert "is not a number" in result.output


@pytest.mark.slow
def test_tflite_matches_the_keras_model(tmp_path, imagenet_dir):
    """LiteRT: pixels at shorter side 256 in; crop, colour, mean, softmax, top-k inside."""
    import alexnet_keras
    from alexnet_keras.serving.lite import interpreter

    pytest.importorskip("ai_edge_litert", reason="the LiteRT runtime: pip install ai-edge-litert")
    weights = exports.make_weights(tmp_path / "c.weights.h5", "chm2012", 10)
    meta = alexnet_keras.weights.read_metadata(weights)
    export_ = exports.Export(weights, tmp_path / "m.tflite", meta, exports.CIFAR_NAMES)
    result = exports.export(export_.weights, export_.folder, "--format", "tflite")
    assert "LiteRT" in result.output
    files = sample_files(imagenet_dir, 3)
    want = exports.reference_probabilities(export_, files)
    assert "ran on LiteRT (ai-edge-litert)" in result.output
    # ai-edge-litert's interpreter, the runtime TensorFlow points LiteRT users to (not tf.lite).
    runner = interpreter(export_.folder).get_signature_runner("serving_default")
    for f, row in zip(files, want, strict=True):  # the runner resizes its input per call
        image = alexnet_keras.load_image(f)
        out = runner(images=image[None])
        np.testing.assert_allclose(out["probabilities"][0], row, atol=1e-5)
        top = np.argsort(-row, kind="stable")[:5]
        assert out["top_k_labels"][0].astype(str).tolist() == [exports.CIFAR_NAMES[i] for i in top]

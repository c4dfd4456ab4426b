"""`export --format onnx`: ONNX Runtime (and OpenVINO) against the float64 numpy references.

The weights are random, drawn in the source's own layout and calibrated on the
real images so every layer and the LRNs work in their real range
(`tests/reference.py`), then mapped to Keras and exported through the CLI.
The ONNX model gets the pixels `load_image` gives for the weights' protocol;
the crop, colour order and mean are in its graph.
"""

import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

import alexnet_keras
from alexnet_keras import weights as weights_file
from alexnet_keras.cuda_convnet.chm2012_mapper import chm2012_arrays
from tests import exports
from tests import reference as ref
from tests.test_reference import CAFFE_TARGETS, CHM_TARGETS, caffe_to_keras, rel_err

ort = pytest.importorskip("onnxruntime", reason="needs onnxruntime (pip install '.[onnx]')")
onnx = pytest.importorskip("onnx", reason="needs onnx (pip install '.[onnx]')")

TOLERANCE = 1e-4
CLASSES = 10


def _files(imagenet_dir, n=3):
    files = sorted(imagenet_dir.glob("*/*.JPEG"))
    return [files[i] for i in np.linspace(0, len(files) - 1, n).astype(int)]


def _softmax(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _caffe_case(tmp, files, classes=CLASSES):
    """bvlc weights from Caffe-layout params, and the Caffe reference's probabilities."""
    pixels = np.stack([alexnet_keras.load_image(f, protocol="bvlc") for f in files])
    crops = np.stack([alexnet_keras.center_crop(p, 227) for p in pixels]).astype(np.float64)
    x = (crops[..., ::-1] - np.array(alexnet_keras.variants.IMAGENET_MEAN_BGR)).transpose(
        0, 3, 1, 2
    )
    params = ref.random_caffe_params(np.random.default_rng(3), classes=classes)
    want = ref.caffe_forward(x, params, calibrate=CAFFE_TARGETS)
    model = alexnet_keras.AlexNet(variant="bvlc", classes=classes)
    for name, values in caffe_to_keras(params).items():
        model.get_layer(name).set_weights(values)
    names = exports.CIFAR_NAMES if classes == CLASSES else None
    path = weights_file.save_weights(model, tmp / "bvlc.weights.h5", variant="bvlc",
                                     class_names=names, protocol="bvlc")  # fmt: skip
    return path, pixels, _softmax(want)


def _chm_case(tmp, files):
    """chm2012 weights with a per-pixel mean image, and the cuda-convnet reference's."""
    pixels = [alexnet_keras.load_image(f) for f in files]  # shorter side 256: widths differ
    mean = np.random.default_rng(4).uniform(90, 150, (224, 224, 3)).round(3)
    xs = [(alexnet_keras.center_crop(p, 224) - mean).transpose(2, 0, 1) for p in pixels]
    layers = ref.random_chm_layers(np.random.default_rng(5), classes=CLASSES)
    want = [ref.cuda_convnet_forward(xs[0].astype(np.float64), layers, calibrate=CHM_TARGETS)]
    want += [ref.cuda_convnet_forward(x.astype(np.float64), layers) for x in xs[1:]]
    model = alexnet_keras.AlexNet(variant="chm2012", classes=CLASSES)
    for name, values in chm2012_arrays(layers)[0].items():
        model.get_layer(name).set_weights(values)
    path = weights_file.save_weights(
        model, tmp / "chm.weights.h5", variant="chm2012", class_names=exports.CIFAR_NAMES,
        preprocessing={"color_order": "RGB", "mean": mean.tolist()}, protocol="shorter-side",
    )  # fmt: skip
    return path, pixels, _softmax(np.stack(want))


@pytest.fixture(scope="module", params=["bvlc", "chm2012"])
def case(request, imagenet_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"onnx-{request.param}")
    make = _caffe_case if request.param == "bvlc" else _chm_case
    weights, pixels, want = make(tmp, _files(imagenet_dir))
    output = tmp / "alexnet.onnx"
    result = exports.export(weights, output, "--format", "onnx", "--top-k", "3")
    return dict(variant=request.param, weights=weights, pixels=pixels, want=want,
                output=output, report=result.output)  # fmt: skip


def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def run_each(sess, pixels):
    """One run per image (shorter-side images differ in width); outputs stacked."""
    runs = [sess.run(None, {"images": p[None].astype(np.float32)}) for p in pixels]
    names = [o.name for o in sess.get_outputs()]
    return {n: np.concatenate([r[i] for r in runs]) for i, n in enumerate(names)}


def test_onnxruntime_matches_the_float64_reference(case):
    got = run_each(session(case["output"]), case["pixels"])
    want = case["want"]
    assert want.max() > 0.3  # a peaked softmax: a preprocessing mistake would show
    err = rel_err(got["probabilities"], want)
    log_err = rel_err(np.log(got["probabilities"]), np.log(want))
    print(f"\n{case['variant']}: ONNX Runtime vs float64 reference: {err:.2e} ({log_err:.2e} log)")
    assert err <= TOLERANCE and log_err <= TOLERANCE
    order = np.argsort(-want, axis=1, kind="stable")[:, :3]
    np.testing.assert_array_equal(got["top_k_indices"], order)
    assert got["top_k_indices"].dtype == np.int32
    labels = [[exports.CIFAR_NAMES[i] for i in row] for row in order]
    assert got["top_k_labels"].astype(str).tolist() == labels
    np.testing.assert_allclose(got["top_k_scores"], np.take_along_axis(want, order, 1), atol=1e-5)


@pytest.mark.slow
def test_the_full_size_1000_class_model_matches_caffe(imagenet_dir, tmp_path):
    weights, pixels, want = _caffe_case(tmp_path, _files(imagenet_dir, 4), classes=1000)
    output = tmp_path / "alexnet.onnx"
    exports.export(weights, output, "--format", "onnx")
    got = session(output).run(None, {"images": np.stack(pixels).astype(np.float32)})
    assert rel_err(got[0], want) <= TOLERANCE
    assert got[3][:, 0].tolist() == [alexnet_keras.variants.imagenet_classes()[i][1]
                                     for i in want.argmax(1)]  # fmt: skip


def test_a_planted_colour_order_bug_fails_the_comparison(case):
    """The same graph written for the other colour order is far from the reference."""
    from alexnet_keras.serving.onnx_model import onnx_model

    meta = weights_file.read_metadata(case["weights"])
    model = alexnet_keras.AlexNet(weights=case["weights"])
    preprocessing = (
        meta["preprocessing"] or alexnet_keras.variants.get_variant("bvlc").preprocessing
    )
    preprocessing = dict(preprocessing)
    preprocessing["color_order"] = "RGB" if preprocessing["color_order"] == "BGR" else "BGR"
    proto = onnx_model(model, variant=meta["variant"], preprocessing=preprocessing,
                       labels=exports.CIFAR_NAMES, top_k=3, metadata={})  # fmt: skip
    got = run_each(ort.InferenceSession(proto.SerializeToString()), case["pixels"])
    assert rel_err(got["probabilities"], case["want"]) > 100 * TOLERANCE


def test_the_metadata_travels_in_the_file(case):
    model = onnx.load(str(case["output"]), load_external_data=False)
    props = {p.key: p.value for p in model.metadata_props}
    assert props["variant"] == case["variant"]
    assert props["input_size"] == ("227" if case["variant"] == "bvlc" else "224")
    assert props["protocol"] == ("bvlc" if case["variant"] == "bvlc" else "shorter-side")
    assert props["labels"].startswith('["airplane", "automobile"')
    assert "source" in props and "color_order" in props
    assert "ONNX model" in case["report"] and "not in the ONNX graph" in case["report"]
    onnx.checker.check_model(str(case["output"]))


def test_openvino_reads_the_model_and_agrees(case):
    ov = pytest.importorskip("openvino", reason="needs openvino (pip install '.[openvino]')")
    core = ov.Core()
    # f32: OpenVINO runs in bf16 by default on CPUs with AVX-512 BF16 / AMX.
    compiled = core.compile_model(core.read_model(str(case["output"])), "CPU",
                                  {"INFERENCE_PRECISION_HINT": "f32"})  # fmt: skip
    got = np.concatenate(
        [compiled({"images": p[None].astype(np.float32)})[compiled.output("probabilities")]
         for p in case["pixels"]]
    )  # fmt: skip
    assert rel_err(got, case["want"]) <= TOLERANCE


@pytest.fixture(scope="module")
def bvlc_session(imagenet_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("onnx-bad")
    weights = exports.make_weights(tmp / "m.weights.h5", "bvlc", classes=CLASSES)
    exports.export(weights, tmp / "m.onnx", "--format", "onnx")
    return session(tmp / "m.onnx")


@pytest.mark.parametrize(
    "shape, dtype, message",
    [
        ((1, 256, 256, 3), np.float64, "Unexpected input data type"),
        ((1, 256, 256, 3), np.uint8, "Unexpected input data type"),
        ((256, 256, 3), np.float32, "Invalid rank"),
        ((1, 256, 256, 4), np.float32, "invalid dimensions"),
        ((2, 200, 300, 3), np.float32, "images: height and width must be at least 227"),
        ((1, 256, 226, 3), np.float32, "images: height and width must be at least 227"),
    ],
)
def test_bad_requests_fail_with_a_clear_error(bvlc_session, shape, dtype, message):
    with pytest.raises(Exception) as info:
        bvlc_session.run(None, {"images": np.zeros(shape, dtype)})
    assert message in str(info.value)
    out = bvlc_session.run(["probabilities"], {"images": np.zeros((2, 256, 300, 3), np.float32)})
    assert out[0].shape == (2, CLASSES)


def _cli(*args):
    exe = os.path.join(os.path.dirname(sys.executable), "alexnet-keras")
    exe = exe if os.path.exists(exe) else shutil.which("alexnet-keras")
    return subprocess.run([exe, "export", *map(str, args)], capture_output=True, text=True,
                          timeout=600)  # fmt: skip


@pytest.fixture(scope="module")
def small_weights(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("onnx-cli")
    return exports.make_weights(tmp / "m.weights.h5", "bvlc", classes=CLASSES)


@pytest.mark.parametrize(
    "name, extra, message",
    [
        ("m.onnx.tmp", [], "--format onnx writes a file ending in .onnx"),
        ("m.onnx", ["--quantize", "int8"], "--quantize int8 needs --calibration"),
        ("m.onnx", ["--quantize", "fp8"], "'fp8' is not one of"),
        ("m", ["--format", "saved_model", "--quantize", "int8", "--calibration", "x"],
         "--quantize applies to --format onnx"),
        ("m.onnx", ["--quantize", "bf16", "--calibration", "/no/such/folder"], "/no/such/folder"),
        ("m.onnx", ["--force"], "--force goes with --quantize"),
        ("m.onnx", ["--calibration", "x"], "--calibration goes with --quantize"),
    ],
)  # fmt: skip
def test_bad_export_requests_are_one_line_and_exit_2(small_weights, tmp_path, name, extra,
                                                     message):  # fmt: skip
    from click.testing import CliRunner

    from alexnet_keras.cli import cli

    args = ["--weights", small_weights, "--output", tmp_path / name]
    args += [*(["--format", "onnx"] if "--format" not in extra else []), *extra]
    result = CliRunner().invoke(cli, ["export", *map(str, args)])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], lines
    assert os.listdir(tmp_path) == []


def test_an_existing_file_is_refused_then_overwritten(small_weights, tmp_path):
    output = tmp_path / "m.onnx"
    output.write_bytes(b"old")
    done = _cli("--weights", small_weights, "--output", output, "--format", "onnx")
    assert done.returncode == 2 and "already exists; pass --overwrite" in done.stderr
    assert output.read_bytes() == b"old"
    exports.export(small_weights, output, "--format", "onnx", "--overwrite")
    assert session(output).get_outputs()[0].name == "probabilities"
    assert sorted(os.listdir(tmp_path)) == ["m.onnx"]


def test_a_missing_extra_names_the_install(small_weights, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from alexnet_keras.cli import cli

    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    output = tmp_path / "m.onnx"
    result = CliRunner().invoke(cli, ["export", "--weights", str(small_weights), "--output",
                                      str(output), "--format", "onnx"])  # fmt: skip
    assert result.exit_code == 2
    assert "pip install 'alexnet-keras[onnx]'" in result.output
    assert not pathlib.Path(output).exists()

"""`alexnet-keras convert` on hostile and broken input: exit 2, one line, no output file.

Most cases use tiny arrays: the checks run in a fixed order (the file, the
layer names, then each layer's shapes and values, conv1 first), so a broken
file fails before its size matters. The full-size parity runs are in
`test_convert.py`.
"""

import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from alexnet_keras.cli import cli
from tests import caffe_files
from tests.npy_files import Py2Pickle, npy_header_object, write_py2_npy

SHAPES = {  # Keras / caffe-tensorflow layout
    "conv1": (11, 11, 3, 96), "conv2": (5, 5, 48, 256), "conv3": (3, 3, 256, 384),
    "conv4": (3, 3, 192, 384), "conv5": (3, 3, 192, 256), "fc6": (9216, 4096),
    "fc7": (4096, 4096), "fc8": (4096, 1000),
}  # fmt: skip


def tiny(names=SHAPES, **override):
    """AlexNet-named arrays: conv1 full size, the rest 1-element placeholders."""
    out = {}
    for name in names:
        shape = SHAPES.get(name, (3, 3, 3, 8)) if name == "conv1" else (1,) * 2
        out[name] = [np.zeros(shape, np.float32), np.zeros(shape[-1], np.float32)]
    out.update(override)
    return out


def full():
    return {n: [np.zeros(s, np.float32), np.zeros(s[-1], np.float32)] for n, s in SHAPES.items()}


def run(args, tmp_path):
    out = tmp_path / "out" / "x.weights.h5"
    result = CliRunner().invoke(cli, ["convert", *map(str, args), "-o", str(out)])
    return result, out


def assert_user_error(result, out, *fragments):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert not out.exists()
    assert not out.parent.exists() or not any(out.parent.iterdir())  # no temp files either


def npy(tmp_path, arrays, name="bvlc_alexnet.npy"):
    return write_py2_npy(tmp_path / name, arrays)


@pytest.fixture(scope="module")
def good_npy_bytes():
    from tests.npy_files import py2_npy_bytes

    return py2_npy_bytes(tiny())


def test_missing_path(tmp_path):
    assert_user_error(*run([tmp_path / "nope.npy"], tmp_path), "nope.npy", "no such file")


def test_directory(tmp_path):
    assert_user_error(*run([tmp_path], tmp_path), str(tmp_path), "directory")


@pytest.mark.parametrize("suffix", [".npy", ".caffemodel"])
def test_empty_file(tmp_path, suffix):
    (tmp_path / f"e{suffix}").touch()
    assert_user_error(*run([tmp_path / f"e{suffix}"], tmp_path), f"e{suffix}", "empty")


@pytest.mark.parametrize("cut", [3, 9, 80, 200, 5000, -100, -1])
def test_truncated_npy(tmp_path, good_npy_bytes, cut):
    path = tmp_path / "cut.npy"
    path.write_bytes(good_npy_bytes[:cut])
    result, out = run([path], tmp_path)
    assert_user_error(result, out, "cut.npy")
    assert any(w in result.stderr for w in ("truncated", "not a valid .npy", "not a .npy"))


@pytest.mark.parametrize("frac", [0.001, 0.3, 0.5, 0.99])
def test_truncated_caffemodel(tmp_path, frac):
    layers = caffe_files.alexnet_layers(_caffe_tiny())
    data = caffe_files.caffemodel_bytes(layers)
    path = tmp_path / "cut.caffemodel"
    path.write_bytes(data[: int(len(data) * frac)])
    result, out = run([path], tmp_path)
    assert_user_error(result, out, "cut.caffemodel")


def _caffe_tiny(**override):
    out = {n: [w.T if w.ndim == 2 else w.transpose(3, 2, 0, 1), b] for n, (w, b) in tiny().items()}
    out.update(override)
    return out


def test_vgg16_shaped_npy(tmp_path):
    names = [f"conv{i}_{j}" for i, n in [(1, 2), (2, 2), (3, 3), (4, 3), (5, 3)] for j in
             range(1, n + 1)] + ["fc6", "fc7", "fc8"]  # fmt: skip
    path = npy(
        tmp_path, {n: [np.zeros((1, 1), np.float32), np.zeros(1, np.float32)] for n in names}
    )
    assert_user_error(*run([path], tmp_path), "bvlc_alexnet.npy", "not an AlexNet", "VGG")


def test_missing_fc8(tmp_path):
    arrays = tiny()
    del arrays["fc8"]
    assert_user_error(*run([npy(tmp_path, arrays)], tmp_path), "missing layer(s) fc8")


def test_extra_layer(tmp_path):
    arrays = tiny(conv6=[np.zeros((1, 1), np.float32), np.zeros(1, np.float32)])
    assert_user_error(*run([npy(tmp_path, arrays)], tmp_path), "unexpected layer(s) conv6")


def test_wrong_conv2_group_split(tmp_path):
    arrays = tiny(conv2=[np.zeros((5, 5, 96, 256), np.float32), np.zeros(256, np.float32)])
    result, out = run([npy(tmp_path, arrays)], tmp_path)
    assert_user_error(
        result, out, "conv2", "(5, 5, 48, 256)", "Received: (5, 5, 96, 256)", "groups"
    )


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_nan_or_inf_in_a_weight(tmp_path, value):
    conv1 = np.zeros(SHAPES["conv1"], np.float32)
    conv1[3, 4, 1, 7] = value
    arrays = tiny(conv1=[conv1, np.zeros(96, np.float32)])
    result, out = run([npy(tmp_path, arrays)], tmp_path)
    assert_user_error(result, out, "conv1", "NaN" if np.isnan(value) else "Inf")


def test_caffemodel_blob_length_disagrees_with_shape(tmp_path):
    params = _caffe_tiny()
    w = params["conv1"][0]
    params["conv1"] = [(w.shape, w.ravel()[:-1]), params["conv1"][1]]
    path = tmp_path / "short.caffemodel"
    caffe_files.write_caffemodel(path, caffe_files.alexnet_layers(params))
    assert_user_error(*run([path], tmp_path), "short.caffemodel", "conv1", "34847")


def test_prototxt_that_disagrees(tmp_path):
    path = tmp_path / "m.caffemodel"
    caffe_files.write_caffemodel(path, caffe_files.alexnet_layers(_caffe_tiny()))
    proto_layers = caffe_files.alexnet_layers(None)
    for layer in proto_layers:
        if layer["name"] == "conv2":
            layer["params"]["group"] = 1
    caffe_files.write_prototxt(tmp_path / "deploy.prototxt", proto_layers)
    result, out = run([path, "--prototxt", tmp_path / "deploy.prototxt"], tmp_path)
    assert_user_error(result, out, "deploy.prototxt", "conv2", "group")


def test_variant_chm2012_is_refused_for_npy():
    result = CliRunner().invoke(cli, ["convert", "x.npy", "--variant", "chm2012"])
    assert result.exit_code == 2 and "chm2012" in result.stderr


HOSTILE = {
    "os.system": b"cos\nsystem\n(V{cmd}\ntR.",
    "posix.system": b"cposix\nsystem\n(V{cmd}\ntR.",
    "builtins.eval": b"cbuiltins\neval\n(V__import__('os').system('{cmd}')\ntR.",
    "subprocess.Popen": b"csubprocess\nPopen\n((lVtouch\naV{marker}\natR.",
    "non-numpy global": b"cnumpy.testing\nassert_equal\n(I1\nI1\ntR.",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_npy_is_refused_and_runs_nothing(tmp_path, name):
    marker = tmp_path / "pwned"
    payload = HOSTILE[name].replace(b"{cmd}", f"touch {marker}".encode())
    payload = payload.replace(b"{marker}", str(marker).encode())
    # Inside a real-looking file: the dict's conv1 entry is the payload.
    good = Py2Pickle().save({"fc8": [np.zeros(2, np.float32)]}).finish()
    path = tmp_path / "evil.npy"
    path.write_bytes(npy_header_object() + payload if name != "posix.system" else
                     npy_header_object() + good[:-1] + b"0" + payload)  # fmt: skip
    result, out = run([path], tmp_path)
    assert_user_error(result, out, "evil.npy", "unsafe pickle")
    assert not marker.exists()


def test_errors_reach_the_terminal_without_a_traceback(tmp_path):
    """The real console script, not the in-process runner."""
    path = npy(tmp_path, tiny(conv2=[np.zeros((5, 5, 96, 256), np.float32), np.zeros(256)]))
    out = tmp_path / "o.weights.h5"
    command = [sys.executable, "-m", "alexnet_keras", "convert", str(path), "-o", str(out)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert proc.stdout == "" and not out.exists()


def test_release_name_offline_exits_1_with_what_to_do(tmp_path, monkeypatch):
    from tests.loopback import closed_port

    monkeypatch.setenv("ALEXNET_KERAS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ALEXNET_KERAS_MIRROR", f"http://127.0.0.1:{closed_port()}/")
    result = CliRunner().invoke(cli, ["convert", "bvlc_alexnet"])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Download http://dl.caffe.berkeleyvision.org/" in lines[0]
    assert "sha1 9116a64c0fbe4459d18f4bb6b56d647b63920377" in lines[0]


@pytest.mark.parametrize("option", ["--verify-images", "--class-names", "--prototxt"])
def test_a_missing_side_file_is_refused_before_converting(tmp_path, option):
    path = tmp_path / "m.caffemodel"
    caffe_files.write_caffemodel(path, caffe_files.alexnet_layers(_caffe_tiny()))
    result, out = run([path, option, tmp_path / "missing"], tmp_path)
    assert_user_error(result, out, "missing")


def test_an_unverifiable_file_never_becomes_the_release(tmp_path, monkeypatch):
    """bvlc_alexnet.npy has no published checksum: its conversion is not `bvlc_alexnet`."""
    from alexnet_keras import registry
    from alexnet_keras.caffe.convert import _default_output

    monkeypatch.setenv("ALEXNET_KERAS_HOME", str(tmp_path / "home"))
    path = tmp_path / "bvlc_alexnet.npy"
    out = _default_output(path, None, {"sha256": "ab" * 32}, "keras")
    assert out.name == "bvlc_alexnet-unverified-abababab.weights.h5"
    out.parent.mkdir(parents=True)
    out.touch()
    assert registry.converted_path("bvlc_alexnet") is None

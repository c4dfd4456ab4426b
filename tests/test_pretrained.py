"""The one resolver (`alexnet_keras.pretrained`): every entry point gets the same file.

A real-format `.caffemodel` (full-size AlexNet with a 10-class fc8, so a
CIFAR-10 folder evaluates against it) is served by the loopback mirror as
`bvlc_alexnet`'s file, with the manifest entry patched to its digests.
`AlexNet(weights=NAME)`, `finetune`, `predict`, `evaluate`, `export` and
`convert NAME` must all use the one converted file, and all fail the same
way when the release cannot be fetched. `finetune` and `export` are stopped
right after the resolver returns (what follows is theirs, and slow; their
own tests run it with weights files), `predict` runs to the end.
"""

import hashlib
import shutil
import types

import numpy as np
import pytest
from click.testing import CliRunner

import alexnet_keras
from alexnet_keras import pretrained, registry
from alexnet_keras.caffe import convert as caffe_convert
from alexnet_keras.cli import cli
from tests import caffe_files
from tests.conftest import SHARED, require
from tests.loopback import closed_port, serve
from tests.test_registry import _fake_manifest

NAME = "bvlc_alexnet"
MINI = SHARED / "data" / "cifar10-mini"
CAFFE_SHAPES = {
    "conv1": (96, 3, 11, 11), "conv2": (256, 48, 5, 5), "conv3": (384, 256, 3, 3),
    "conv4": (384, 192, 3, 3), "conv5": (256, 192, 3, 3), "fc6": (4096, 9216),
    "fc7": (4096, 4096), "fc8": (10, 4096),
}  # fmt: skip


pytestmark = pytest.mark.usefixtures("home")  # tests/conftest.py: an empty cache each


@pytest.fixture(scope="module")
def release_body():
    """The bytes of a full-size 10-class AlexNet `.caffemodel` (small random weights)."""
    rng = np.random.default_rng(11)
    params = {
        name: [rng.standard_normal(shape, np.float32) * 0.01, np.zeros(shape[0], np.float32)]
        for name, shape in CAFFE_SHAPES.items()
    }
    return caffe_files.caffemodel_bytes(caffe_files.alexnet_layers(params))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """An image folder with one CIFAR-10 image per class in train/ and test/."""
    root = tmp_path_factory.mktemp("tiny")
    for split in ("train", "test"):
        for folder in sorted((require(MINI) / split).iterdir()):
            (root / split / folder.name).mkdir(parents=True)
            shutil.copy(sorted(folder.iterdir())[0], root / split / folder.name)
    return root


def _commands(weights, tiny, tmp_path):
    image = next((tiny / "test").iterdir()) / "0000.jpg"
    return {
        "finetune": ["finetune", "--dataset", f"folder:{tiny}", "--weights", weights,
                     "--model-dir", str(tmp_path / "run")],
        "export": ["export", "--weights", weights, "--output", str(tmp_path / "export" / "1")],
        "predict": ["predict", "--weights", weights, str(image)],
        "evaluate": ["evaluate", "--weights", weights, "--dataset", f"folder:{tiny}",
                     "--output", str(tmp_path / "confusion.csv")],
        "convert": ["convert", weights],
    }  # fmt: skip


class _Resolved(list):
    """Each `(weights, path)` that `pretrained.resolve` returned; `stop` ends the command there."""

    def __init__(self, monkeypatch):
        super().__init__()
        self.stop = False
        real = pretrained.resolve

        def spy(weights, **kwargs):
            path = real(weights, **kwargs)
            self.append((weights, path))
            if self.stop:
                raise ValueError(f"stopped after resolving {weights}")
            return path

        monkeypatch.setattr(pretrained, "resolve", spy)


def test_every_entry_point_gets_the_same_file(
    server, home, monkeypatch, release_body, tiny, tmp_path
):
    entry = _fake_manifest(monkeypatch, release_body)
    serve(server, "bvlc_alexnet.caffemodel", release_body)
    want = home / f"bvlc_alexnet-{entry['sha256'][:8]}.weights.h5"
    commands, runner = _commands(NAME, tiny, tmp_path), CliRunner()
    resolved = _Resolved(monkeypatch)
    resolved.stop = True
    # finetune used to refuse a release that was not converted yet: it fetches it now.
    for name in ("finetune", "export", "evaluate"):
        result = runner.invoke(cli, commands[name])
        assert result.exit_code == 2, result.output
        assert result.stderr.strip().splitlines()[-1] == f"Error: stopped after resolving {NAME}"
        assert resolved[-1] == (NAME, want), name
    assert server.requests == ["/mirror/bvlc_alexnet.caffemodel"]
    assert want.is_file() and not (tmp_path / "export").exists()
    assert not (tmp_path / "confusion.csv").exists()
    written = want.stat().st_mtime_ns

    resolved.stop = False
    model = alexnet_keras.AlexNet(weights=NAME, classifier_activation=None)
    assert model.output_shape == (None, 10)
    fc8 = alexnet_keras.weights.read_arrays(want)["fc8"][0]
    np.testing.assert_array_equal(model.get_layer("fc8").get_weights()[0], fc8)
    before = len(resolved)
    result = runner.invoke(cli, commands["predict"])
    assert result.exit_code == 0 and "0000.jpg" in result.stdout, result.output
    assert (NAME, want) in resolved[before:]
    result = runner.invoke(cli, commands["convert"])
    assert result.exit_code == 0 and result.stdout == f"{NAME}: already converted: {want}\n"
    # The same bytes under another name are the release: its cached file, no conversion.
    copy = tmp_path / "copy.caffemodel"
    copy.write_bytes(release_body)
    assert pretrained.resolve(copy) == want and pretrained.resolve(want) == want
    assert {path for _, path in resolved} == {want}
    assert len(server.requests) == 1 and want.stat().st_mtime_ns == written


def test_offline_every_entry_point_exits_1_with_the_same_message(home, monkeypatch, tiny, tmp_path):
    monkeypatch.setenv("ALEXNET_KERAS_MIRROR", f"http://127.0.0.1:{closed_port()}/")
    lines = {}
    for name, args in _commands(NAME, tiny, tmp_path).items():
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 1, (name, result.output)
        assert "Traceback" not in result.output
        lines[name] = result.stderr.strip().splitlines()[-1]
    with pytest.raises(registry.OfflineError) as info:
        alexnet_keras.AlexNet(weights=NAME)
    lines["AlexNet"] = "Error: " + " ".join(str(info.value).split())
    assert len(set(lines.values())) == 1, lines
    line = lines["AlexNet"]
    assert f"{NAME} is not in the cache and could not be downloaded" in line
    assert "Download http://dl.caffe.berkeleyvision.org/bvlc_alexnet.caffemodel (sha1 " in line
    assert f"put it at {home / 'downloads' / 'bvlc_alexnet.caffemodel'}" in line
    assert not (home / "downloads").exists() or not any((home / "downloads").iterdir())


def test_an_unknown_name_exits_2_everywhere_naming_it(tiny, tmp_path):
    for name, args in _commands("alexnet_v9", tiny, tmp_path).items():
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, (name, result.output)
        line = result.stderr.strip().splitlines()[-1]
        assert line.startswith("Error: alexnet_v9: no such"), (name, line)
    with pytest.raises(ValueError, match=r"^alexnet_v9: no such weights file or known release"):
        alexnet_keras.AlexNet(weights="alexnet_v9")


def _fake_converter(monkeypatch):
    """Stands in for `convert_file` (these files are not real): writes a marker, counts calls."""
    calls = []

    def convert_file(src, output, digests=None):
        # The resolver hands over the hashes it took for the cache name: one read, not two.
        assert digests["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
        calls.append(src)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_bytes(b"converted")
        return types.SimpleNamespace(output=str(output))

    monkeypatch.setattr(caffe_convert, "convert_file", convert_file)
    return calls


@pytest.mark.parametrize("filename", ["mine.caffemodel", "mine.npy", "bvlc_alexnet.npy"])
def test_a_legacy_file_is_converted_once_into_the_cache(home, tmp_path, monkeypatch, filename):
    calls = _fake_converter(monkeypatch)
    data = b"\x0a\x05AlexN" + filename.encode()
    src = tmp_path / filename
    src.write_bytes(data)
    out = pretrained.resolve(src)
    # `convert`'s naming; a file named like a release but not verified never becomes it.
    stem = "bvlc_alexnet-unverified" if filename.startswith("bvlc") else "mine"
    assert out == home / f"{stem}-{hashlib.sha256(data).hexdigest()[:8]}.weights.h5"
    assert calls == [src] and out.read_bytes() == b"converted"
    assert pretrained.resolve(str(src)) == out and len(calls) == 1
    assert registry.converted_path(NAME) is None


def test_a_release_uses_a_verified_download_without_the_network(home, monkeypatch):
    body = b"\x0a\x07a release"
    entry = _fake_manifest(monkeypatch, body)
    monkeypatch.setenv("ALEXNET_KERAS_MIRROR", f"http://127.0.0.1:{closed_port()}/")
    calls = _fake_converter(monkeypatch)
    (home / "downloads").mkdir(parents=True)
    (home / "downloads" / "bvlc_alexnet.caffemodel").write_bytes(body)
    out = pretrained.resolve(NAME, progress=False)
    assert out == home / f"bvlc_alexnet-{entry['sha256'][:8]}.weights.h5"
    assert calls == [home / "downloads" / "bvlc_alexnet.caffemodel"]
    assert pretrained.resolve(NAME) == out and len(calls) == 1  # now the cached file


def test_weights_files_none_and_bad_types(tmp_path):
    path = tmp_path / "any.weights.h5"
    path.write_bytes(b"x")
    assert pretrained.resolve(path) == path and pretrained.resolve(str(path).encode()) == path
    assert pretrained.resolve(None) is None
    with pytest.raises(ValueError, match=r"`weights` must be None.*Received: weights=3"):
        pretrained.resolve(3)
    with pytest.raises(ValueError, match=r"no such weights file or known release \(known: bvlc"):
        pretrained.resolve(tmp_path / "bvlc_alexnet")  # a path is never a release name

"""Shared fixtures. `../shared` holds real data; tests that need it skip without it."""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import alexnet_keras  # noqa: E402,F401  (sets the TF environment before TF loads)

SHARED = pathlib.Path(
    os.environ.get("ALEXNET_KERAS_SHARED", pathlib.Path(__file__).resolve().parents[2] / "shared")
)
IMAGENET_SAMPLE = SHARED / "data" / "imagenet-sample"


ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_script(relative_path):
    """Imports a repository script (benchmarks/, converters/, examples/) as a module."""
    import importlib.util

    path = ROOT / relative_path
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def require(path):
    if not path.exists():
        pytest.skip(f"needs {path} (the project's shared data folder)")
    return path


@pytest.fixture(scope="session")
def imagenet_dir():
    return require(IMAGENET_SAMPLE)


@pytest.fixture(scope="session")
def imagenet_images(imagenet_dir):
    """Two real ILSVRC-2012 images (tench and a later class), shorter side 256, RGB 0..255."""
    files = sorted(imagenet_dir.glob("*/*.JPEG"))
    picks = [files[0], files[len(files) // 2]]
    return [alexnet_keras.load_image(p, size=256)[:256, :256] for p in picks]


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty cache of its own (`ALEXNET_KERAS_HOME`), no mirror, no proxy for loopback."""
    monkeypatch.setenv("ALEXNET_KERAS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ALEXNET_KERAS_MIRROR", raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return tmp_path / "home"


@pytest.fixture(scope="session")
def _loopback():
    from tests import loopback

    server, thread = loopback.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def server(_loopback, monkeypatch):
    """A loopback HTTP server serving as `ALEXNET_KERAS_MIRROR`; fresh routes and counts."""
    _loopback.routes.clear()
    _loopback.requests.clear()
    _loopback.url = f"http://127.0.0.1:{_loopback.server_address[1]}/mirror"
    monkeypatch.setenv("ALEXNET_KERAS_MIRROR", _loopback.url + "/")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return _loopback

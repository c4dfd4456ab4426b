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

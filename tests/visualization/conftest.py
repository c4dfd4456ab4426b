"""Weights files to draw: a bvlc AlexNet and a CHM cfg net, each with its initial weights."""

import numpy as np
import pytest

from tests.conftest import SHARED, require

EXAMPLE_LAYERS = SHARED / "data" / "chm-release" / "example-layers"


@pytest.fixture(scope="package")
def bvlc_weights(tmp_path_factory):
    """A bvlc AlexNet's initial weights (BGR, two towers), as `save_weights` writes them."""
    import alexnet_keras
    from alexnet_keras.weights import save_weights

    path = tmp_path_factory.mktemp("bvlc") / "bvlc.weights.h5"
    return save_weights(alexnet_keras.AlexNet(), path, variant="bvlc")


@pytest.fixture(scope="package")
def cfg_weights(tmp_path_factory):
    """The CHM release's layers-18pct net (CIFAR-10, three convs), as `train` writes it."""
    from alexnet_keras.cuda_convnet.cfg_net import read_net
    from alexnet_keras.cuda_convnet.cfg_weights import save_mirror_weights

    net = read_net(require(EXAMPLE_LAYERS / "layers-18pct.cfg"),
                   EXAMPLE_LAYERS / "layer-params-18pct.cfg")  # fmt: skip
    path = tmp_path_factory.mktemp("cfg") / "18pct.weights.h5"
    return save_mirror_weights(net, {}, path)


def png_pixels(path):
    """The PNG's pixels as a float array `(H, W, channels)` in 0..1."""
    from matplotlib.image import imread

    return np.asarray(imread(path))


def assert_a_picture(path, min_size=(100, 400)):
    """A PNG at least `min_size` (height, width) pixels, and not blank."""
    assert path.read_bytes()[:4] == b"\x89PNG"
    pixels = png_pixels(path)
    assert pixels.shape[0] >= min_size[0] and pixels.shape[1] >= min_size[1], pixels.shape
    assert pixels[..., :3].var() > 0.01, "the picture is blank"
    return pixels

"""`show filters`' picture: each kernel in its cell, the towers as blocks, the colours RGB."""

import numpy as np
import pytest

from alexnet_keras.cuda_convnet.cfg_net import read_net
from alexnet_keras.visualization import filters
from alexnet_keras.visualization.filters import draw_filters, filter_grid, read_kernels
from alexnet_keras.weights import read_arrays
from tests.conftest import SHARED, require
from tests.visualization.conftest import assert_a_picture

pytest.importorskip("matplotlib")


def check_positions(grid, cells, kernel, groups):
    """Every cell holds its kernel (scaled as shownet.py), and group g's block is above g+1's."""
    low, high = kernel.min(), kernel.max()
    scaled = (kernel - low) / (high - low)
    per_group = kernel.shape[3] // groups
    for cell in cells:
        patch = grid[cell.top : cell.top + cell.size, cell.left : cell.left + cell.size]
        if cell.channel is None:
            want = scaled[..., cell.filter]
        else:
            want = scaled[:, :, cell.channel, cell.filter, None]
        np.testing.assert_allclose(patch, np.broadcast_to(want, patch.shape), atol=1e-6,
                                   err_msg=f"cell of filter {cell.filter}")  # fmt: skip
        assert cell.group == cell.filter // per_group, cell
    for g in range(groups - 1):
        bottom = max(c.top + c.size for c in cells if c.group == g)
        top = min(c.top for c in cells if c.group == g + 1)
        assert (grid[bottom + 1 : top - 1] == 1.0).all(), "no white band between the towers"


@pytest.fixture
def conv1(rng):
    return rng.normal(size=(11, 11, 3, 96)).astype(np.float32)


def test_conv1_is_two_blocks_of_48_gpu1_on_top(conv1):
    grid, cells = filter_grid(conv1, groups=2)
    assert grid.shape == (78, 193, 3) and len(cells) == 96
    check_positions(grid, cells, conv1, groups=2)
    assert {c.filter for c in cells if c.top < 37} == set(range(48))  # the top block: GPU 1


def test_a_swapped_group_is_caught(conv1, monkeypatch):
    # Planted in the input: the towers' kernels exchanged.
    swapped = np.concatenate([conv1[..., 48:], conv1[..., :48]], axis=-1)
    grid, cells = filter_grid(swapped, groups=2)
    with pytest.raises(AssertionError, match="cell of filter 0"):
        check_positions(grid, cells, conv1, groups=2)
    # Planted in the code: the groups drawn in the wrong order.
    real = filters.shown_filters
    monkeypatch.setattr(filters, "shown_filters", lambda *a: real(*a)[::-1])
    grid, cells = filter_grid(conv1, groups=2)
    with pytest.raises(AssertionError):
        check_positions(grid, cells, conv1, groups=2)


def test_deeper_layers_are_rows_of_grey_channel_slices_capped(rng):
    kernel = rng.normal(size=(5, 5, 48, 256)).astype(np.float32)
    grid, cells = filter_grid(kernel, groups=2, colour=False, max_filters=8, max_channels=6)
    assert sorted({c.filter for c in cells}) == [0, 1, 2, 3, 128, 129, 130, 131]
    assert sorted({c.channel for c in cells}) == list(range(6))
    assert grid.shape == (2 * (1 + 4 * 6) + 4, 1 + 6 * 6, 3)
    check_positions(grid, cells, kernel, groups=2)
    assert (grid[..., 0] == grid[..., 2]).all()  # grey


def test_bvlc_conv1_is_read_as_rgb_in_two_towers(bvlc_weights):
    kernels = read_kernels(bvlc_weights)
    stored = read_arrays(bvlc_weights)["conv1"][0]
    assert kernels.layer == "conv1" and kernels.towers == 2 and kernels.first
    np.testing.assert_array_equal(kernels.kernel, stored[:, :, ::-1, :])  # Caffe's BGR reversed
    assert kernels.layers == ("conv1", "conv2", "conv3", "conv4", "conv5")
    assert read_kernels(bvlc_weights, "conv3").towers == 2  # conv4 reads it in two groups


@pytest.mark.parametrize("layer", [None, "conv2"])
def test_bvlc_pictures(bvlc_weights, tmp_path, layer):
    kernels = read_kernels(bvlc_weights, layer)
    path = draw_filters(kernels, tmp_path / "f.png")
    pixels = assert_a_picture(path)
    if layer is None:
        assert pixels.shape[:2] == (78 * 4 + 64, 193 * 4 + 68)  # 4 screen pixels a pixel
    else:
        assert np.allclose(pixels[100:-20, 100:-20, 0], pixels[100:-20, 100:-20, 2], atol=0.02)


@pytest.mark.parametrize("layer", [None, "conv2", "conv3"])
def test_cfg_net_pictures(cfg_weights, tmp_path, layer):
    kernels = read_kernels(cfg_weights, layer)
    stored = read_arrays(cfg_weights, kind="any")[kernels.layer][0]
    np.testing.assert_array_equal(kernels.kernel, stored)  # cuda-convnet's RGB, as it is
    assert kernels.layers == ("conv1", "conv2", "conv3") and kernels.towers == 1
    assert kernels.first == (layer is None)
    assert_a_picture(draw_filters(kernels, tmp_path / "f.png"))


def test_two_gpu_cfg_layers_are_one_layer_of_two_towers():
    net = read_net(require(SHARED / "data" / "chm-release" / "layers" / "layers-145.cfg"))
    convs = tuple(x.name for x in net.layers if x.type == "conv")
    assert filters._cfg_names(convs) == ("conv1", "conv2", "conv3", "conv4", "conv5")
    assert filters.tower_layers(convs, "conv3") == ("conv3a", "conv3b")


def test_unknown_layer_and_non_weights_files(cfg_weights):
    with pytest.raises(ValueError, match=r"no conv layer 'fc10' \(its conv layers: conv1, conv2"):
        read_kernels(cfg_weights, "fc10")
    with pytest.raises(ValueError, match="not an HDF5 file"):
        read_kernels(require(SHARED / "data" / "chm-release" / "LICENSE"))


@pytest.mark.parametrize("variant, order, reversed_", [
    ("chm2012", "RGB", False), ("caffenet", "BGR", True), ("bvlc", "BGR", True),
])  # fmt: skip
def test_the_colour_order_comes_from_the_metadata(monkeypatch, rng, tmp_path, variant, order,
                                                  reversed_):  # fmt: skip
    import alexnet_keras.weights as weights

    kernel = rng.normal(size=(11, 11, 3, 96)).astype(np.float32)
    meta = {"variant": variant, "preprocessing": {"color_order": order}}
    monkeypatch.setattr(weights, "read_metadata", lambda path, kind="alexnet": meta)
    monkeypatch.setattr(weights, "read_arrays", lambda path, kind="alexnet": {"conv1": [kernel]})
    (tmp_path / "w.weights.h5").write_bytes(b"read by the patched reader")
    got = read_kernels(tmp_path / "w.weights.h5").kernel
    np.testing.assert_array_equal(got, kernel[:, :, ::-1] if reversed_ else kernel)


def test_non_finite_kernels_are_one_line(monkeypatch, tmp_path):
    import alexnet_keras.weights as weights

    kernel = np.full((5, 5, 3, 8), np.nan, np.float32)
    path = tmp_path / "w.weights.h5"
    path.write_bytes(b"read by the patched reader")
    monkeypatch.setattr(weights, "read_metadata", lambda path, kind="alexnet": {"variant": "bvlc"})
    monkeypatch.setattr(weights, "read_arrays", lambda path, kind="alexnet": {"conv1": [kernel]})
    with pytest.raises(ValueError, match="w.weights.h5: layer 'conv1' holds NaN or infinite"):
        read_kernels(path)

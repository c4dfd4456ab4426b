"""The two cuda-convnet eras: the average pool's divisor (2011: the full window; 2012: the
clipped window), how a cfg net's era is decided, and where the choice is recorded.

The references are `tests/reference.py`'s `cc_pool` / `cc_avg_pool_backward`, written from
r331-r333's `AvgPooler(_sizeX*_sizeX)` / `convLocalAvgUndo` and CHM's `AvgPooler()`.
"""

import numpy as np
import pytest
import tensorflow as tf

from alexnet_keras.cuda_convnet import era
from alexnet_keras.cuda_convnet.cfg_net import read_net
from alexnet_keras.cuda_convnet.cfg_text import CfgText
from alexnet_keras.cuda_convnet.layers import ConvnetPool2D
from tests import reference as ref
from tests.conftest import SHARED, require

CHM = SHARED / "data" / "chm-release"
# 18pct/19pct/80sec's pools: 3x3, stride 2, ceil mode: 32 -> 16 -> 8 -> 4, the last
# window of each row and column clipped; plus a window starting before the image.
GEOMETRIES = [(32, 3, 2, 0, 16), (8, 3, 2, 0, 4), (9, 3, 2, -1, 5), (9, 3, 3, 0, 3)]


def _keras_pool(x, divisor, geometry):
    _, size, stride, start, outputs = geometry
    layer = ConvnetPool2D("avg", size, stride, start, outputs, divisor=divisor)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = layer(xt)
        loss = tf.reduce_sum(y * tf.constant(np.arange(y.shape.num_elements(), dtype=np.float32)
                                             .reshape(y.shape) % 7 - 3))  # fmt: skip
    return y.numpy(), tape.gradient(loss, xt).numpy(), layer


@pytest.mark.parametrize("divisor", ["window", "clipped"])
@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_each_divisor_matches_its_reference_forward_and_backward(rng, divisor, geometry):
    h, size, stride, start, outputs = geometry
    x = rng.standard_normal((2, h, h, 3)).astype(np.float32)
    y, dx, layer = _keras_pool(x, divisor, geometry)
    weights = (np.arange(y.size, dtype=np.float32).reshape(y.shape) % 7 - 3).astype(np.float64)
    for n in range(2):
        chw = x[n].transpose(2, 0, 1).astype(np.float64)
        want = ref.cc_pool(chw, "avg", size, stride, start, outputs, divisor)
        np.testing.assert_allclose(y[n].transpose(2, 0, 1), want, rtol=1e-5, atol=1e-5)
        grad = weights[n].transpose(2, 0, 1)
        want_dx = ref.cc_avg_pool_backward(grad, h, size, stride, start, divisor)
        np.testing.assert_allclose(dx[n].transpose(2, 0, 1), want_dx, rtol=1e-5, atol=1e-5)
    clone = ConvnetPool2D.from_config(layer.get_config())
    assert clone.divisor == divisor
    np.testing.assert_array_equal(clone(x).numpy(), y)


def test_the_divisors_differ_exactly_on_clipped_windows(rng):
    x = rng.uniform(1, 2, (1, 32, 32, 2)).astype(np.float32)
    window, _, _ = _keras_pool(x, "window", GEOMETRIES[0])
    clipped, _, _ = _keras_pool(x, "clipped", GEOMETRIES[0])
    inside = (slice(None), slice(0, 15), slice(0, 15))
    np.testing.assert_allclose(window[inside], clipped[inside], rtol=1e-6)
    # The last row and column keep 2 of their 3 pixels: 6/9 and 4/9 of the clipped average.
    np.testing.assert_allclose(window[0, 15, :15], clipped[0, 15, :15] * 6 / 9, rtol=1e-5)
    np.testing.assert_allclose(window[0, 15, 15], clipped[0, 15, 15] * 4 / 9, rtol=1e-5)
    # 18pct's fc reads a 4x4 map: 7 of its 16 positions come from clipped windows.
    small, _, _ = _keras_pool(x[:, :8, :8], "window", GEOMETRIES[1])
    big, _, _ = _keras_pool(x[:, :8, :8], "clipped", GEOMETRIES[1])
    assert np.sum(~np.isclose(small, big).all(axis=-1)) == 7


def test_a_planted_divisor_bug_fails_the_reference(rng):
    """`window` computed as the clipped divisor must not pass the reference check."""
    x = rng.standard_normal((1, 8, 8, 1)).astype(np.float32)
    y, _, _ = _keras_pool(x, "clipped", GEOMETRIES[1])
    want = ref.cc_pool(x[0].transpose(2, 0, 1).astype(np.float64), "avg", 3, 2, 0, 4, "window")
    assert not np.allclose(y[0].transpose(2, 0, 1), want, rtol=1e-3, atol=1e-3)


def test_an_unknown_divisor_is_refused():
    with pytest.raises(ValueError, match="`divisor` must be one of"):
        ConvnetPool2D("avg", 3, 2, divisor="area")


@pytest.mark.parametrize(
    "defs, semantics, why",
    [
        ("example-layers/layers-80sec.cfg", "2011", "r331-r333's layers-80sec.cfg"),
        ("example-layers/layers-18pct.cfg", "2011", "rnorm1, rnorm2 use cuda-convnet 1 syntax"),
        ("example-layers/layers-19pct.cfg", "2011", "r331-r333's layers-19pct.cfg"),
        ("layers-cifar/layers-18pct.cfg", "2012", "CHM, r556+"),
        ("layers/layers-145.cfg", "2012", None),  # no average pool: no note
    ],
)
def test_the_era_of_each_release_file(defs, semantics, why):
    net = read_net(require(CHM) / defs)
    assert net.semantics == semantics
    assert net.pool_divisor == ("window" if semantics == "2011" else "clipped")
    notes = " ".join(net.notes)
    if why is None:
        assert "semantics" not in notes
    else:
        assert why in notes


def test_the_80sec_text_is_recognised_whitespace_aside_and_not_when_edited():
    text = (require(CHM) / "example-layers/layers-80sec.cfg").read_text()
    spaced = "\n\n".join("  " + line + " \t" for line in text.splitlines())
    assert read_net(CfgText("copy.cfg", spaced)).semantics == "2011"
    edited = text.replace("initW=0.0001", "initW=0.0002", 1)
    net = read_net(CfgText("mine.cfg", edited))
    assert net.semantics == "2012"
    assert read_net(CfgText("mine.cfg", edited), semantics="2011").semantics == "2011"
    assert "(given)" in " ".join(read_net(CfgText("m.cfg", edited), semantics="2011").notes)


def test_a_bad_semantics_value_is_refused():
    with pytest.raises(ValueError, match="semantics must be one of"):
        era.decide("", given="2013")


def test_the_built_model_uses_the_era():
    from alexnet_keras.cuda_convnet.cfg_model import build_model

    defs = require(CHM) / "example-layers/layers-80sec.cfg"
    for semantics, divisor in (("2011", "window"), ("2012", "clipped"), (None, "window")):
        model = build_model(read_net(defs, semantics=semantics))
        assert model.get_layer("pool2").divisor == divisor


def test_the_weights_file_records_the_era_and_rebuilds_it(tmp_path):
    from alexnet_keras.cuda_convnet.cfg_mapper import mirror_arrays
    from alexnet_keras.cuda_convnet.cfg_weights import load_mirror, save_mirror_weights
    from alexnet_keras.weights import read_metadata

    folder = require(CHM) / "example-layers"
    rng = np.random.default_rng(0)
    for semantics in ("2011", "2012"):
        net = read_net(folder / "layers-80sec.cfg", folder / "layer-params-80sec.cfg",
                       semantics=semantics)  # fmt: skip
        layers = {x.name: {"weights": [rng.standard_normal(s) * 0.01 for s in x.weight_shapes[:-1]],
                           "biases": np.zeros(x.weight_shapes[-1])}
                  for x in net.layers if x.weight_shapes}  # fmt: skip
        path = tmp_path / f"{semantics}.weights.h5"
        save_mirror_weights(net, mirror_arrays(net, layers), path)
        assert read_metadata(path, kind="any")["convnet_semantics"] == semantics
        model, meta = load_mirror(path)
        want = "window" if semantics == "2011" else "clipped"
        assert model.get_layer("pool3").divisor == want


def test_chm_summary_and_convert_take_the_option():
    from click.testing import CliRunner

    from alexnet_keras.cli import cli

    defs = str(require(CHM) / "example-layers/layers-80sec.cfg")
    out = CliRunner().invoke(cli, ["chm", "summary", defs]).output
    assert "cuda-convnet 2011 semantics" in out.splitlines()[0]
    out = CliRunner().invoke(cli, ["chm", "summary", defs, "--convnet-semantics", "2012"]).output
    assert "2012 semantics (given)" in out.splitlines()[0]
    result = CliRunner().invoke(cli, ["convert", "x.npy", "--convnet-semantics", "2011"])
    assert result.exit_code == 2
    assert "--convnet-semantics are for --format cuda-convnet" in result.output


def test_the_train_config_records_the_decided_era():
    from alexnet_keras.training.config import resolve

    folder = require(CHM) / "example-layers"
    given = {"dataset": "cifar10", "chm_layers": str(folder / "layers-80sec.cfg"),
             "chm_params": str(folder / "layer-params-80sec.cfg")}  # fmt: skip
    decided = resolve("train", given)
    assert decided.convnet_semantics == "2011" and decided.chm_net.semantics == "2011"
    forced = resolve("train", {**given, "convnet_semantics": "2012"})
    assert forced.chm_net.semantics == "2012" and forced.model_dir != decided.model_dir
    with pytest.raises(ValueError, match="only for a --chm-layers run"):
        resolve("train", {"dataset": "cifar10", "convnet_semantics": "2011"})

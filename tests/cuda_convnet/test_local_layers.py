"""cuda-convnet `local` and `cnorm` layers against numpy transcriptions of the kernels
(`tests/cuda_convnet/local_kernels.py`), the conv-local nets of the release built,
imported from a checkpoint and trained."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from alexnet_keras.cuda_convnet import update_rule
from alexnet_keras.cuda_convnet.cfg_mapper import mirror_arrays
from alexnet_keras.cuda_convnet.cfg_model import build_model
from alexnet_keras.cuda_convnet.cfg_net import read_net
from alexnet_keras.cuda_convnet.cfg_text import CfgText
from alexnet_keras.cuda_convnet.checkpoint import layer_arrays, read_checkpoint
from alexnet_keras.cuda_convnet.local_layers import ContrastNormalization, ConvnetLocal2D
from alexnet_keras.cuda_convnet.reference import forward, logits_layer
from tests import convnet_files as cf
from tests.conftest import SHARED, require
from tests.cuda_convnet.local_kernels import (
    modules,
    np_cnorm,
    np_cnorm_grad,
    np_local,
    np_local_grads,
)

CHM = SHARED / "data" / "chm-release"
_EX, _CIFAR = "example-layers/", "layers-cifar/"
LOCAL_NETS = {  # def file -> params file
    _EX + "layers-conv-local-12pct.cfg": _EX + "layer-params-conv-local-12pct.cfg",
    _EX + "layers-conv-local-13pct.cfg": _EX + "layer-params-conv-local-13pct.cfg",
    _CIFAR + "layers-conv-local-13pct.cfg": _CIFAR + "layer-params-conv-local-13pct-noisylr.cfg",
}


# ---------------------------------------------------------------------------------------------
# the Keras layers against them


def _nhwc(a):
    return np.ascontiguousarray(a.transpose(3, 1, 2, 0)).astype(np.float32)


def _chwn(a):
    return np.asarray(a, np.float64).transpose(3, 1, 2, 0)


def _keras_local(w, b, mods, fs, filters):
    """The test's own statement of ConvnetLocal2D's layout: (module, y*fs+x, c, f), (my, mx, f)."""
    kernel = w.reshape(mods * mods, -1, fs * fs, filters).transpose(0, 2, 1, 3)
    return [kernel.astype(np.float32), b.reshape(filters, mods, mods).transpose(1, 2, 0)]


@pytest.mark.parametrize(
    "size, channels, filters, fs, stride, pad, groups",
    [(6, 3, 4, 3, 1, 1, 1), (7, 2, 3, 3, 2, 0, 1), (7, 4, 6, 4, 2, 2, 2)],
    ids=["pad1", "stride2-ceil", "groups2-even-filter"],
)
def test_local_forward_and_gradients_match_the_kernels(size, channels, filters, fs, stride, pad,
                                                       groups):  # fmt: skip
    rng = np.random.default_rng(size + fs)
    mods = modules(size, fs, stride, pad)
    images = rng.standard_normal((channels, size, size, 2))
    w = rng.standard_normal((mods * mods * channels // groups * fs * fs, filters))
    b = rng.standard_normal((filters * mods * mods, 1))
    layer = ConvnetLocal2D(filters, fs, stride, pad, groups)
    x = tf.constant(_nhwc(images))
    layer.build(x.shape)
    layer.set_weights(_keras_local(w, b, mods, fs, filters))
    dy = rng.standard_normal((filters, mods, mods, 2))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(y * _nhwc(dy))
    gx, gk, gb = tape.gradient(loss, [x, layer.kernel, layer.bias])
    np.testing.assert_allclose(_chwn(y), np_local(images, w, b, fs, stride, pad, groups, filters),
                               rtol=1e-4, atol=1e-4)  # fmt: skip
    want_x, want_w, want_b = np_local_grads(images, w, dy, fs, stride, pad, groups, filters)
    np.testing.assert_allclose(_chwn(gx), want_x, rtol=1e-4, atol=1e-4)
    got_k, got_b = _keras_local(want_w, want_b, mods, fs, filters)
    np.testing.assert_allclose(gk.numpy(), got_k, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(gb.numpy(), got_b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("size, divisor", [(3, "clipped"), (4, "window"), (5, "clipped")])
def test_cnorm_forward_and_cuda_convnets_gradient(size, divisor):
    rng = np.random.default_rng(size)
    images = rng.standard_normal((3, 7, 7, 2)) * 2
    scale, power, full = 2.0, 0.75, divisor == "window"
    x = tf.constant(_nhwc(images))
    layer = ContrastNormalization(size, scale, power, divisor)
    dy = rng.standard_normal(images.shape)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(y * _nhwc(dy))
    want, _, _ = np_cnorm(images, size, scale, power, full)
    np.testing.assert_allclose(_chwn(y), want, rtol=1e-5, atol=1e-5)
    grad = _chwn(tape.gradient(loss, x))
    np.testing.assert_allclose(grad, np_cnorm_grad(images, dy, size, scale, power, full),
                               rtol=1e-4, atol=1e-5)  # fmt: skip
    # It is not the exact derivative (the mean is held constant): a central difference differs.
    eps, idx = 1e-6, (0, 3, 3, 0)
    bumped = [images.copy(), images.copy()]
    bumped[0][idx] += eps
    bumped[1][idx] -= eps
    exact = sum(
        (np_cnorm(im, size, scale, power, full)[0] * dy).sum() * sign
        for im, sign in zip(bumped, (1, -1), strict=True)
    ) / (2 * eps)
    assert abs(exact - grad[idx]) > 1e-3 * abs(exact)


def test_the_two_cnorm_divisors_differ_only_near_the_border():
    images = np.random.default_rng(0).standard_normal((1, 6, 6, 1)).astype(np.float32) + 3
    x = _nhwc(images)
    clipped = ContrastNormalization(3, 5.0, 0.75, "clipped")(x).numpy()
    window = ContrastNormalization(3, 5.0, 0.75, "window")(x).numpy()
    # Rows/columns 0 and 5 have clipped windows, and their neighbours' sums read them.
    assert np.abs(clipped - window)[0, 0, 0, 0] > 1e-3
    np.testing.assert_allclose(clipped[0, 2:4, 2:4], window[0, 2:4, 2:4], rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# the conv-local nets of the release


def _net(defs, size=24):
    chm = require(CHM)
    return read_net(chm / defs, chm / LOCAL_NETS[defs], image_size=size)


@pytest.mark.parametrize("defs", sorted(LOCAL_NETS))
def test_conv_local_nets_build(defs):
    net = _net(defs)
    model = build_model(net)
    assert model.count_params() == net.param_count
    assert isinstance(model.get_layer("local3"), ConvnetLocal2D)
    assert model.get_layer("local4").output.shape[1:] == (6, 6, 32)  # 24 -> 12 -> 6
    assert model.output_shape == (None, 10)


def test_a_conv_local_checkpoint_imports_with_the_references_logits(tmp_path):
    net = _net("example-layers/layers-conv-local-13pct.cfg")
    path = cf.write_checkpoint(tmp_path / "13pct", cf.layers_from_net(net, seed=13))
    checkpoint = read_checkpoint(path)
    layers = {
        n: layer_arrays(checkpoint, n) for n in ("conv1", "conv2", "local3", "local4", "fc10")
    }
    model = build_model(net)
    for name, values in mirror_arrays(net, layers, str(path)).items():
        model.get_layer(name).set_weights(values)
    images = np.random.default_rng(1).standard_normal((3, 24, 24, 2)) * 40
    acts = forward(net, images, layers)
    logits = keras.Model(model.input, model.get_layer("fc10").output)(_nhwc(images)).numpy()
    want = acts[logits_layer(net)]
    assert np.abs(logits - want).max() < 1e-4 * np.abs(want).max()
    np.testing.assert_allclose(model(_nhwc(images)).numpy(), acts["probs"], atol=1e-5)


def test_a_conv_local_net_trains_a_step():
    net = _net("example-layers/layers-conv-local-12pct.cfg")
    model, full = update_rule.build(net, 10, seed=0)
    factors = dict(zip((v.path for v in model.trainable_variables),
                       update_rule.gradient_factors(model, net), strict=True))  # fmt: skip
    epsw = net.config["layers"]["local3"]["epsW"][0]
    assert factors["local3/kernel"][0] == pytest.approx(epsw)
    kernel = full.get_layer("local3").get_weights()[0]
    assert abs(kernel.std() - net.layer("local3").params["initW"][0]) < 0.005
    x = np.random.default_rng(2).standard_normal((4, 24, 24, 3)).astype(np.float32) * 30
    labels = np.arange(4)
    with tf.GradientTape() as tape:
        loss = keras.losses.sparse_categorical_crossentropy(labels, model(x), from_logits=True)
    grads = tape.gradient(loss, model.trainable_variables)
    keras.optimizers.SGD(0.01).apply(grads, model.trainable_variables)
    assert np.isfinite(float(tf.reduce_mean(loss)))
    assert not np.array_equal(full.get_layer("local3").get_weights()[0], kernel)


_CNORM_NET = """
[data]
type=data
dataIdx=0
[labels]
type=data
dataIdx=1
[conv1]
type=conv
inputs=data
channels=3
filters=16
padding=1
filterSize=3
neuron=relu
initW=0.1
partialSum=1
[cnorm1]
type=cnorm
inputs=conv1
channels=16
size=5
[fc10]
type=fc
outputs=10
inputs=cnorm1
initW=0.01
[probs]
type=softmax
inputs=fc10
[logprob]
type=cost.logreg
inputs=labels,probs
"""
_CNORM_PARAMS = """
[conv1]
epsW=0.001
epsB=0.002
momW=0.9
momB=0.9
wc=0.004
[cnorm1]
scale=0.1
pow=0.75
[fc10]
epsW=0.001
epsB=0.002
momW=0.9
momB=0.9
wc=0.01
[logprob]
coeff=1
"""


def test_a_cfg_net_with_cnorm_matches_the_reference():
    net = read_net(CfgText("cnorm.cfg", _CNORM_NET), CfgText("cnorm-params.cfg", _CNORM_PARAMS),
                   image_size=8)  # fmt: skip
    model = build_model(net)
    assert isinstance(model.get_layer("cnorm1"), ContrastNormalization)
    layers = cf.layers_from_net(net, seed=5)
    for name, values in mirror_arrays(net, layers).items():
        model.get_layer(name).set_weights(values)
    images = np.random.default_rng(3).standard_normal((3, 8, 8, 2)) * 5
    acts = forward(net, images, layers)
    np.testing.assert_allclose(_chwn(keras.Model(model.input, model.get_layer("cnorm1").output)(
        _nhwc(images))), acts["cnorm1"], rtol=1e-4, atol=1e-4)  # fmt: skip
    want, _, _ = np_cnorm(acts[net.layer("cnorm1").inputs[0]], 5, 0.1, 0.75, full_window=False)
    np.testing.assert_allclose(acts["cnorm1"], want, rtol=1e-10)  # the product's reference too


def test_convert_verifies_a_conv_local_checkpoint_against_the_reference(tmp_path):
    """The product path: `convert --verify-images` runs reference.py's local layers."""
    from click.testing import CliRunner

    from alexnet_keras.cli import cli

    defs = "example-layers/layers-conv-local-13pct.cfg"
    layers_cfg, params_cfg = require(CHM) / defs, CHM / LOCAL_NETS[defs]
    net = read_net(layers_cfg, params_cfg)  # the default image size, as convert reads it
    ckpt = cf.write_checkpoint(tmp_path / "13pct.zip", cf.layers_from_net(net, seed=4),
                               container="zip")  # fmt: skip
    size = net.image_size
    mean = np.random.default_rng(1).uniform(100, 140, (3, size, size)).astype(np.float32)
    meta = cf.write_batches_meta(tmp_path / "batches.meta", mean, [f"c{i}" for i in range(10)])
    args = [ckpt, "--format", "cuda-convnet", "--layers", layers_cfg, "--params", params_cfg,
            "--meta", meta, "--verify-images", require(SHARED / "data" / "cifar10-mini"),
            "--verify-count", "2", "-o", tmp_path / "13pct.weights.h5"]  # fmt: skip
    result = CliRunner().invoke(cli, ["convert", *map(str, args)])
    assert result.exit_code == 0, result.output
    assert "verify   2 images" in result.output and ": PASS" in result.output


def test_a_2011_net_takes_the_full_window_cnorm_mean():
    """`net.semantics` (the era, decided by cfg_net) picks the cnorm mean's divisor."""
    import dataclasses

    net = read_net(CfgText("cnorm.cfg", _CNORM_NET), CfgText("cnorm-params.cfg", _CNORM_PARAMS),
                   image_size=8)  # fmt: skip
    if "semantics" not in {f.name for f in dataclasses.fields(net)}:
        pytest.skip("this cfg_net has no era (net.semantics) yet")
    layers = cf.layers_from_net(net, seed=5)
    images = np.random.default_rng(3).standard_normal((3, 8, 8, 2)) * 5
    got = {}
    for era in ("2011", "2012"):
        dated = dataclasses.replace(net, semantics=era)
        model = build_model(dated)
        assert model.get_layer("cnorm1").divisor == ("window" if era == "2011" else "clipped")
        for name, values in mirror_arrays(dated, layers).items():
            model.get_layer(name).set_weights(values)
        acts = forward(dated, images, layers)
        got[era] = acts["cnorm1"]
        np.testing.assert_allclose(model(_nhwc(images)).numpy(), acts["probs"], atol=1e-5)
    assert np.abs(got["2011"] - got["2012"]).max() > 1e-3


@pytest.mark.slow  # 20 s; test_a_conv_local_net_trains_a_step covers the default suite
def test_train_runs_a_conv_local_net_and_saves_a_loadable_model(tmp_path):
    from click.testing import CliRunner

    from alexnet_keras.cli import cli
    from alexnet_keras.cuda_convnet.cfg_weights import load_mirror

    defs = "example-layers/layers-conv-local-12pct.cfg"
    mini = require(SHARED / "data" / "cifar10-mini")
    args = ["train", "--dataset", f"folder:{mini}", "--chm-layers", str(require(CHM) / defs),
            "--chm-params", str(CHM / LOCAL_NETS[defs]), "--epochs", "1",
            "--steps-per-epoch", "2", "--model-dir", str(tmp_path / "r")]  # fmt: skip
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    model, meta = load_mirror(tmp_path / "r" / "model.weights.h5")
    assert isinstance(model.get_layer("local3"), ConvnetLocal2D)
    assert meta["layers_cfg"]["name"] == "layers-conv-local-12pct.cfg"


def test_both_layers_round_trip_through_a_keras_file_and_run_in_mixed_precision(tmp_path):
    inputs = keras.Input((7, 7, 4))
    x = ConvnetLocal2D(6, 3, stride=2, padding=1, groups=2, bias_initializer="ones")(inputs)
    outputs = ContrastNormalization(3, 2.0, 0.75, divisor="window")(x)
    model = keras.Model(inputs, outputs)
    images = np.random.default_rng(4).standard_normal((2, 7, 7, 4)).astype(np.float32)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.layers[-1].get_config()["divisor"] == "window"
    np.testing.assert_array_equal(loaded(images).numpy(), model(images).numpy())
    half = ConvnetLocal2D(6, 3, padding=1, dtype="mixed_bfloat16")
    y = ContrastNormalization(3, dtype="mixed_bfloat16")(half(images))
    assert y.dtype == "bfloat16" and half.kernel.dtype == "float32"


@pytest.mark.parametrize("pool", ["maxabs", "rand"])
def test_maxabs_and_rand_pooling_stay_refused_by_name(pool):
    pooled = _CNORM_NET.replace("type=cnorm", f"type=pool\npool={pool}\nsizeX=3\nstride=2")
    net = read_net(CfgText("pooled.cfg", pooled.replace("size=5\n", "")),
                   CfgText("p.cfg", _CNORM_PARAMS.replace("scale=0.1\npow=0.75", "")),
                   image_size=8)  # fmt: skip
    with pytest.raises(ValueError, match=f"pooled.cfg: layer 'cnorm1' uses {pool} pooling"):
        build_model(net)


_TWO_INPUT_LOCAL = """
[data]
type=data
dataIdx=0
[labels]
type=data
dataIdx=1
[conv1]
type=conv
inputs=data
channels=3
filters=16
padding=1
filterSize=3
initW=0.1
partialSum=1
[conv2]
type=conv
inputs=data
channels=3
filters=16
padding=2
filterSize=5
initW=0.1
partialSum=1
[local3]
type=local
inputs=conv2,conv1
channels=16,16
filters=16,16
padding=1,1
stride=2,2
filterSize=3,3
initW=0.1,0.2
neuron=relu
[fc10]
type=fc
outputs=10
inputs=local3
initW=0.01
[probs]
type=softmax
inputs=fc10
[logprob]
type=cost.logreg
inputs=labels,probs
"""


def test_a_two_input_local_layer_sums_its_inputs_as_the_reference_does():
    """cuda-convnet sums one unshared matrix per input (`Layer::fprop`); here one kernel over
    the channel concatenation in `inputs=` order, with per-input init and rates."""
    params = _CNORM_PARAMS.replace("[cnorm1]\nscale=0.1\npow=0.75", "")
    local = "[local3]\nepsW=0.001,0.003\nepsB=0.002\nmomW=0.9,0.9\nmomB=0.9\nwc=0.004,0.004\n"
    params = params.replace("[conv1]", "[conv2]" + _CNORM_PARAMS.split("[conv1]")[1].split("[")[0]
                            + local + "[conv1]")  # fmt: skip
    net = read_net(CfgText("two.cfg", _TWO_INPUT_LOCAL), CfgText("two-params.cfg", params),
                   image_size=7)  # fmt: skip
    layers = cf.layers_from_net(net, seed=7)
    model = build_model(net)
    for name, values in mirror_arrays(net, layers).items():
        model.get_layer(name).set_weights(values)
    images = np.random.default_rng(5).standard_normal((3, 7, 7, 2)) * 5
    acts = forward(net, images, layers)
    got = keras.Model(model.input, model.get_layer("local3").output)(_nhwc(images))
    np.testing.assert_allclose(_chwn(got), acts["local3"], rtol=1e-4, atol=1e-4)
    (w2, w1), b = layers["local3"]["weights"], layers["local3"]["biases"]
    want = np_local(acts["conv2"], w2, b, 3, 2, 1, 1, 16)
    want += np_local(acts["conv1"], w1, np.zeros_like(b), 3, 2, 1, 1, 16)
    np.testing.assert_allclose(acts["local3"], want, rtol=1e-10)
    train, _ = update_rule.build(net, 10, seed=0)
    factors = dict(zip((v.path for v in train.trainable_variables),
                       update_rule.gradient_factors(train, net), strict=True))  # fmt: skip
    eps = factors["local3/kernel"][0]
    assert eps.shape == (1, 1, 32, 1) and eps[0, 0, 0, 0] == 0.001 and eps[0, 0, -1, 0] == 0.003

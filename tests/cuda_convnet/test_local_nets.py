"""The conv-local nets of the release (and cfg nets with cnorm or two-input local layers):
built, imported from a cuda-convnet checkpoint with logits equal to `reference.py`, trained."""

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
from tests.cuda_convnet.local_kernels import chwn, nhwc, np_cnorm, np_local

CHM = SHARED / "data" / "chm-release"
_EX, _CIFAR = "example-layers/", "layers-cifar/"
LOCAL_NETS = {  # def file -> params file
    _EX + "layers-conv-local-12pct.cfg": _EX + "layer-params-conv-local-12pct.cfg",
    _EX + "layers-conv-local-13pct.cfg": _EX + "layer-params-conv-local-13pct.cfg",
    _CIFAR + "layers-conv-local-13pct.cfg": _CIFAR + "layer-params-conv-local-13pct-noisylr.cfg",
}


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
    logits = keras.Model(model.input, model.get_layer("fc10").output)(nhwc(images)).numpy()
    want = acts[logits_layer(net)]
    assert np.abs(logits - want).max() < 1e-4 * np.abs(want).max()
    np.testing.assert_allclose(model(nhwc(images)).numpy(), acts["probs"], atol=1e-5)


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
    np.testing.assert_allclose(chwn(keras.Model(model.input, model.get_layer("cnorm1").output)(
        nhwc(images))), acts["cnorm1"], rtol=1e-4, atol=1e-4)  # fmt: skip
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
        np.testing.assert_allclose(model(nhwc(images)).numpy(), acts["probs"], atol=1e-5)
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
    got = keras.Model(model.input, model.get_layer("local3").output)(nhwc(images))
    np.testing.assert_allclose(chwn(got), acts["local3"], rtol=1e-4, atol=1e-4)
    (w2, w1), b = layers["local3"]["weights"], layers["local3"]["biases"]
    want = np_local(acts["conv2"], w2, b, 3, 2, 1, 1, 16)
    want += np_local(acts["conv1"], w1, np.zeros_like(b), 3, 2, 1, 1, 16)
    np.testing.assert_allclose(acts["local3"], want, rtol=1e-10)
    train, _ = update_rule.build(net, 10, seed=0)
    factors = dict(zip((v.path for v in train.trainable_variables),
                       update_rule.gradient_factors(train, net), strict=True))  # fmt: skip
    eps = factors["local3/kernel"][0]
    assert eps.shape == (1, 1, 32, 1) and eps[0, 0, 0, 0] == 0.001 and eps[0, 0, -1, 0] == 0.003

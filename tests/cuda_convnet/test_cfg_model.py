"""Keras models built from CHM cfg files: shapes and counts, refusals, and logits equal to a
numpy cuda-convnet forward pass with the same (cuda-convnet layout) weights."""

import math

import keras
import numpy as np
import pytest

import alexnet_keras
from alexnet_keras.cuda_convnet.cfg_mapper import mirror_arrays
from alexnet_keras.cuda_convnet.cfg_model import build_model
from alexnet_keras.cuda_convnet.cfg_net import read_net
from alexnet_keras.cuda_convnet.layers import ConvnetDropout, ConvnetNeuron, ConvnetPool2D
from tests import reference as ref
from tests.conftest import SHARED, require

CHM = SHARED / "data" / "chm-release"
CIFAR_MINI = SHARED / "data" / "cifar10-mini"
# def file -> params file, for the nets the default suite builds
NETS = {
    "example-layers/layers-80sec.cfg": "example-layers/layer-params-80sec.cfg",
    "example-layers/layers-18pct.cfg": "example-layers/layer-params-18pct.cfg",
    "example-layers/layers-19pct.cfg": "example-layers/layer-params-19pct.cfg",
    "example-layers/layers.gc.cfg": "example-layers/layer-params.gc.cfg",
    "layers-cifar/layers-18pct.cfg": "layers-cifar/layer-params-18pct-noisylr.cfg",
    "layers/layers-145.cfg": "layers/layer-params-145.cfg",
}
# The conv-local nets build too: tests/cuda_convnet/test_local_nets.py.
REFUSED = {
    "layers/layers-178.cfg": "layer 'pool2a' uses rand pooling",
}


def _net(defs, params=None):
    chm = require(CHM)
    return read_net(chm / defs, None if params is None else chm / params)


def _keras_shape(shape):
    return (*shape[1:], shape[0]) if len(shape) == 3 else tuple(shape)


@pytest.mark.parametrize("defs", sorted(NETS))
def test_model_mirrors_the_cfg(defs):
    net = _net(defs, NETS[defs])
    model = build_model(net)
    assert model.count_params() == net.param_count
    for layer in net.layers:
        if layer.type != "data" and not layer.type.startswith("cost."):
            got = tuple(model.get_layer(layer.name).output.shape[1:])
            assert got == _keras_shape(layer.output_shape), layer.name


@pytest.mark.parametrize("defs", sorted(REFUSED))
def test_unsupported_layers_are_refused_by_name(defs):
    net = _net(defs)
    with pytest.raises(ValueError, match=REFUSED[defs]) as info:
        build_model(net)
    assert defs.split("/")[-1] in str(info.value)


def test_norm_layers_need_the_params_file():
    with pytest.raises(ValueError, match="'rnorm1' needs scale and pow"):
        build_model(_net("layers-cifar/layers-18pct.cfg"))


def _random_layers(net, rng):
    layers = {}
    for layer in net.layers:
        if layer.type in ("conv", "fc"):
            *mats, bias = layer.weight_shapes
            fan_in = sum(m[0] for m in mats)
            layers[layer.name] = {
                "inputs": list(layer.inputs),
                "weights": [rng.standard_normal(m) * math.sqrt(2.0 / fan_in) for m in mats],
                "biases": 0.1 * rng.standard_normal(bias),
            }
    return layers


def _logits_model(model, net):
    softmax = next(layer for layer in net.layers if layer.type == "softmax")
    return keras.Model(model.input, model.get_layer(softmax.inputs[0]).output)


def _cifar_images():
    files = sorted(require(CIFAR_MINI).glob("test/*/0000.jpg"))[:4]
    return np.stack([alexnet_keras.load_image(f, size=None) for f in files])


@pytest.mark.parametrize("defs", ["example-layers/layers-80sec.cfg",
                                  "example-layers/layers-18pct.cfg"])  # fmt: skip
def test_cifar_net_logits_equal_numpy_cuda_convnet(defs):
    """Real CIFAR images, random weights in cuda-convnet layout, mapped by mirror_arrays."""
    net = _net(defs, NETS[defs])
    layers = _random_layers(net, np.random.default_rng(7))
    images = _cifar_images() - 120.0
    model = build_model(net)
    for layer_name, arrays in mirror_arrays(net, layers).items():
        model.get_layer(layer_name).set_weights(arrays)
    got = _logits_model(model, net).predict(images, verbose=0)
    softmax = next(layer for layer in net.layers if layer.type == "softmax")
    want = np.stack([ref.cuda_convnet_net_forward(net, im.transpose(2, 0, 1).astype(np.float64),
                                                  layers, net.config)[softmax.inputs[0]]
                     for im in images])  # fmt: skip
    assert want.std() > 0.1
    err = np.abs(got - want).max() / np.abs(want).max()
    assert err < 1e-4, err


def test_145_logits_equal_numpy_cuda_convnet(imagenet_images):
    """layers-145 at 224 on real photos, against the hand-written two-tower reference."""
    from tests.test_reference import CHM_TARGETS

    net = _net("layers/layers-145.cfg", NETS["layers/layers-145.cfg"])
    layers = ref.random_chm_layers(np.random.default_rng(3))
    mean = np.array(alexnet_keras.variants.IMAGENET_MEAN_RGB)
    crops = [alexnet_keras.center_crop(im, 224) - mean for im in imagenet_images]
    xs = [c.transpose(2, 0, 1) for c in crops]
    want = [ref.cuda_convnet_forward(xs[0], layers, calibrate=CHM_TARGETS)]
    want = np.stack(want + [ref.cuda_convnet_forward(x, layers) for x in xs[1:]])
    model = build_model(net)
    for layer_name, arrays in mirror_arrays(net, layers).items():
        model.get_layer(layer_name).set_weights(arrays)
    got = _logits_model(model, net).predict(np.stack(crops), verbose=0)
    err = np.abs(got - want).max() / np.abs(want).max()
    assert err < 1e-4, err


def test_mirror_arrays_errors():
    net = _net("example-layers/layers-80sec.cfg")
    layers = _random_layers(net, np.random.default_rng(0))
    del layers["conv2"]
    with pytest.raises(ValueError, match="no weights for layer 'conv2'"):
        mirror_arrays(net, layers, "ckpt")
    layers = _random_layers(net, np.random.default_rng(0))
    layers["fc64"]["weights"] = [np.zeros((100, 64))]
    with pytest.raises(ValueError, match=r"ckpt: layer 'fc64' input 0 expects a \(1024, 64\)"):
        mirror_arrays(net, layers, "ckpt")
    layers["fc64"]["inputs"] = ["conv3"]
    with pytest.raises(ValueError, match="has weights for inputs"):
        mirror_arrays(net, layers, "ckpt")


def test_pool_clips_windows_and_averages_over_what_is_inside(rng):
    x = rng.standard_normal((2, 9, 9, 3)).astype(np.float32)
    for pool, start, outputs in [("avg", 0, 4), ("max", 0, 4), ("avg", -1, 5), ("max", 1, 3)]:
        layer = ConvnetPool2D(pool, 3, 2, start, outputs)
        want = np.stack([ref.cc_pool(im.transpose(2, 0, 1), pool, 3, 2, start, outputs)
                         .transpose(1, 2, 0) for im in x])  # fmt: skip
        np.testing.assert_allclose(layer(x).numpy(), want, rtol=1e-5, atol=1e-6)
        clone = ConvnetPool2D.from_config(layer.get_config())
        np.testing.assert_array_equal(clone(x).numpy(), layer(x).numpy())


def test_neurons_and_non_inverted_dropout(rng):
    x = rng.standard_normal((4, 1000)).astype(np.float32)
    np.testing.assert_allclose(ConvnetNeuron("tanh", (1.7, 0.66))(x), 1.7 * np.tanh(0.66 * x),
                               rtol=1e-6)  # fmt: skip
    np.testing.assert_allclose(ConvnetNeuron("logistic")(x), 1 / (1 + np.exp(-x)), rtol=1e-6)
    np.testing.assert_array_equal(ConvnetNeuron("abs")(x), np.abs(x))
    drop = ConvnetDropout(0.5, seed=1)
    np.testing.assert_allclose(drop(x), 0.5 * x, rtol=1e-6)
    trained = drop(x, training=True).numpy()
    kept = trained != 0
    assert 0.45 < kept.mean() < 0.55
    np.testing.assert_array_equal(trained[kept], x[kept])  # not scaled by 1/keep
    np.testing.assert_allclose(ConvnetDropout(0.5, enable=False)(x, training=True), 0.5 * x)
    with pytest.raises(ValueError, match="`kind` must be one of"):
        ConvnetNeuron("softplus")


@pytest.mark.slow
def test_every_parsed_def_file_builds_or_is_refused():
    """All 26 definition files the parser reads, each with its same-named params file."""
    built, refused = {}, {}
    for defs in sorted(require(CHM).glob("*/layers*.cfg")):
        try:
            read_net(defs)
        except ValueError:
            continue  # the parser's refusals: tests/test_chm_cfg.py
        params = defs.with_name(defs.name.replace("layers", "layer-params", 1))
        if not params.exists():
            params = next(iter(sorted(defs.parent.glob(params.stem + "*.cfg"))), None)
        if params is None:  # 153-4gpu's runs are named 170-4gpu
            params = defs.with_name("layer-params-170-4gpu.cfg")
        net = read_net(defs, params)
        name = f"{defs.parent.name}/{defs.name}"
        try:
            model = build_model(net)
        except ValueError as e:
            refused[name] = str(e)
            continue
        built[name] = model.count_params()
        assert built[name] == net.param_count, name
        keras.backend.clear_session()
    assert sorted(refused) == sorted(REFUSED) and len(built) == 25, (sorted(built), refused)

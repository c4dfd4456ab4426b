"""The AlexNet builder: the contract of design.md §3-§4, arguments and errors."""

import keras
import numpy as np
import pytest

import alexnet_keras
from alexnet_keras.layers import (
    GroupedConv2D,
    LocalResponseNormalization,
    SpatialResponseNormalization,
)

VARIANTS = ["bvlc", "caffenet", "chm2012"]
PARAMS = 60_965_224

# design.md §4: the weighted layers and their kernel shapes, identical in every variant.
KERNELS = {
    "conv1": (11, 11, 3, 96),
    "conv2": (5, 5, 48, 256),
    "conv3": (3, 3, 256, 384),
    "conv4": (3, 3, 192, 384),
    "conv5": (3, 3, 192, 256),
    "fc6": (9216, 4096),
    "fc7": (4096, 4096),
    "fc8": (4096, 1000),
}
TOP = ["flatten", "fc6", "relu6", "drop6", "fc7", "relu7", "drop7", "fc8", "prob"]
LAYER_ORDER = {
    "bvlc": ["conv1", "relu1", "norm1", "pool1", "conv2", "relu2", "norm2", "pool2"],
    "caffenet": ["conv1", "relu1", "pool1", "norm1", "conv2", "relu2", "pool2", "norm2"],
    "chm2012": ["conv1", "norm1", "pool1", "relu1", "conv2", "relu2", "norm2", "cnorm2", "pool2"],
}
MIDDLE = {
    "bvlc": ["conv3", "relu3", "conv4", "relu4", "conv5", "relu5", "pool5"],
    "caffenet": ["conv3", "relu3", "conv4", "relu4", "conv5", "relu5", "pool5"],
    "chm2012": ["conv3", "relu3", "conv4", "relu4", "conv5", "pool5", "relu5"],
}


@pytest.fixture(scope="module")
def models():
    cache = {}

    def get(variant, size=None):
        key = (variant, size)
        if key not in cache:
            shape = None if size is None else (size, size, 3)
            cache[key] = alexnet_keras.AlexNet(variant=variant, input_shape=shape)
        return cache[key]

    return get


@pytest.mark.parametrize("variant", VARIANTS)
def test_parameter_count_is_the_published_one(models, variant):
    assert models(variant).count_params() == PARAMS


@pytest.mark.parametrize("size", [224, 227])
@pytest.mark.parametrize("variant", VARIANTS)
def test_fc6_sees_6x6x256_at_224_and_227(models, variant, size):
    model = models(variant, size)
    assert model.get_layer("pool5").output.shape[1:] == (6, 6, 256)
    assert model.get_layer("flatten").output.shape[1:] == (9216,)
    assert model.count_params() == PARAMS


@pytest.mark.parametrize("variant", VARIANTS)
def test_layer_names_and_kernel_shapes(models, variant):
    model = models(variant)
    names = [layer.name for layer in model.layers if not layer.name.endswith("_pad")]
    assert names == ["image"] + LAYER_ORDER[variant] + MIDDLE[variant] + TOP
    weighted = {layer.name: tuple(layer.kernel.shape) for layer in model.layers if layer.weights}
    assert weighted == KERNELS
    for name in ("conv2", "conv4", "conv5"):
        layer = model.get_layer(name)
        assert isinstance(layer, GroupedConv2D) and layer.groups == 2
    for name in ("conv1", "conv3"):
        assert model.get_layer(name).groups == 1
    for layer in model.layers:  # no stock grouped Conv2D: that path forces XLA
        if isinstance(layer, keras.layers.Conv2D) and not isinstance(layer, GroupedConv2D):
            assert layer.groups == 1
    assert model.get_layer("drop6").rate == 0.5 and model.get_layer("drop7").rate == 0.5


def test_variant_details(models):
    bvlc, chm = models("bvlc"), models("chm2012")
    assert bvlc.input_shape == (None, 227, 227, 3) and chm.input_shape == (None, 224, 224, 3)
    norm = bvlc.get_layer("norm1")
    assert isinstance(norm, LocalResponseNormalization)
    assert (norm.size, norm.alpha, norm.beta, norm.bias, norm.groups) == (5, 1e-4, 0.75, 1.0, 1)
    norm = chm.get_layer("norm2")
    assert (norm.size, norm.alpha, norm.beta, norm.bias, norm.groups) == (5, 1e-4, 0.75, 2.0, 2)
    cnorm = chm.get_layer("cnorm2")
    assert isinstance(cnorm, SpatialResponseNormalization)
    assert (cnorm.size, cnorm.alpha, cnorm.beta, cnorm.bias) == (5, 1e-3, 0.75, 1.0)


def test_geometry_at_224(models):
    # Caffe: conv1 floors to 54, pool1 ceils back to 27.
    bvlc = models("bvlc", 224)
    assert bvlc.get_layer("conv1").output.shape[1:3] == (54, 54)
    assert bvlc.get_layer("pool1").output.shape[1:3] == (27, 27)
    # cuda-convnet: conv1 ceils to 55 with 3 implicit zero pixels at the bottom/right.
    chm = models("chm2012", 224)
    assert chm.get_layer("conv1_pad").padding == ((0, 3), (0, 3))
    assert chm.get_layer("conv1").output.shape[1:3] == (55, 55)
    assert models("chm2012", 227).get_layer("conv1").output.shape[1:3] == (55, 55)


def test_headless_and_pooling():
    model = alexnet_keras.AlexNet(include_top=False)
    assert model.output_shape == (None, 6, 6, 256)
    assert (
        model.count_params() == 2_334_080
    )  # conv1..conv5: 34,944 + 307,456 + 885,120 + 663,936 + 442,624
    for pooling in ("avg", "max"):
        assert alexnet_keras.AlexNet(include_top=False, pooling=pooling).output_shape == (None, 256)
    big = alexnet_keras.AlexNet(include_top=False, input_shape=(320, 256, 3), variant="chm2012")
    assert big.output_shape[1:] == (9, 7, 256)


def test_classes_and_classifier_activation():
    model = alexnet_keras.AlexNet(classes=10, classifier_activation=None)
    assert model.get_layer("fc8").kernel.shape == (4096, 10)
    assert model.output_shape == (None, 10)
    assert "prob" not in [layer.name for layer in model.layers]
    probs = alexnet_keras.AlexNet(classes=10)(np.zeros((1, 227, 227, 3), np.float32))
    np.testing.assert_allclose(np.sum(probs), 1.0, rtol=1e-5)


def test_input_tensor():
    inp = keras.Input((224, 224, 3))
    model = alexnet_keras.AlexNet(input_tensor=inp, include_top=False, pooling="avg")
    assert model.inputs[0] is inp
    assert model.output_shape == (None, 256)


def test_default_name():
    assert alexnet_keras.AlexNet(variant="caffenet", include_top=False).name == "alexnet_caffenet"


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(variant="vgg16"), r"Received: variant='vgg16'"),
        (dict(input_shape=(227, 227, 1)), r"Received: input_shape=\(227, 227, 1\)"),
        (dict(input_shape=(3, 227, 227)), r"Received: input_shape=\(3, 227, 227\)"),
        (dict(input_shape=(227, 227)), r"Received: input_shape=\(227, 227\)"),
        (dict(input_shape=(32, 32, 3), include_top=False), r"too small.*Received: input_shape"),
        (dict(input_shape=(256, 256, 3)), r"6x6 pool5.*Received: input_shape=\(256, 256, 3\)"),
        (dict(input_shape=(None, None, 3), include_top=False), r"Received: input_shape=\(None"),
        (dict(pooling="avg"), r"Received: pooling='avg'"),
        (dict(include_top=False, pooling="mean"), r"Received: pooling='mean'"),
        (dict(classes=0), r"Received: classes=0"),
        (dict(weights=3), r"Received: weights=3"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        alexnet_keras.AlexNet(**kwargs)


def test_trains_one_step(rng):
    """A full-size forward/backward through every custom layer, in graph mode."""
    import tensorflow as tf

    model = alexnet_keras.AlexNet(variant="chm2012", classes=5, classifier_activation=None)
    opt = keras.optimizers.SGD(0.001, momentum=0.9)
    x = tf.constant(rng.normal(0, 50, (2, 224, 224, 3)), tf.float32)
    y = tf.constant([1, 3])

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss, grads

    loss, grads = step()
    assert np.isfinite(loss.numpy())
    assert all(np.all(np.isfinite(g.numpy())) and np.any(g.numpy() != 0) for g in grads)

"""The custom layers against NumPy references, TF kernels, serialization and gradients."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from alexnet_keras.layers import (
    GroupedConv2D,
    LocalResponseNormalization,
    SpatialResponseNormalization,
)
from tests import reference as ref


def nhwc_caffe_lrn(x, **kw):
    """The Caffe LRN reference (NCHW) applied to an NHWC array."""
    return ref.caffe_lrn(x.transpose(0, 3, 1, 2), **kw).transpose(0, 2, 3, 1)


def np_grouped_conv(x, kernel, bias, stride=1, padding="valid", groups=1):
    """NHWC grouped cross-correlation, written as loops over output pixels."""
    n, h, w, c = x.shape
    kh, kw, cg, out = kernel.shape
    if padding == "same":
        ph, pw = (kh - 1) // 2, (kw - 1) // 2
        x = np.pad(x, ((0, 0), (ph, kh - 1 - ph), (pw, kw - 1 - pw), (0, 0)))
        h, w = x.shape[1:3]
    ho, wo = (h - kh) // stride + 1, (w - kw) // stride + 1
    og = out // groups
    y = np.zeros((n, ho, wo, out))
    for i in range(ho):
        for j in range(wo):
            patch = x[:, i * stride : i * stride + kh, j * stride : j * stride + kw, :]
            for g in range(groups):
                p = patch[..., g * cg : (g + 1) * cg]
                k = kernel[..., g * og : (g + 1) * og]
                y[:, i, j, g * og : (g + 1) * og] = np.einsum("nhwc,hwco->no", p, k)
    return y + bias


def input_gradient(layer, x, r):
    """d sum(layer(x) * r) / dx, by TensorFlow's autodiff in float32."""
    xt = tf.constant(x, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        loss = tf.reduce_sum(layer(xt) * r)
    return tape.gradient(loss, xt).numpy()


def random_coords(rng, shape, n=8):
    return [tuple(int(rng.integers(s)) for s in shape) for _ in range(n)]


def roundtrip_keras_file(layer, x, tmp_path):
    inp = keras.Input(x.shape[1:])
    model = keras.Model(inp, layer(inp))
    want = model.predict_on_batch(x)
    path = tmp_path / "small.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)  # no custom_objects: the classes are registered
    assert type(loaded.layers[1]) is type(layer)
    np.testing.assert_allclose(loaded.predict_on_batch(x), want, rtol=1e-6, atol=1e-6)


def config_roundtrip(layer):
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is type(layer) and restored.get_config() == layer.get_config()
    return clone


# ------------------------------------------------------------------------- LRN


LRN_IMPLEMENTATIONS = ["kernel", "matmul"]


@pytest.mark.parametrize("implementation", LRN_IMPLEMENTATIONS)
def test_lrn_hand_computed_value(implementation):
    # One pixel, 4 channels of 100: the window of channel 0 is clipped to channels 0..2,
    # that of channel 1 to 0..3; the sum is still divided by size=5.
    x = np.full((1, 1, 1, 4), 100.0, np.float32)
    lrn = LocalResponseNormalization(5, 1e-4, 0.75, 1.0, implementation=implementation)
    y = lrn(x).numpy()
    assert y[0, 0, 0, 0] == pytest.approx(100 / (1 + 1e-4 / 5 * 3e4) ** 0.75, rel=1e-6)
    assert y[0, 0, 0, 1] == pytest.approx(100 / (1 + 1e-4 / 5 * 4e4) ** 0.75, rel=1e-6)


@pytest.mark.parametrize(
    "size,alpha,beta,bias", [(5, 1e-4, 0.75, 1.0), (5, 1e-4, 0.75, 2.0), (3, 1e-3, 0.5, 1.5)]
)
@pytest.mark.parametrize("implementation", LRN_IMPLEMENTATIONS)
def test_lrn_matches_numpy_caffe_loop(rng, size, alpha, beta, bias, implementation):
    x = rng.normal(0, 60, (2, 5, 5, 16))
    lrn = LocalResponseNormalization(size, alpha, beta, bias, implementation=implementation)
    y = lrn(x.astype(np.float32)).numpy()
    want = nhwc_caffe_lrn(x, size=size, alpha=alpha, beta=beta, k=bias)
    assert np.mean(np.abs(want / x)) < 0.95  # the normaliser really bites
    np.testing.assert_allclose(y, want, rtol=2e-6, atol=1e-4)


def test_lrn_equals_tf_kernel_with_mapped_arguments(rng):
    x = rng.normal(0, 60, (2, 4, 4, 32)).astype(np.float32)
    tf_y = tf.nn.local_response_normalization(
        x, depth_radius=2, bias=1.0, alpha=1e-4 / 5, beta=0.75
    )
    y = LocalResponseNormalization(5, 1e-4, 0.75, 1.0, implementation="kernel")(x)
    np.testing.assert_array_equal(y.numpy(), tf_y.numpy())
    y = LocalResponseNormalization(5, 1e-4, 0.75, 1.0, implementation="matmul")(x)
    np.testing.assert_allclose(y.numpy(), tf_y.numpy(), rtol=1e-6, atol=1e-5)
    unmapped = tf.nn.local_response_normalization(
        x, depth_radius=2, bias=1.0, alpha=1e-4, beta=0.75
    )
    assert np.max(np.abs(unmapped.numpy() - y.numpy())) > 1.0  # alpha/size matters


@pytest.mark.parametrize("implementation", LRN_IMPLEMENTATIONS)
def test_lrn_groups_never_cross_the_group_boundary(rng, implementation):
    x = rng.normal(0, 60, (2, 3, 3, 12))
    lrn = LocalResponseNormalization(5, 1e-4, 0.75, 2.0, groups=2, implementation=implementation)
    y = lrn(x.astype(np.float32)).numpy()
    halves = [
        np.stack([ref.cc_cmrnorm(img.transpose(2, 0, 1), 5, 1e-4, 0.75, 2.0) for img in part])
        for part in (x[..., :6], x[..., 6:])
    ]
    want = np.concatenate(halves, axis=1).transpose(0, 2, 3, 1)
    np.testing.assert_allclose(y, want, rtol=2e-6, atol=1e-4)
    whole = nhwc_caffe_lrn(x, size=5, alpha=1e-4, beta=0.75, k=2.0)
    assert np.max(np.abs(whole - want)) > 1e-2  # the boundary changes the result


@pytest.mark.parametrize("implementation", LRN_IMPLEMENTATIONS)
def test_lrn_gradient_matches_numeric_gradient_of_reference(rng, implementation):
    x = rng.normal(0, 60, (1, 3, 3, 8))
    r = rng.normal(size=x.shape)
    layer = LocalResponseNormalization(5, 1e-4, 0.75, 2.0, groups=2, implementation=implementation)
    grad = input_gradient(layer, x, r)

    def f(v):
        halves = [
            ref.caffe_lrn(p.transpose(0, 3, 1, 2), 5, 1e-4, 0.75, 2.0)
            for p in np.split(v, 2, axis=3)
        ]
        return float(np.sum(np.concatenate(halves, axis=1).transpose(0, 2, 3, 1) * r))

    coords = random_coords(rng, x.shape) + [(0, 1, 1, 0), (0, 1, 1, 3), (0, 1, 1, 4), (0, 1, 1, 7)]
    np.testing.assert_allclose(
        [grad[c] for c in coords], ref.numeric_grad(f, x, coords), rtol=2e-3, atol=2e-4
    )


def test_lrn_serialization(rng, tmp_path):
    layer = LocalResponseNormalization(size=3, alpha=2e-4, beta=0.5, bias=2.0, groups=2)
    clone = config_roundtrip(layer)
    assert (clone.size, clone.alpha, clone.beta, clone.bias, clone.groups) == (3, 2e-4, 0.5, 2.0, 2)
    assert clone.implementation == "kernel"
    roundtrip_keras_file(layer, rng.normal(0, 50, (2, 4, 4, 6)).astype(np.float32), tmp_path)


@pytest.mark.parametrize("size", [4, 0, -1, 2.0, True])
def test_lrn_rejects_bad_size(size):
    with pytest.raises(ValueError, match=r"Received: size="):
        LocalResponseNormalization(size=size)


def test_lrn_rejects_unknown_implementation():
    with pytest.raises(ValueError, match=r"Received: implementation='cudnn'"):
        LocalResponseNormalization(implementation="cudnn")


def test_lrn_rejects_groups_that_do_not_divide_channels():
    with pytest.raises(ValueError, match=r"Received: input channels=5"):
        LocalResponseNormalization(groups=2)(np.zeros((1, 2, 2, 5), np.float32))


@pytest.mark.parametrize("implementation", LRN_IMPLEMENTATIONS)
def test_lrn_mixed_precision_keeps_the_input_dtype(rng, implementation):
    x = rng.normal(0, 60, (1, 2, 2, 8)).astype(np.float32)
    y = LocalResponseNormalization(dtype="mixed_bfloat16", implementation=implementation)(x)
    assert y.dtype == tf.bfloat16
    want = LocalResponseNormalization()(tf.cast(tf.cast(x, tf.bfloat16), tf.float32))
    np.testing.assert_allclose(tf.cast(y, tf.float32).numpy(), want.numpy(), rtol=1e-2, atol=0.5)


# ------------------------------------------------------------ spatial rnorm


def test_spatial_norm_matches_numpy_cuda_convnet_loop(rng):
    x = rng.normal(0, 40, (2, 7, 7, 3))
    y = SpatialResponseNormalization(size=5, alpha=1e-3, beta=0.75)(x.astype(np.float32)).numpy()
    want = np.stack([ref.cc_rnorm(img.transpose(2, 0, 1), 5, 1e-3, 0.75) for img in x]).transpose(
        0, 2, 3, 1
    )
    assert np.mean(np.abs(want / x)) < 0.95
    np.testing.assert_allclose(y, want, rtol=2e-6, atol=1e-4)


def test_spatial_norm_gradient_and_serialization(rng, tmp_path):
    x = rng.normal(0, 40, (1, 4, 4, 2))
    r = rng.normal(size=x.shape)
    layer = SpatialResponseNormalization(size=3, alpha=1e-2, beta=0.75)
    grad = input_gradient(layer, x, r)

    def f(v):
        return float(
            np.sum(ref.cc_rnorm(v[0].transpose(2, 0, 1), 3, 1e-2, 0.75).transpose(1, 2, 0) * r[0])
        )

    coords = random_coords(rng, x.shape)
    np.testing.assert_allclose(
        [grad[c] for c in coords], ref.numeric_grad(f, x, coords), rtol=2e-3, atol=2e-4
    )
    config_roundtrip(layer)
    roundtrip_keras_file(layer, x.astype(np.float32), tmp_path)


def test_spatial_norm_rejects_bad_size():
    with pytest.raises(ValueError, match=r"Received: size=2"):
        SpatialResponseNormalization(size=2)


# ------------------------------------------------------------ grouped conv


CONV_CASES = [  # (filters, kernel, stride, padding, groups, in_channels, size)
    (8, 3, 1, "same", 2, 6, 7),
    (8, 5, 1, "same", 2, 4, 6),
    (6, 3, 2, "valid", 3, 6, 9),
    (4, 3, 1, "valid", 1, 3, 5),
]


@pytest.mark.parametrize("implementation", ["split", "native"])
@pytest.mark.parametrize("case", CONV_CASES)
def test_grouped_conv_matches_numpy(rng, case, implementation):
    filters, k, stride, padding, groups, cin, size = case
    layer = GroupedConv2D(filters, k, strides=stride, padding=padding, groups=groups,
                          implementation=implementation)  # fmt: skip
    x = rng.normal(size=(2, size, size, cin))
    layer.build(x.shape)
    kernel = rng.normal(size=(k, k, cin // groups, filters))
    bias = rng.normal(size=filters)
    layer.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    want = np_grouped_conv(x, kernel, bias, stride, padding, groups)
    np.testing.assert_allclose(layer(x.astype(np.float32)).numpy(), want, rtol=1e-4, atol=1e-4)
    graph = tf.function(lambda v: layer(v))(tf.constant(x, tf.float32))
    np.testing.assert_allclose(graph.numpy(), want, rtol=1e-4, atol=1e-4)


def test_grouped_conv_kernel_layout_is_stock_conv2d_groups(rng):
    x = rng.normal(size=(2, 9, 9, 8)).astype(np.float32)
    ours = GroupedConv2D(12, 3, padding="same", groups=2)
    stock = keras.layers.Conv2D(12, 3, padding="same", groups=2)
    ours.build(x.shape)
    stock.build(x.shape)
    assert [tuple(w.shape) for w in ours.weights] == [tuple(w.shape) for w in stock.weights]
    assert tuple(ours.kernel.shape) == (3, 3, 4, 12)
    stock.set_weights(ours.get_weights())  # weights move unchanged
    np.testing.assert_allclose(ours(x).numpy(), stock(x).numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("implementation", ["split", "native"])
def test_grouped_conv_gradients_match_numeric_gradients(rng, implementation):
    x = rng.normal(size=(1, 5, 5, 4))
    kernel = rng.normal(size=(3, 3, 2, 6))
    bias = rng.normal(size=6)
    r = rng.normal(size=(1, 5, 5, 6))
    layer = GroupedConv2D(6, 3, padding="same", groups=2, implementation=implementation)
    layer.build(x.shape)
    layer.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    xt = tf.constant(x, tf.float32)

    @tf.function  # graph mode, where TF fuses and picks its kernels
    def grads(v):
        with tf.GradientTape() as tape:
            tape.watch(v)
            loss = tf.reduce_sum(layer(v) * r)
        return tape.gradient(loss, [v, layer.kernel, layer.bias])

    gx, gk, gb = [g.numpy() for g in grads(xt)]
    fx = lambda v: float(np.sum(np_grouped_conv(v, kernel, bias, 1, "same", 2) * r))  # noqa: E731
    fk = lambda k: float(np.sum(np_grouped_conv(x, k, bias, 1, "same", 2) * r))  # noqa: E731
    cx, ck = random_coords(rng, x.shape), random_coords(rng, kernel.shape)
    np.testing.assert_allclose(
        [gx[c] for c in cx], ref.numeric_grad(fx, x, cx), rtol=1e-3, atol=1e-3
    )
    np.testing.assert_allclose(
        [gk[c] for c in ck], ref.numeric_grad(fk, kernel, ck), rtol=1e-3, atol=1e-3
    )
    np.testing.assert_allclose(gb, r.sum(axis=(0, 1, 2)), rtol=1e-4)


def test_grouped_conv_serialization(rng, tmp_path):
    layer = GroupedConv2D(8, 3, padding="same", groups=2, implementation="split", activation="relu")
    clone = config_roundtrip(layer)
    assert clone.implementation == "split" and clone.groups == 2
    roundtrip_keras_file(layer, rng.normal(size=(2, 5, 5, 4)).astype(np.float32), tmp_path)


def test_grouped_conv_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"Received: implementation='xla'"):
        GroupedConv2D(8, 3, groups=2, implementation="xla")
    with pytest.raises(ValueError, match=r"Received: data_format='channels_first'"):
        GroupedConv2D(8, 3, groups=2, data_format="channels_first")
    with pytest.raises(ValueError, match=r"Received: input channels=5"):
        GroupedConv2D(8, 3, groups=2)(np.zeros((1, 4, 4, 5), np.float32))


def test_grouped_conv_auto_trains_with_onednn_switched_off():
    """With oneDNN off TF has no grouped conv gradient; the auto path must not need one."""
    script = textwrap.dedent(
        """
        import numpy as np, tensorflow as tf
        from alexnet_keras.layers import GroupedConv2D
        layer = GroupedConv2D(8, 3, padding="same", groups=2, activation="relu")
        x = tf.constant(np.random.default_rng(0).normal(size=(2, 6, 6, 4)), tf.float32)
        layer(x)
        @tf.function
        def step(v):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(layer(v) ** 2)
            grads = tape.gradient(loss, layer.trainable_variables)
            for var, g in zip(layer.trainable_variables, grads):
                var.assign_sub(1e-3 * g)
            return loss
        print("losses", float(step(x)), float(step(x)))
        """
    )
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS="0", TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "losses" in done.stdout

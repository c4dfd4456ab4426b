"""cuda-convnet `local` and `cnorm` layers against numpy transcriptions of the kernels
(`tests/cuda_convnet/local_kernels.py`): forward and gradients, at clipped borders, with stride,
padding and groups. The nets that use them: `test_local_nets.py`."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from alexnet_keras.cuda_convnet.local_layers import ContrastNormalization, ConvnetLocal2D
from tests.cuda_convnet.local_kernels import (
    chwn,
    modules,
    nhwc,
    np_cnorm,
    np_cnorm_grad,
    np_local,
    np_local_grads,
)

# ---------------------------------------------------------------------------------------------
# the Keras layers against them


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
    x = tf.constant(nhwc(images))
    layer.build(x.shape)
    layer.set_weights(_keras_local(w, b, mods, fs, filters))
    dy = rng.standard_normal((filters, mods, mods, 2))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(y * nhwc(dy))
    gx, gk, gb = tape.gradient(loss, [x, layer.kernel, layer.bias])
    np.testing.assert_allclose(chwn(y), np_local(images, w, b, fs, stride, pad, groups, filters),
                               rtol=1e-4, atol=1e-4)  # fmt: skip
    want_x, want_w, want_b = np_local_grads(images, w, dy, fs, stride, pad, groups, filters)
    np.testing.assert_allclose(chwn(gx), want_x, rtol=1e-4, atol=1e-4)
    got_k, got_b = _keras_local(want_w, want_b, mods, fs, filters)
    np.testing.assert_allclose(gk.numpy(), got_k, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(gb.numpy(), got_b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("size, divisor", [(3, "clipped"), (4, "window"), (5, "clipped")])
def test_cnorm_forward_and_cuda_convnets_gradient(size, divisor):
    rng = np.random.default_rng(size)
    images = rng.standard_normal((3, 7, 7, 2)) * 2
    scale, power, full = 2.0, 0.75, divisor == "window"
    x = tf.constant(nhwc(images))
    layer = ContrastNormalization(size, scale, power, divisor)
    dy = rng.standard_normal(images.shape)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(y * nhwc(dy))
    want, _, _ = np_cnorm(images, size, scale, power, full)
    np.testing.assert_allclose(chwn(y), want, rtol=1e-5, atol=1e-5)
    grad = chwn(tape.gradient(loss, x))
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
    x = nhwc(images)
    clipped = ContrastNormalization(3, 5.0, 0.75, "clipped")(x).numpy()
    window = ContrastNormalization(3, 5.0, 0.75, "window")(x).numpy()
    # Rows/columns 0 and 5 have clipped windows, and their neighbours' sums read them.
    assert np.abs(clipped - window)[0, 0, 0, 0] > 1e-3
    np.testing.assert_allclose(clipped[0, 2:4, 2:4], window[0, 2:4, 2:4], rtol=1e-6)


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

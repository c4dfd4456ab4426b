"""The layers AlexNet needs and Keras lacks.

- `LocalResponseNormalization`: Caffe / cuda-convnet cross-channel LRN, with an
  optional per-group window (the CHM 2012 per-GPU LRN).
- `GroupedConv2D`: a `Conv2D(groups=...)` with the same kernel layout that does
  not go through the forced-XLA path of stock Keras (7x slower to train on CPU).
- `SpatialResponseNormalization`: cuda-convnet's same-map `rnorm`.

All three are registered, so `.keras` files reload without `custom_objects`.

They run on every Keras backend. The other backends take the `keras.ops` path;
on TensorFlow the layers keep the paths that are faster there (TF's fused LRN
kernel, the split grouped convolution), with `tensorflow` imported only then.
"""

import keras
import numpy as np

__all__ = [
    "GroupedConv2D",
    "LocalResponseNormalization",
    "SpatialResponseNormalization",
    "window_mean",
]

_PACKAGE = "alexnet_keras"


def _check_positive_odd(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or value % 2 == 0:
        raise ValueError(f"`{name}` must be a positive odd integer. Received: {name}={value!r}")


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {choices}. Received: {name}={value!r}")


def _check_groups(groups):
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"`groups` must be a positive integer. Received: groups={groups!r}")


def _channels_divisible(layer, channels):
    if channels is None:
        raise ValueError(
            f"Layer '{layer.name}' needs a known channel count. Received: input channels=None"
        )
    if channels % layer.groups:
        raise ValueError(
            f"Layer '{layer.name}': the input channels must divide into {layer.groups} groups. "
            f"Received: input channels={channels}"
        )


def on_tensorflow():
    """Whether Keras runs on TensorFlow, where the TF-only fast paths apply.

    Example:

    >>> from alexnet_keras.layers import on_tensorflow
    >>> on_tensorflow() in (True, False)
    True
    """
    return keras.backend.backend() == "tensorflow"


def _as_float32(x):
    """LRN kernels exist for float32 only on CPU; mixed precision comes back here."""
    dtype = keras.backend.standardize_dtype(x.dtype)
    return (x, dtype) if dtype == "float32" else (keras.ops.cast(x, "float32"), dtype)


def _restore_dtype(y, dtype):
    return y if dtype == "float32" else keras.ops.cast(y, dtype)


def window_mean(x, size, before=None):
    """Sum over a `size` x `size` spatial window of each NHWC pixel, divided by `size**2`.

    The window starts `before` pixels above and left of the pixel (default
    `size // 2`, cuda-convnet's `-size/2`) and is clipped at the border:
    missing pixels count as zero, the divisor stays `size**2`.

    Example:

    >>> import numpy as np
    >>> from alexnet_keras.layers import window_mean
    >>> float(window_mean(np.ones((1, 3, 3, 1), "float32"), 3)[0, 0, 0, 0])  # 4 of 9 pixels
    0.4444444477558136
    """
    before = size // 2 if before is None else before
    after = size - 1 - before
    padded = keras.ops.pad(x, [[0, 0], [before, after], [before, after], [0, 0]])
    # A VALID average over the zero-padded map is the clipped window sum / size**2.
    return keras.ops.average_pool(padded, size, strides=1, padding="valid")


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LocalResponseNormalization(keras.layers.Layer):
    """Cross-channel Local Response Normalization, with Caffe semantics.

    For channel `c` of a `(..., C)` input:

        y_c = x_c / (bias + alpha / size * sum_{j in window(c)} x_j**2) ** beta

    where the window is the `size` channels centred on `c`, clipped at the edges
    (missing channels count as zero, and the sum is still divided by `size`).
    This is Caffe's `LRN` (`ACROSS_CHANNELS`, `alpha/local_size`) and
    cuda-convnet's `cmrnorm` (`scale/size`, `minDiv` = `bias`). The paper's
    constants are `size=5, alpha=1e-4, beta=0.75, bias=2`; BVLC's Caffe models
    use `bias=1`.

    TensorFlow's `tf.nn.local_response_normalization` does not divide alpha by
    the window; the equivalent call is
    `tf.nn.local_response_normalization(x, depth_radius=(size - 1) // 2,
    bias=bias, alpha=alpha / size, beta=beta)`.

    Two implementations compute the same values (within float32 rounding):

    - `"kernel"` (default): TensorFlow's fused LRN op, called as above (per
      group); cuDNN's LRN on GPU. On JAX and PyTorch, which have no such op in
      `keras.ops`, it takes the `"matmul"` path.
    - `"matmul"`: the window sums of all channels as one matrix product of the
      squares with a 0/1 band matrix (block-diagonal for `groups`), then
      `d**-0.75` as `rsqrt(d) * sqrt(rsqrt(d))` instead of `exp(log(d) * -beta)`.
      On its own it runs forward+backward of the AlexNet conv1 tensor
      `(64, 55, 55, 96)` 1.9x faster on CPU than TF's LRN and LRNGrad kernels,
      but in the whole AlexNet the difference is lost in the noise (train
      0.90-0.99x, inference 1.03x; `benchmarks/README.md`).

    With `groups=g` the channels are split into `g` equal blocks and the window
    never crosses a block boundary: this is the 2012 two-GPU network, where each
    GPU normalised only its own half of the feature maps.

    Args:
        size: window width in channels; a positive odd integer.
        alpha: scale of the window sum, before the division by `size`.
        beta: exponent.
        bias: additive constant (Caffe `k`, cuda-convnet `minDiv`).
        groups: number of channel blocks that are normalised separately.
        implementation: `"kernel"` or `"matmul"` (see above).
        **kwargs: base `keras.layers.Layer` arguments.

    Example:

    >>> import numpy as np
    >>> from alexnet_keras.layers import LocalResponseNormalization
    >>> lrn = LocalResponseNormalization(size=5, alpha=1e-4, beta=0.75, bias=1.0)
    >>> y = lrn(np.full((1, 2, 2, 8), 100.0, "float32"))
    >>> round(float(y[0, 0, 0, 0]), 4)  # 100 / (1 + 1e-4 / 5 * 3 * 100**2) ** 0.75
    70.2927
    """

    _IMPLEMENTATIONS = ("kernel", "matmul")

    def __init__(
        self, size=5, alpha=1e-4, beta=0.75, bias=1.0, groups=1, implementation="kernel", **kwargs
    ):
        super().__init__(**kwargs)
        _check_positive_odd("size", size)
        _check_groups(groups)
        _check_choice("implementation", implementation, self._IMPLEMENTATIONS)
        self.size = size
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.bias = float(bias)
        self.groups = groups
        self.implementation = implementation

    def build(self, input_shape):
        _channels_divisible(self, input_shape[-1])
        self._band = self._band_matrix(input_shape[-1])
        self.built = True

    def _kernel_normalize(self, x):
        import tensorflow as tf

        return tf.nn.local_response_normalization(
            x,
            depth_radius=(self.size - 1) // 2,
            bias=self.bias,
            alpha=self.alpha / self.size,
            beta=self.beta,
        )

    def _matmul_normalize(self, x):
        ops = keras.ops
        channels = x.shape[-1]
        band = ops.convert_to_tensor(self._band)
        sums = ops.matmul(ops.reshape(ops.square(x), (-1, channels)), band)
        d = self.bias + (self.alpha / self.size) * ops.reshape(sums, ops.shape(x))
        if self.beta == 0.75:  # AlexNet's exponent: two cheap roots instead of exp(log())
            r = ops.rsqrt(d)
            return x * (r * ops.sqrt(r))
        if self.beta == 0.5:
            return x * ops.rsqrt(d)
        return x * ops.power(d, -self.beta)

    def _band_matrix(self, channels):
        index = np.arange(channels)
        block = index // (channels // self.groups)
        near = np.abs(index[:, None] - index[None, :]) <= (self.size - 1) // 2
        return (near & (block[:, None] == block[None, :])).astype(np.float32)

    def call(self, inputs):
        x, dtype = _as_float32(inputs)
        if self.implementation == "matmul" or not on_tensorflow():
            y = self._matmul_normalize(x)
        elif self.groups == 1:
            y = self._kernel_normalize(x)
        else:
            parts = keras.ops.split(x, self.groups, axis=-1)
            y = keras.ops.concatenate([self._kernel_normalize(p) for p in parts], axis=-1)
        return _restore_dtype(y, dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "size": self.size,
                "alpha": self.alpha,
                "beta": self.beta,
                "bias": self.bias,
                "groups": self.groups,
                "implementation": self.implementation,
            }
        )
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SpatialResponseNormalization(keras.layers.Layer):
    """cuda-convnet's same-map response normalization (`rnorm`).

    Each value is divided by a function of the squares in a `size` x `size`
    spatial window of its own channel:

        y = x * (bias + alpha / size**2 * sum_{window} x**2) ** -beta

    The window starts `size // 2` pixels before the centre and is clipped at the
    image border (missing pixels count as zero; the divisor stays `size**2`).
    The CHM 2012 network applies it after `norm2` (`cnorm2a/b` in
    `layers-145.cfg`) with `size=5`, `scale=1e-3`, `pow=0.75`, which are
    `alpha`, `beta` here; its additive constant is 1.

    Args:
        size: window width in pixels; a positive odd integer.
        alpha: cuda-convnet `scale`, before the division by `size**2`.
        beta: cuda-convnet `pow`.
        bias: additive constant.
        **kwargs: base `keras.layers.Layer` arguments.

    Example:

    >>> import numpy as np
    >>> from alexnet_keras.layers import SpatialResponseNormalization
    >>> norm = SpatialResponseNormalization(size=3, alpha=9.0, beta=1.0)
    >>> y = norm(np.ones((1, 3, 3, 1), "float32"))
    >>> round(float(y[0, 1, 1, 0]), 6), round(float(y[0, 0, 0, 0]), 6)  # 1/(1+9), 1/(1+4)
    (0.1, 0.2)
    """

    def __init__(self, size=5, alpha=1e-3, beta=0.75, bias=1.0, **kwargs):
        super().__init__(**kwargs)
        _check_positive_odd("size", size)
        self.size = size
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.bias = float(bias)

    def call(self, inputs):
        x, dtype = _as_float32(inputs)
        # The clipped window sum / size**2 is exactly the term cuda-convnet scales.
        mean_sq = window_mean(keras.ops.square(x), self.size)
        y = x * keras.ops.power(self.bias + self.alpha * mean_sq, -self.beta)
        return _restore_dtype(y, dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {"size": self.size, "alpha": self.alpha, "beta": self.beta, "bias": self.bias}
        )
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class GroupedConv2D(keras.layers.Conv2D):
    """A grouped 2D convolution with the kernel layout of `Conv2D(groups=...)`.

    The kernel has shape `(kh, kw, in_channels // groups, filters)`, output
    channels group-major: filters `[g * filters // groups, (g + 1) * filters //
    groups)` read input channels `[g * in // groups, (g + 1) * in // groups)`.
    That is the layout of Keras `Conv2D(groups=...)`, of Caffe's `group: 2`
    after the OIHW -> HWIO transpose, and of `bvlc_alexnet.npy`, so weights move
    between them unchanged.

    Stock Keras runs every grouped convolution through XLA on the TensorFlow
    backend, whose CPU filter gradient is about 7x slower to train
    (`shared/docs/tensorflow-notes.md` §2), and bakes `_XlaMustCompile` into
    exported graphs. This layer avoids both:

    - `implementation="split"` (what `"auto"` picks): split the input and the
      kernel into groups, run one ordinary convolution per group, concatenate.
      It works everywhere: CPU with oneDNN on or off, GPU, XLA, SavedModel,
      LiteRT. On the AVX2 machines it is also the fastest CPU path.
    - `implementation="native"`: one `tf.nn.conv2d` with the grouped kernel.
      Fast with oneDNN (and cuDNN), but TensorFlow has no grouped gradient and
      no fused grouped kernel with oneDNN off, so it fails there.

    On JAX and PyTorch the layer is stock `Conv2D(groups=...)`, whose one
    grouped convolution (`feature_group_count`, `groups`) they run natively;
    `implementation` only chooses among the TensorFlow paths.

    Args:
        filters: total number of output channels, divisible by `groups`.
        kernel_size: int or pair.
        groups: number of groups; the input channels must divide by it.
        implementation: `"auto"`, `"split"` or `"native"`.
        **kwargs: every other `keras.layers.Conv2D` argument
            (`strides`, `padding`, `activation`, initializers, ...);
            `data_format` must be `"channels_last"`.

    Example:

    >>> import numpy as np
    >>> from alexnet_keras.layers import GroupedConv2D
    >>> conv = GroupedConv2D(256, 5, padding="same", groups=2)
    >>> conv(np.zeros((1, 27, 27, 96), "float32")).shape
    TensorShape([1, 27, 27, 256])
    >>> tuple(conv.kernel.shape)
    (5, 5, 48, 256)
    """

    _IMPLEMENTATIONS = ("auto", "split", "native")

    def __init__(self, filters, kernel_size, groups=1, implementation="auto", **kwargs):
        _check_choice("implementation", implementation, self._IMPLEMENTATIONS)
        _check_groups(groups)
        if kwargs.get("data_format", "channels_last") != "channels_last":
            raise ValueError(
                "GroupedConv2D supports channels_last only. "
                f"Received: data_format={kwargs['data_format']!r}"
            )
        super().__init__(filters, kernel_size, groups=groups, **kwargs)
        self.implementation = implementation

    def build(self, input_shape):
        _channels_divisible(self, input_shape[-1])
        super().build(input_shape)

    @property
    def resolved_implementation(self):
        """The path `call` takes on TensorFlow: `"split"` or `"native"`."""
        if self.groups == 1:
            return "native"
        return "split" if self.implementation == "auto" else self.implementation

    def convolution_op(self, inputs, kernel):
        if not on_tensorflow():
            return super().convolution_op(inputs, kernel)
        import tensorflow as tf

        padding = self.padding.upper()
        conv = lambda x, k: tf.nn.conv2d(  # noqa: E731
            x, k, strides=self.strides, padding=padding, dilations=self.dilation_rate
        )
        if self.resolved_implementation == "native":
            return conv(inputs, kernel)
        xs = tf.split(inputs, self.groups, axis=-1)
        ks = tf.split(kernel, self.groups, axis=-1)
        return tf.concat([conv(x, k) for x, k in zip(xs, ks, strict=True)], axis=-1)

    def call(self, inputs):
        if not on_tensorflow():
            return super().call(inputs)
        import tensorflow as tf

        outputs = self.convolution_op(inputs, self.kernel)
        if self.use_bias:
            outputs = tf.nn.bias_add(outputs, tf.cast(self.bias, outputs.dtype))
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def get_config(self):
        config = super().get_config()
        config["implementation"] = self.implementation
        return config

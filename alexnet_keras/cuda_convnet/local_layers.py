"""cuda-convnet's `local` (unshared weights) and `cnorm` (contrast norm) layers for Keras.

Read from cuda-convnet 1 (github `dnouri/cuda-convnet`, the public SVN trunk;
citations are to its files at HEAD unless a revision is named):

- `local`: `LocalUnsharedLayer` (`src/layer.cu` l.543-597) runs the conv
  kernels with `conv=false`, which only moves the filter pointer to the
  module's own block: `filters += moduleIdx * numColors * filterPixels *
  numFilters` (`src/cudaconv2/filter_acts.cu` l.85-87). So the weights are
  `(modules, filterChannels, filterPixels, filters)`, module `my * modulesX
  + mx`, rows `c * fs * fs + y * fs + x` within a module; sizes, padding and
  the bounds test are the conv layer's (`layer.py` l.890, `filter_acts.cu`
  l.129-131). Biases are always per module and filter, `(filters * modules,
  1)` (`layer.py` l.964), added to the `(filters, modulesY, modulesX)`
  output as one vector (`src/layer.cu` l.559-561): bias row `f * modules + m`.
  The backward kernels (`localImgActs`, `localWeightActs`) are the exact
  gradients, so autodiff of the forward below is cuda-convnet's.
- `cnorm`: `ContrastNormLayer` (`src/layer.cu` l.909-931). The forward is
  `mean = convLocalPool(x, size, start=-size/2, stride 1, AvgPooler)`,
  `d = x - mean` (`_meanDiffs.add(images, -1, 1)`), then `kCNorm_*`
  (`src/cudaconv2/conv_util.cu` l.747-808): `denom = 1 + scale' * sum d**2`
  over the same clipped window and `y = x * denom ** -pow` (the raw `x`,
  not `d`); `scale' = scale / size**2` (`layer.py` l.1043). The mean's
  divisor follows the era of the code: `AvgPooler(size*size)` before SVN
  r556 (at r331, commit bc77cb0: `src/layer.cu` l.538), the clipped area
  from r556 on (commit dd8fd31, 2012-07-17, the same change as the average
  pool's). The rest, backward included, is the same at r331 (`conv_util.cu`
  l.114-116, 592-593, 1077-1080 there).
  The backward is NOT the exact gradient: `convContrastNormUndo` calls
  `convResponseNormUndo` with `meanDiffs` as the inputs (`conv_util.cu`
  l.2214-2217), which computes `g_j = dy_j * denom_j ** -pow + d_j * sum_i
  (-2 scale' pow dy_i y_i / denom_i)` over the outputs `i` whose window
  holds `j` (`kRNormUndoPrelims` l.1592-1604, `kRNormUndo` l.1629-1700):
  the mean is treated as a constant. `ContrastNormalization` reproduces that
  gradient with `keras.ops.custom_gradient`, since training like cuda-convnet
  is the point.

Both run on every Keras backend: `local` takes `tf.image.extract_patches` on
TensorFlow and `keras.ops.image.extract_patches` (an identity-kernel
convolution) elsewhere; `keras.ops.custom_gradient` is `tf.custom_gradient`,
`jax.custom_gradient`, or a `torch.autograd.Function` on PyTorch.
"""

import math

import keras
import numpy as np

from alexnet_keras.cuda_convnet.layers import clipped_windows
from alexnet_keras.layers import window_mean

__all__ = ["ContrastNormalization", "ConvnetLocal2D", "local_modules"]

_PACKAGE = "alexnet_keras"


def local_modules(size, filter_size, stride, padding):
    """cuda-convnet's module count per side: `1 + ceil((2p + size - fs) / stride)`.

    Example:

    >>> local_modules(8, 3, 1, 1), local_modules(24, 5, 2, 0)
    (8, 11)
    """
    return 1 + math.ceil((2 * padding + size - filter_size) / stride)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ConvnetLocal2D(keras.layers.Layer):
    """A cuda-convnet `local` layer: a convolution whose filters differ at every output pixel.

    Sizes are cuda-convnet's: `modules = 1 + ceil((2 * padding + size -
    filter_size) / stride)` per side, `padding` zeros before the image and as
    many after it as the last module reaches. Filter `f` of group `g = f //
    (filters // groups)` reads channels `[g * C/groups, (g + 1) * C/groups)`.
    It runs as `tf.image.extract_patches` and one batched matmul over the
    modules, not a loop over positions.

    Weights: `kernel` `(modules**2, filter_size**2, C // groups, filters)`
    (module `my * modules + mx`; per module a Keras `Conv2D` kernel with its
    `y, x` axes joined, rank 4 as weights files allow), `bias` `(modules,
    modules, filters)`.

    Args:
        filters: output channels (over all groups).
        filter_size: the square filter's side.
        stride: the step between modules.
        padding: cuda-convnet `padding` (zeros before the image).
        groups: channel groups.
        kernel_initializer, bias_initializer: Keras initializers.
        **kwargs: base layer arguments.

    Example:

    >>> import numpy as np
    >>> from alexnet_keras.cuda_convnet.local_layers import ConvnetLocal2D
    >>> layer = ConvnetLocal2D(4, 3, padding=1)
    >>> y = layer(np.ones((2, 8, 8, 3), "float32"))
    >>> tuple(y.shape), tuple(layer.kernel.shape), tuple(layer.bias.shape)
    ((2, 8, 8, 4), (64, 9, 3, 4), (8, 8, 4))
    """

    def __init__(self, filters, filter_size, stride=1, padding=0, groups=1,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 **kwargs):  # fmt: skip
        super().__init__(**kwargs)
        self.filters, self.filter_size = int(filters), int(filter_size)
        self.stride, self.padding, self.groups = int(stride), int(padding), int(groups)
        if min(self.filters, self.filter_size, self.stride, self.groups) < 1 or self.padding < 0:
            raise ValueError(
                "ConvnetLocal2D needs filters, filter_size, stride, groups >= 1 and padding >= 0. "
                f"Received: {filters}, {filter_size}, {stride}, {groups}, {padding}"
            )
        if self.filters % self.groups:
            raise ValueError(f"`filters` ({filters}) must divide by `groups` ({groups})")
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def build(self, input_shape):
        n, channels = input_shape[1], input_shape[3]
        if n is None or n != input_shape[2] or channels is None or channels % self.groups:
            raise ValueError(
                "ConvnetLocal2D needs square maps of known size and channels that divide by "
                f"groups={self.groups}. Received: {input_shape}"
            )
        m = local_modules(n, self.filter_size, self.stride, self.padding)
        self._side = m  # not `_modules`: torch.nn.Module has its own
        self._after = (m - 1) * self.stride + self.filter_size - n - self.padding
        fs = self.filter_size
        self.kernel = self.add_weight(
            name="kernel", shape=(m * m, fs * fs, channels // self.groups, self.filters),
            initializer=self.kernel_initializer,
        )  # fmt: skip
        self.bias = self.add_weight(name="bias", shape=(m, m, self.filters),
                                    initializer=self.bias_initializer)  # fmt: skip
        self.built = True

    def _patches(self, x):
        """`(N, m, m, fs * fs * C)`, depth `(y, x, c)`: y-major, as cuda-convnet's `y * fs + x`."""
        fs, s = self.filter_size, self.stride
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            # One op (XLA has it too); fs*fs strided slices were no faster, forward+backward,
            # on 2 shared cores.
            return tf.image.extract_patches(x, [1, fs, fs, 1], [1, s, s, 1], [1, 1, 1, 1], "VALID")
        return keras.ops.image.extract_patches(x, fs, strides=s, padding="valid")

    def call(self, inputs):
        ops = keras.ops
        m, fs, g = self._side, self.filter_size, self.groups
        pads = [[0, 0], [self.padding, self._after], [self.padding, self._after], [0, 0]]
        x = ops.pad(inputs, pads) if self.padding or self._after else inputs
        patches = self._patches(x)
        n = ops.shape(inputs)[0]
        fc, fg = inputs.shape[-1] // g, self.filters // g
        patches = ops.reshape(patches, (n, m * m, fs * fs, g, fc))
        patches = ops.reshape(ops.transpose(patches, (1, 3, 0, 2, 4)), (m * m, g, n, fs * fs * fc))
        kernel = ops.reshape(ops.cast(self.kernel, patches.dtype), (m * m, fs * fs * fc, g, fg))
        kernel = ops.transpose(kernel, (0, 2, 1, 3))  # (M, g, fs*fs*fc, fg)
        out = ops.matmul(patches, kernel)  # (M, g, N, fg)
        out = ops.reshape(ops.transpose(out, (2, 0, 1, 3)), (n, m, m, self.filters))
        return out + ops.cast(self.bias, out.dtype)

    def compute_output_shape(self, input_shape):
        m = local_modules(input_shape[1], self.filter_size, self.stride, self.padding)
        return (input_shape[0], m, m, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters, filter_size=self.filter_size, stride=self.stride,
            padding=self.padding, groups=self.groups,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
        )  # fmt: skip
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ContrastNormalization(keras.layers.Layer):
    """cuda-convnet's contrast normalization (`cnorm`), with cuda-convnet's gradient.

        d = x - mean_{size x size window}(x)
        y = x * (1 + alpha / size**2 * sum_{window} d**2) ** -beta

    The window starts `size // 2` pixels before each pixel and is clipped at
    the border; the sum of squares keeps the divisor `size**2`. The mean
    divides by the clipped window's pixel count (`divisor="clipped"`, SVN
    r556 and later, CHM 2012) or by `size**2` everywhere (`divisor="window"`,
    cuda-convnet as of 2011). The gradient is cuda-convnet's, which treats
    the mean as a constant (module docstring: `conv_util.cu` l.2214-2217), not
    the exact derivative of the forward.

    Args:
        size: window side in pixels.
        alpha: cuda-convnet `scale`, before its division by `size**2`.
        beta: cuda-convnet `pow`.
        divisor: `"clipped"` or `"window"`, the mean's divisor.
        **kwargs: base layer arguments.

    Example:

    >>> import numpy as np
    >>> from alexnet_keras.cuda_convnet.local_layers import ContrastNormalization
    >>> norm = ContrastNormalization(size=3, alpha=9.0, beta=1.0)
    >>> float(norm(np.ones((1, 3, 3, 1), "float32"))[0, 1, 1, 0])  # no contrast: x unchanged
    1.0
    """

    def __init__(self, size=5, alpha=1e-3, beta=0.75, divisor="clipped", **kwargs):
        super().__init__(**kwargs)
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"`size` must be a positive integer. Received: size={size!r}")
        if divisor not in ("clipped", "window"):
            raise ValueError(f"`divisor` must be 'clipped' or 'window'. Received: {divisor!r}")
        self.size, self.alpha, self.beta = size, float(alpha), float(beta)
        self.divisor = divisor

    def build(self, input_shape):
        n = input_shape[1]
        if n is None or n != input_shape[2] or self.size > n:
            raise ValueError(
                f"ContrastNormalization needs square maps of known size >= size={self.size}. "
                f"Received: {input_shape}"
            )
        if self.divisor == "window":
            self._mean_scale = np.ones((1, n, n, 1), np.float32)
        else:  # window mean * size**2 / clipped count = clipped sum / clipped count
            counts = [hi - lo for lo, hi in clipped_windows(n, self.size, 1, -(self.size // 2), n)]
            area = np.outer(counts, counts).astype(np.float32)
            self._mean_scale = (self.size**2 / area)[None, :, :, None]
        self.built = True

    def call(self, inputs):
        ops = keras.ops
        dtype = keras.backend.standardize_dtype(inputs.dtype)
        x = inputs if dtype == "float32" else ops.cast(inputs, "float32")
        size, alpha, beta = self.size, self.alpha, self.beta
        mean_scale = ops.convert_to_tensor(self._mean_scale)

        @ops.custom_gradient
        def norm(x):
            diffs = x - window_mean(x, size) * mean_scale
            denoms = 1.0 + alpha * window_mean(ops.square(diffs), size)
            scaled = ops.power(denoms, -beta)
            y = x * scaled

            # TF and JAX pass `upstream` alone; PyTorch passes the inputs, then `upstream=`.
            def grad(*args, upstream=None):
                dy = args[0] if upstream is None else upstream
                # cuda-convnet's convResponseNormUndo on the mean differences: the outputs
                # whose window holds a pixel are the window starting size-1-size//2 before it.
                acts = -2.0 * alpha * beta * dy * y / denoms
                return dy * scaled + diffs * window_mean(acts, size, size - 1 - size // 2)

            return y, grad

        y = norm(x)
        return y if dtype == "float32" else ops.cast(y, dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(size=self.size, alpha=self.alpha, beta=self.beta, divisor=self.divisor)
        return config

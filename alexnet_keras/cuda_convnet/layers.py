"""Keras layers with cuda-convnet's semantics, for nets built from CHM cfg files.

`cfg_model.build_model` needs three behaviours that no stock Keras layer has:

- `ConvnetPool2D`: cuda-convnet pooling. The output count is given (ceil
  mode) and windows start at `start + i * stride`, clipped at the image
  border. What an average divides by depends on the code's date
  (`docs/formats.md` §1.3): cuda-convnet 1 as of SVN r331/r333 (2011)
  divides by the full window area everywhere, clipped border windows
  included (`AvgPooler(_sizeX*_sizeX)`, `src/layer.cu` l.476; `a/_num`,
  `conv_util.cuh` l.50-65), in the forward and the backward pass; r556
  (2012-07) and CHM's 2012 code divide by the clipped window's pixel count
  (`AvgPooler()`, CHM `src/layer.cu` l.1307; cuda-convnet2
  `conv_util.cuh` l.80-82). `divisor="window"` or `"clipped"` picks one.
- `ConvnetNeuron`: cuda-convnet's neuron types (relu, ident, logistic,
  `tanh[a,b]` = a * tanh(b * x), abs).
- `ConvnetDropout`: the `hs` layer, dropout that is not inverted: training
  multiplies by a Bernoulli(keep) mask, inference (or `enable=false`) by
  `keep` (`src/layer.cu`, `HiddenSexLayer`; `docs/formats.md` §1.3).

All three are `keras.ops` code and run on every Keras backend.
"""

import keras
import ml_dtypes
import numpy as np

__all__ = ["ConvnetDropout", "ConvnetNeuron", "ConvnetPool2D", "clipped_windows"]

_PACKAGE = "alexnet_keras"


def clipped_windows(size, window, stride, start, outputs):
    """`(first, last)` input index ranges of each output, clipped to `[0, size)`.

    Example:

    >>> clipped_windows(16, 3, 2, 0, 8)[-1]  # the last window keeps 2 of its 3 rows
    (14, 16)
    """
    spans = []
    for i in range(outputs):
        lo = start + i * stride
        spans.append((min(max(lo, 0), size), min(max(lo + window, 0), size)))
    return spans


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ConvnetPool2D(keras.layers.Layer):
    """cuda-convnet max or average pooling over square maps, windows clipped at the border.

    Args:
        pool: `"max"` or `"avg"`.
        size: the window side (`sizeX`).
        stride: the step between windows.
        start: where the first window starts (may be negative).
        outputs: outputs per side (`outputsX`, or
            `ceil((in - start - size) / stride) + 1`).
        divisor: what an average divides by: `"clipped"`, the pixels of
            the window inside the image (cuda-convnet from r556, 2012, and
            CHM's code), or `"window"`, `size**2` everywhere (cuda-convnet
            1 r331-r333, 2011: the CIFAR-10 nets of `example-layers/`).
            Max pooling ignores it.
        **kwargs: base layer arguments.

    Example:

    >>> import numpy as np
    >>> from alexnet_keras.cuda_convnet.layers import ConvnetPool2D
    >>> pool = ConvnetPool2D("avg", size=3, stride=2, start=0, outputs=2)
    >>> y = pool(np.arange(16, dtype="float32").reshape(1, 4, 4, 1))
    >>> float(y[0, 1, 1, 0])  # the clipped 2x2 window {10, 11, 14, 15}, divided by 4
    12.5
    >>> pool = ConvnetPool2D("avg", size=3, stride=2, start=0, outputs=2, divisor="window")
    >>> y = pool(np.arange(16, dtype="float32").reshape(1, 4, 4, 1))
    >>> round(float(y[0, 1, 1, 0]), 4)  # the same window, divided by 9
    5.5556
    """

    DIVISORS = ("clipped", "window")

    def __init__(self, pool, size, stride, start=0, outputs=None, divisor="clipped", **kwargs):
        super().__init__(**kwargs)
        if pool not in ("max", "avg"):
            raise ValueError(f"`pool` must be 'max' or 'avg'. Received: pool={pool!r}")
        if divisor not in self.DIVISORS:
            raise ValueError(
                f"`divisor` must be one of {self.DIVISORS}. Received: divisor={divisor!r}"
            )
        self.divisor = divisor
        self.pool, self.size, self.stride = pool, int(size), int(stride)
        self.start = int(start)
        self.outputs = None if outputs is None else int(outputs)

    def _outputs(self, n):
        if self.outputs:
            return self.outputs
        return -(-(n - self.start - self.size) // self.stride) + 1

    def build(self, input_shape):
        n = input_shape[1]
        if n is None or n != input_shape[2]:
            raise ValueError(
                f"ConvnetPool2D needs square maps of known size. Received: {input_shape}"
            )
        m = self._outputs(n)
        extent = self.start + (m - 1) * self.stride + self.size
        self._pads = (max(0, -self.start), max(0, extent - n))
        self._offset = self.start + self._pads[0]
        self._extent = (m - 1) * self.stride + self.size
        counts = np.array([hi - lo for lo, hi in clipped_windows(n, self.size, self.stride,
                                                                  self.start, m)])  # fmt: skip
        area = np.outer(counts, counts).astype(np.float32)
        self._area = np.maximum(area, 1.0)[None, :, :, None]
        self.built = True

    def call(self, inputs):
        ops = keras.ops
        dtype = keras.backend.standardize_dtype(inputs.dtype)
        fill = float(ml_dtypes.finfo(dtype).min) if self.pool == "max" else 0
        pads = [[0, 0], list(self._pads), list(self._pads), [0, 0]]
        x = ops.pad(inputs, pads, constant_values=fill)
        x = x[:, self._offset : self._offset + self._extent, self._offset : self._offset
              + self._extent, :]  # fmt: skip
        if self.pool == "max":
            return ops.max_pool(x, self.size, self.stride, "valid")
        mean = ops.average_pool(x, self.size, self.stride, "valid")  # zeros padded: sum / size**2
        if self.divisor == "window":
            return mean
        return mean * float(self.size**2) / ops.cast(self._area, dtype)

    def compute_output_shape(self, input_shape):
        m = self._outputs(input_shape[1])
        return (input_shape[0], m, m, input_shape[3])

    def get_config(self):
        config = super().get_config()
        config.update(pool=self.pool, size=self.size, stride=self.stride, start=self.start,
                      outputs=self.outputs, divisor=self.divisor)  # fmt: skip
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ConvnetNeuron(keras.layers.Layer):
    """A cuda-convnet neuron: `relu`, `ident`, `logistic`, `tanh` (a * tanh(b * x)) or `abs`.

    Example:

    >>> import numpy as np
    >>> from alexnet_keras.cuda_convnet.layers import ConvnetNeuron
    >>> round(float(ConvnetNeuron("tanh", (2.0, 0.5))(np.array([[1.0]], "float32"))[0, 0]), 5)
    0.92423
    """

    KINDS = ("relu", "ident", "logistic", "tanh", "abs")

    def __init__(self, kind, params=(), **kwargs):
        super().__init__(**kwargs)
        if kind not in self.KINDS:
            raise ValueError(f"`kind` must be one of {self.KINDS}. Received: kind={kind!r}")
        self.kind = kind
        self.params = tuple(float(p) for p in params) or ((1.0, 1.0) if kind == "tanh" else ())

    def call(self, x):
        if self.kind == "relu":
            return keras.ops.relu(x)
        if self.kind == "logistic":
            return keras.ops.sigmoid(x)
        if self.kind == "tanh":
            a, b = self.params
            return a * keras.ops.tanh(b * x)
        if self.kind == "abs":
            return keras.ops.abs(x)
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(kind=self.kind, params=list(self.params))
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ConvnetDropout(keras.layers.Layer):
    """cuda-convnet `hs`: x * Bernoulli(keep) when training, x * keep otherwise.

    Args:
        keep: the keep probability.
        enable: `False` makes training behave as inference (cuda-convnet's
            `enable=0`).
        seed: seed of the masks.

    Example:

    >>> import numpy as np
    >>> from alexnet_keras.cuda_convnet.layers import ConvnetDropout
    >>> float(ConvnetDropout(0.5)(np.ones((1, 4), "float32"))[0, 0])  # inference: x * keep
    0.5
    """

    def __init__(self, keep=0.5, enable=True, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 < keep <= 1.0:
            raise ValueError(f"`keep` must be in (0, 1]. Received: keep={keep!r}")
        self.keep, self.enable, self.seed = float(keep), bool(enable), seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=False):
        if training and self.enable:
            mask = keras.random.uniform(keras.ops.shape(x), seed=self.seed_generator) < self.keep
            return x * keras.ops.cast(mask, x.dtype)
        return x * self.keep

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(keep=self.keep, enable=self.enable, seed=self.seed)
        return config

"""Caffe layer types and hyper-parameters, shared by the `.caffemodel` and `.prototxt` readers.

Both readers reduce a layer's parameter messages to one raw form,
`{"convolution_param": {"kernel_size": [11], ...}, ...}` (every field a list,
as fields may repeat), and `layer_params` turns that into the normalised
`params` of a layer, with caffe.proto's defaults filled in. Enum values may be
numbers (binary files) or names (text files). Field numbers are those of BVLC
`src/caffe/proto/caffe.proto` (formats.md §7).
"""

__all__ = ["MESSAGES", "SCHEMAS", "V1_TYPES", "layer_kind", "layer_params"]

# V1LayerParameter.LayerType: `layers { type: CONVOLUTION }` in files before 2015.
V1_TYPES = {
    0: "NONE", 1: "ACCURACY", 2: "BNLL", 3: "CONCAT", 4: "CONVOLUTION", 5: "DATA",
    6: "DROPOUT", 7: "EUCLIDEAN_LOSS", 8: "FLATTEN", 9: "HDF5_DATA", 10: "HDF5_OUTPUT",
    11: "IM2COL", 12: "IMAGE_DATA", 13: "INFOGAIN_LOSS", 14: "INNER_PRODUCT", 15: "LRN",
    16: "MULTINOMIAL_LOGISTIC_LOSS", 17: "POOLING", 18: "RELU", 19: "SIGMOID", 20: "SOFTMAX",
    21: "SOFTMAX_LOSS", 22: "SPLIT", 23: "TANH", 24: "WINDOW_DATA", 25: "ELTWISE", 26: "POWER",
    27: "SIGMOID_CROSS_ENTROPY_LOSS", 28: "HINGE_LOSS", 29: "MEMORY_DATA", 30: "ARGMAX",
    31: "THRESHOLD", 32: "DUMMY_DATA", 33: "SLICE", 34: "MVN", 35: "ABSVAL", 36: "SILENCE",
    37: "CONTRASTIVE_LOSS", 38: "EXP", 39: "DECONVOLUTION",
}  # fmt: skip

_KINDS = {
    "Convolution": "conv", "CONVOLUTION": "conv",
    "InnerProduct": "fc", "INNER_PRODUCT": "fc",
    "LRN": "lrn",
    "Pooling": "pool", "POOLING": "pool",
    "ReLU": "relu", "RELU": "relu",
    "Dropout": "dropout", "DROPOUT": "dropout",
    "Softmax": "softmax", "SOFTMAX": "softmax",
    "SoftmaxWithLoss": "loss", "SOFTMAX_LOSS": "loss",
    "Data": "data", "DATA": "data", "Input": "data",
}  # fmt: skip

# The parameter message each kind reads; other kinds have no normalised params.
MESSAGES = {
    "conv": "convolution_param",
    "fc": "inner_product_param",
    "lrn": "lrn_param",
    "pool": "pooling_param",
    "dropout": "dropout_param",
    "data": "input_param",
}

_U, _B, _E, _F = "uint", "bool", "enum", "float"
# Field number -> (name, wire kind) of the messages in MESSAGES; "shape" is a BlobShape.
SCHEMAS = {
    "convolution_param": {
        1: ("num_output", _U), 2: ("bias_term", _B), 3: ("pad", _U), 4: ("kernel_size", _U),
        5: ("group", _U), 6: ("stride", _U), 9: ("pad_h", _U), 10: ("pad_w", _U),
        11: ("kernel_h", _U), 12: ("kernel_w", _U), 13: ("stride_h", _U), 14: ("stride_w", _U),
        18: ("dilation", _U),
    },
    "pooling_param": {
        1: ("pool", _E), 2: ("kernel_size", _U), 3: ("stride", _U), 4: ("pad", _U),
        5: ("kernel_h", _U), 6: ("kernel_w", _U), 7: ("stride_h", _U), 8: ("stride_w", _U),
        9: ("pad_h", _U), 10: ("pad_w", _U), 12: ("global_pooling", _B),
    },
    "lrn_param": {
        1: ("local_size", _U), 2: ("alpha", _F), 3: ("beta", _F), 4: ("norm_region", _E),
        5: ("k", _F),
    },
    "inner_product_param": {1: ("num_output", _U), 2: ("bias_term", _B)},
    "dropout_param": {1: ("dropout_ratio", _F)},
    "input_param": {1: ("shape", "shape")},
}  # fmt: skip

_POOL = {
    0: "max",
    1: "ave",
    2: "stochastic",
    "MAX": "max",
    "AVE": "ave",
    "STOCHASTIC": "stochastic",
}
_NORM_REGION = {
    0: "across_channels",
    1: "within_channel",
    "ACROSS_CHANNELS": "across_channels",
    "WITHIN_CHANNEL": "within_channel",
}


def layer_kind(source_type):
    """The normalised type ("conv", "fc", ..., "other") of a Caffe type name."""
    return _KINDS.get(source_type, "other")


class _Fields:
    """Typed access to one raw parameter message, with errors that name the field."""

    def __init__(self, layer, message, raw):
        self.where = f"layer '{layer}': {message}"
        self.raw = raw

    def has(self, name):
        return bool(self.raw.get(name))

    def _bad(self, name, what, value):
        return ValueError(f"{self.where}.{name} must be {what}. Received: {value!r}")

    def uints(self, name):
        values = self.raw.get(name, [])
        for v in values:
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise self._bad(name, "a non-negative integer", v)
        return list(values)

    def _last(self, name):
        values = self.raw.get(name)
        return values[-1] if values else None  # proto2: the last of an optional field wins

    def uint(self, name, default=None):
        values = self.uints(name)
        return values[-1] if values else default

    def float(self, name, default):
        v = self._last(name)
        if v is None:
            return default
        if isinstance(v, str) and v.lower() in ("inf", "infinity", "nan"):
            return float(v)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self._bad(name, "a number", v)
        return float(v)

    def bool(self, name, default):
        v = self._last(name)
        if v is None:
            return default
        if v not in (True, False) or isinstance(v, float):  # the text format allows 0 and 1
            raise self._bad(name, "true or false", v)
        return bool(v)

    def enum(self, name, table, default):
        v = self._last(name)
        if v is None:
            return default
        if isinstance(v, bool) or not isinstance(v, (int, str)) or v not in table:
            allowed = ", ".join(k for k in table if isinstance(k, str))
            raise self._bad(name, f"one of {allowed}", v)
        return table[v]

    def pair(self, name, default, *, repeated):
        """`(h, w)` from `name` or from `name_h`/`name_w`, as Caffe resolves them."""
        base = name.removesuffix("_size")  # kernel_size -> kernel_h, kernel_w
        h, w = f"{base}_h", f"{base}_w"
        if self.has(h) or self.has(w):
            return (self.uint(h, default), self.uint(w, default))
        values = self.uints(name) if repeated else self.uints(name)[-1:]
        if not values:
            return None if default is None else (default, default)
        if len(values) > 2:
            raise self._bad(name, "one value or two (2-D layers only)", values)
        return (values[0], values[-1])

    def shape(self, name):
        values = self.raw.get(name)
        if not values:
            return None
        msg = values[0]
        dims = msg.get("dim", []) if isinstance(msg, dict) else None
        if dims is None or any(isinstance(d, bool) or not isinstance(d, int) for d in dims):
            raise self._bad(name, "a shape { dim: ... } block", msg)
        return tuple(dims)


def _conv(f):
    return {
        "num_output": f.uint("num_output"),
        "bias_term": f.bool("bias_term", True),
        "kernel_size": f.pair("kernel_size", None, repeated=True),
        "stride": f.pair("stride", 1, repeated=True),
        "pad": f.pair("pad", 0, repeated=True),
        "dilation": f.pair("dilation", 1, repeated=True),
        "group": f.uint("group", 1),
    }


def _pool(f):
    return {
        "pool": f.enum("pool", _POOL, "max"),
        "kernel_size": f.pair("kernel_size", None, repeated=False),
        "stride": f.pair("stride", 1, repeated=False),
        "pad": f.pair("pad", 0, repeated=False),
        "global_pooling": f.bool("global_pooling", False),
    }


def _lrn(f):
    return {
        "local_size": f.uint("local_size", 5),
        "alpha": f.float("alpha", 1.0),
        "beta": f.float("beta", 0.75),
        "norm_region": f.enum("norm_region", _NORM_REGION, "across_channels"),
        "k": f.float("k", 1.0),
    }


_BUILDERS = {
    "conv": _conv,
    "pool": _pool,
    "lrn": _lrn,
    "fc": lambda f: {"num_output": f.uint("num_output"), "bias_term": f.bool("bias_term", True)},
    "dropout": lambda f: {"dropout_ratio": f.float("dropout_ratio", 0.5)},
    "data": lambda f: {"shape": f.shape("shape")},
}


def layer_params(layer, kind, messages):
    """The normalised hyper-parameters of one layer.

    Keys by kind (caffe.proto's defaults where a field is absent; pairs are
    `(h, w)`):

    - conv: num_output (None if absent), bias_term (True), kernel_size (None
      if absent), stride ((1, 1)), pad ((0, 0)), dilation ((1, 1)), group (1).
    - fc: num_output, bias_term (True).
    - lrn: local_size (5), alpha (1.0), beta (0.75), norm_region
      ("across_channels" or "within_channel"), k (1.0).
    - pool: pool ("max", "ave" or "stochastic"; "max"), kernel_size (None if
      absent), stride ((1, 1)), pad ((0, 0)), global_pooling (False).
    - dropout: dropout_ratio (0.5).
    - data: shape (an Input layer's `input_param { shape }` as a tuple, else None).
    - other kinds: none.

    Args:
        layer: the layer name, for error messages.
        kind: from `layer_kind`.
        messages: `{message name: {field name: [values]}}`.

    Raises:
        ValueError: `"layer 'conv1': convolution_param.kernel_size must be a
            non-negative integer. Received: 'x'"` and the like; the reader
            adds the file.
    """
    build = _BUILDERS.get(kind)
    if build is None:
        return {}
    message = MESSAGES[kind]
    return build(_Fields(layer, message, messages.get(message, {})))

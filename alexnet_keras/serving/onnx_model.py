"""The ONNX export: the AlexNet graph written op by op from its variant spec.

The graph is built with `onnx.helper` from `variants.py` and `geometry.py`
(the same rules `model.py` builds the Keras graph from) and the Keras model's
weights, in NCHW, the layout ONNX runtimes run natively:

- in the graph: the centre crop at Caffe's offset (`(H - S) // 2`), the
  weights' colour order and mean, the two-tower convolutions as one `Conv`
  with `group=2`, ceil-mode pooling as explicit bottom/right padding, Caffe /
  cuda-convnet LRN as ONNX `LRN` (which divides alpha by the window, like
  Caffe), cuda-convnet's spatial `rnorm` as a zero-padded `AveragePool`, the
  softmax, top-k and the class labels (a string constant gathered by index);
- not in the graph: decoding and the antialiased resize (ONNX `Resize` does not
  compute TensorFlow's `ScaleAndTranslate`), so the model takes float32 RGB
  0..255 pixels already resized as the weights' protocol says
  (`alexnet_keras.load_image(path, protocol=...)`).

Why not tf2onnx (which `keras.Model.export(format="onnx")` also calls on the
TensorFlow backend): 1.17 converts this model correctly, but takes 70-80 s
here per export, copying the 240 MB of constants through its graph
optimisers, and its large-model path calls `np.product`, which NumPy 2 removed.
Writing the graph takes about a second and needs only the `onnx` package.
"""

import json

import numpy as np

from alexnet_keras import variants as V
from alexnet_keras.geometry import conv_geometry, pool_geometry

__all__ = ["OPSET", "onnx_model"]

OPSET = 17  # ONNX Runtime, OpenVINO and the quantization tools all take it
_IR_VERSION = 8  # the IR version that came with opset 17: the widest reader support


class _Graph:
    """Nodes and initializers under construction; every value gets a fresh name."""

    def __init__(self):
        self.nodes, self.initializers, self._count = [], [], 0

    def name(self, stem):
        self._count += 1
        return f"{stem}_{self._count}"

    def const(self, stem, array):
        from onnx import numpy_helper

        name = self.name(stem)
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(self, op_type, inputs, stem=None, outputs=1, **attrs):
        from onnx import helper

        names = [self.name(stem or op_type.lower()) for _ in range(outputs)]
        attrs.setdefault("name", names[0])  # named nodes: tools can pick them (fc8_12, ...)
        self.nodes.append(helper.make_node(op_type, list(inputs), names, **attrs))
        return names[0] if outputs == 1 else names


def _crop_and_normalize(g, images, size, preprocessing):
    """`[N, H, W, 3]` RGB 0..255 to the centred `[N, 3, S, S]` model input."""
    hw = g.op("Slice", [g.op("Shape", [images]), g.const("one", [1]), g.const("three", [3])])
    sizes = g.const("crop_size", np.array([size, size], np.int64))
    top_left = g.op("Div", [g.op("Sub", [hw, sizes]), g.const("two", np.array([2, 2], np.int64))])
    bottom_right = g.op("Add", [top_left, sizes])
    x = g.op("Slice", [images, top_left, bottom_right, g.const("hw_axes", [1, 2])], "crop")
    # ONNX has no assertion: a smaller image would be sliced from its far edge and fail
    # somewhere deep. This reshape to the exact crop shape fails first, and ONNX Runtime's
    # message quotes the node's name.
    batch = g.op("Slice", [g.op("Shape", [images]), g.const("zero", [0]), g.const("one", [1])])
    crop_shape = g.op("Concat", [batch, g.const("crop_shape", [size, size, 3])], axis=0)
    x = g.op("Reshape", [x, crop_shape], "crop",
             name=f"images: height and width must be at least {size}")  # fmt: skip
    if preprocessing["color_order"] == "BGR":
        x = g.op("Gather", [x, g.const("bgr", np.array([2, 1, 0], np.int64))], "bgr", axis=3)
    mean = np.asarray(preprocessing.get("mean", (0.0, 0.0, 0.0)), np.float32)
    x = g.op("Sub", [x, g.const("mean", mean)], "centred")
    return g.op("Transpose", [x], "nchw", perm=[0, 3, 1, 2])


def _lrn(g, x, op, channels):
    attrs = dict(size=op.size, alpha=op.alpha, beta=op.beta, bias=op.bias)
    if op.groups == 1:
        return g.op("LRN", [x], op.name, **attrs)
    split = g.const("split", np.full(op.groups, channels // op.groups, np.int64))
    parts = g.op("Split", [x, split], op.name, outputs=op.groups, axis=1)
    return g.op("Concat", [g.op("LRN", [p], op.name, **attrs) for p in parts], op.name, axis=1)


def _spatial_norm(g, x, op):
    """`x * (bias + alpha * clipped_window_sum(x**2) / size**2) ** -beta` (`window_mean`)."""
    half = op.size // 2
    mean_sq = g.op("AveragePool", [g.op("Mul", [x, x])], op.name, kernel_shape=[op.size] * 2,
                   pads=[half, half, op.size - 1 - half, op.size - 1 - half],
                   count_include_pad=1)  # fmt: skip
    scaled = g.op("Mul", [mean_sq, g.const("alpha", np.float32(op.alpha))])
    d = g.op("Add", [scaled, g.const("bias", np.float32(op.bias))])
    return g.op("Mul", [x, g.op("Pow", [d, g.const("neg_beta", np.float32(-op.beta))])], op.name)


def _conv(g, x, op, rounding, side, weights):
    kernel, bias = weights
    before, after = conv_geometry(side, op, rounding)[1]
    w = g.const(f"{op.name}_w", np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
    b = g.const(f"{op.name}_b", bias)
    y = g.op("Conv", [x, w, b], op.name, kernel_shape=[op.kernel] * 2, strides=[op.stride] * 2,
             pads=[before, before, after, after], group=op.groups)  # fmt: skip
    return y, conv_geometry(side, op, rounding)[0]


def _max_pool(g, x, op, side):
    out = pool_geometry(side, op)[0]
    # Caffe's ceil mode: the last window may run past the edge; those pixels never win.
    extra = max(0, (out - 1) * op.stride + op.size - side)
    y = g.op("MaxPool", [x], op.name, kernel_shape=[op.size] * 2, strides=[op.stride] * 2,
             pads=[0, 0, extra, extra])  # fmt: skip
    return y, out


def _features(g, x, spec, size, weights):
    side, channels = size, 3
    for op in spec.features:
        if isinstance(op, V.Conv):
            x, side = _conv(g, x, op, spec.conv_rounding, side, weights[op.name])
            channels = op.filters
        elif isinstance(op, V.ReLU):
            x = g.op("Relu", [x], op.name)
        elif isinstance(op, V.LRN):
            x = _lrn(g, x, op, channels)
        elif isinstance(op, V.SpatialNorm):
            x = _spatial_norm(g, x, op)
        elif isinstance(op, V.MaxPool):
            x, side = _max_pool(g, x, op, side)
        else:  # pragma: no cover - variants.py holds only the ops above
            raise TypeError(f"unknown op {op!r}")
    return x


def _classifier(g, x, weights, top_k, labels):
    # Keras flattens pool5 in HWC order: back to NHWC first, so fc6's rows stay as they are.
    x = g.op("Flatten", [g.op("Transpose", [x], "nhwc", perm=[0, 2, 3, 1])], "flatten", axis=1)
    for name in ("fc6", "fc7", "fc8"):
        w, b = weights[name]
        x = g.op("Gemm", [x, g.const(f"{name}_w", w), g.const(f"{name}_b", b)], name)
        if name != "fc8":
            x = g.op("Relu", [x], f"relu{name[2:]}")  # dropout is the identity here
    probabilities = g.op("Softmax", [x], "prob", axis=-1)
    scores, indices = g.op("TopK", [probabilities, g.const("k", np.array([top_k], np.int64))],
                           "top_k", outputs=2, axis=-1)  # fmt: skip
    table = g.const("labels", np.array(labels, dtype=object))
    return {
        "probabilities": g.op("Identity", [probabilities]),
        "top_k_indices": g.op("Cast", [indices], to=6),  # int32, as in the SavedModel
        "top_k_scores": g.op("Identity", [scores]),
        "top_k_labels": g.op("Gather", [table, indices], "labels", axis=0),
    }


def onnx_model(model, *, variant, preprocessing, labels, top_k, metadata):
    """The `onnx.ModelProto` of a built `AlexNet` with its serving pre- and post-processing.

    Args:
        model: an `AlexNet` with its classifier, built at its input size.
        variant: the variant name (its spec gives the graph).
        preprocessing: `{"color_order", "mean"}` or a variant name.
        labels: one string per class.
        top_k: labels per image.
        metadata: `{key: value}` written to `metadata_props` (values as JSON
            unless already strings).

    Returns:
        An `onnx.ModelProto`. Its input `images` is float32 `[N, H, W, 3]`
        (RGB 0..255, `H, W >= ` the input size); its outputs are
        `probabilities`, `top_k_indices` (int32), `top_k_scores` and
        `top_k_labels` (strings).

    Example:

    >>> import alexnet_keras
    >>> from alexnet_keras.serving.onnx_model import onnx_model
    >>> m = onnx_model(alexnet_keras.AlexNet(classes=3), variant="bvlc", preprocessing="bvlc",
    ...                labels=["a", "b", "c"], top_k=2, metadata={"variant": "bvlc"})
    >>> [o.name for o in m.graph.output]
    ['probabilities', 'top_k_indices', 'top_k_scores', 'top_k_labels']
    """
    from onnx import TensorProto, helper

    spec = V.get_variant(variant)
    if isinstance(preprocessing, str):
        preprocessing = V.get_variant(preprocessing).preprocessing
    size = int(model.input_shape[1])
    weights = {layer.name: layer.get_weights() for layer in model.layers if layer.weights}
    g = _Graph()
    x = _crop_and_normalize(g, "images", size, preprocessing)
    outputs = _classifier(g, _features(g, x, spec, size, weights), weights, top_k, labels)
    for public, internal in outputs.items():  # rename each output's producer to the public name
        next(n for n in g.nodes if internal in n.output).output[0] = public
    classes = len(labels)
    types = {"probabilities": (TensorProto.FLOAT, ["batch", classes]),
             "top_k_indices": (TensorProto.INT32, ["batch", top_k]),
             "top_k_scores": (TensorProto.FLOAT, ["batch", top_k]),
             "top_k_labels": (TensorProto.STRING, ["batch", top_k])}  # fmt: skip
    images = helper.make_tensor_value_info(
        "images", TensorProto.FLOAT, ["batch", "height", "width", 3]
    )
    graph = helper.make_graph(
        g.nodes, f"alexnet_{variant}", [images],
        [helper.make_tensor_value_info(k, t, shape) for k, (t, shape) in types.items()],
        initializer=g.initializers,
    )  # fmt: skip
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="alexnet-keras", ir_version=_IR_VERSION)  # fmt: skip
    helper.set_model_props(
        proto, {k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}
    )
    return proto


def require_onnx(*packages):
    """Imports the optional packages an ONNX export needs, or one line naming the install."""
    import importlib

    try:
        return [importlib.import_module(p) for p in packages]
    except ImportError as e:
        raise ValueError(
            f"--format onnx needs the {e.name!r} package: pip install 'alexnet-keras[onnx]'"
        ) from None


def onnx_bytes(model, record, labels):
    """The serialized fp32 ONNX model of an export (`export_model`'s `record`).

    `metadata_props` carries what a client needs besides the graph: the
    variant, input size, resize protocol, colour order, labels and source.
    """
    require_onnx("onnx")
    preprocessing = record["preprocessing"] or record["variant"]
    if isinstance(preprocessing, str):
        preprocessing = V.get_variant(preprocessing).preprocessing
    mean = np.asarray(preprocessing.get("mean", (0.0, 0.0, 0.0)))
    metadata = {
        "variant": record["variant"],
        "input_size": record["input_size"],
        "protocol": record["protocol"],
        "resize": "pass RGB pixels resized as alexnet_keras.load_image(path, protocol=...) does",
        "color_order": preprocessing["color_order"] + " (converted from RGB in the graph)",
        "mean": mean.tolist() if mean.size == 3 else f"a {mean.shape} image (in the graph)",
        "classes": len(labels),
        "top_k": record["top_k"],
        "labels": list(labels),
        "source": record.get("source") or "",
    }
    proto = onnx_model(model, variant=record["variant"], preprocessing=preprocessing,
                       labels=labels, top_k=record["top_k"], metadata=metadata)  # fmt: skip
    return proto.SerializeToString()

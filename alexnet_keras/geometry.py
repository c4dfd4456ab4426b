"""AlexNet geometry without Keras: output sizes, padding and the layer plan.

`model.py` builds the Keras graph with these rules, and the converters use
`layer_plan` to know every layer's name, Keras class and weight shapes without
importing TensorFlow. A test checks that the plan equals the built model.
"""

import dataclasses
import math

from alexnet_keras import variants as V

__all__ = [
    "PlannedLayer",
    "conv_geometry",
    "conv_padding",
    "layer_plan",
    "min_input_side",
    "pool_geometry",
]


@dataclasses.dataclass(frozen=True)
class PlannedLayer:
    """One layer of the Keras model: its name, class name and weight shapes."""

    name: str
    keras_class: str
    weight_shapes: tuple = ()


def conv_geometry(size, conv, rounding):
    """Output size and (before, after) zero padding of one spatial dimension."""
    span = size + 2 * conv.pad - conv.kernel
    if span < 0:
        return None, None
    steps = span // conv.stride if rounding == "floor" else math.ceil(span / conv.stride)
    out = steps + 1
    # cuda-convnet reads the pixels past the edge as zeros (ceil); Caffe never
    # reaches them (floor), so its "extra" is negative and the pixels are unused.
    extra = max(0, (out - 1) * conv.stride + conv.kernel - (size + 2 * conv.pad))
    return out, (conv.pad, conv.pad + extra)


def pool_geometry(size, pool):
    """Caffe/cuda-convnet ceil-mode pooling: output size and the Keras padding."""
    if size < pool.size:
        return None, None
    out = math.ceil((size - pool.size) / pool.stride) + 1
    if (out - 1) * pool.stride >= size:  # Caffe: the last window must start inside
        out -= 1
    if (out - 1) * pool.stride + pool.size <= size:
        return out, "valid"
    # TF's SAME pooling ignores padded pixels, like Caffe's clipped window; for
    # these sizes it puts all padding at the bottom/right and gives `out` rows.
    same_total = (math.ceil(size / pool.stride) - 1) * pool.stride + pool.size - size
    if math.ceil(size / pool.stride) != out or same_total // 2 != 0:
        raise ValueError(f"'{pool.name}' cannot pool {size} pixels in ceil mode. Received: {size}")
    return out, "same"


def conv_padding(conv, rounding, size):
    """The Keras padding of a conv and the ZeroPadding2D it needs first, if any.

    Returns:
        `(padding, pads)`: `"same"` or `"valid"`, and the per-axis
        `(before, after)` zero padding for a `ZeroPadding2D`, or None.
    """
    pads = tuple(conv_geometry(s, conv, rounding)[1] for s in size)
    if (
        conv.stride == 1
        and all(p == (conv.pad, conv.pad) for p in pads)
        and conv.pad == (conv.kernel - 1) // 2
    ):
        return "same", None
    return "valid", (pads if any(p != (0, 0) for p in pads) else None)


def _pool5_side(spec, side):
    """pool5's side for an input side, or None where a layer would get no output."""
    for op in spec.features:
        if isinstance(op, V.Conv):
            side = conv_geometry(side, op, spec.conv_rounding)[0]
        elif isinstance(op, V.MaxPool):
            try:
                side = pool_geometry(side, op)[0]
            except ValueError:  # a size ceil mode cannot pool
                return None
        if side is None or side < 1:
            return None
    return side


def min_input_side(spec):
    """The smallest input side that gives `spec`'s pool5 a map (without the classifier).

    Example:

    >>> from alexnet_keras.geometry import min_input_side
    >>> min_input_side("bvlc"), min_input_side("chm2012")
    (55, 52)
    """
    spec = V.get_variant(spec) if isinstance(spec, str) else spec
    return next(s for s in range(1, 10_000) if _pool5_side(spec, s) is not None)


_OP_CLASS = {
    V.ReLU: "ReLU",
    V.LRN: "LocalResponseNormalization",
    V.SpatialNorm: "SpatialResponseNormalization",
    V.MaxPool: "MaxPooling2D",
}


def layer_plan(spec, input_size=None, classes=1000):
    """The layers of `AlexNet(variant=spec.name, ...)` with its classifier, in order.

    Args:
        spec: a `VariantSpec` or a variant name.
        input_size: 224..227; defaults to the variant's own size.
        classes: fc8 outputs.

    Returns:
        A list of `PlannedLayer`, the same sequence as `model.layers`.

    Example:

    >>> from alexnet_keras.geometry import layer_plan
    >>> [(p.name, p.weight_shapes) for p in layer_plan("bvlc") if p.name == "conv2"]
    [('conv2', ((5, 5, 48, 256), (256,)))]
    """
    spec = V.get_variant(spec) if isinstance(spec, str) else spec
    size = (input_size or spec.default_size,) * 2
    plan = [PlannedLayer("image", "InputLayer")]
    channels = 3
    for op in spec.features:
        if isinstance(op, V.Conv):
            if conv_padding(op, spec.conv_rounding, size)[1] is not None:
                plan.append(PlannedLayer(f"{op.name}_pad", "ZeroPadding2D"))
            shapes = ((op.kernel, op.kernel, channels // op.groups, op.filters), (op.filters,))
            cls = "GroupedConv2D" if op.groups > 1 else "Conv2D"
            plan.append(PlannedLayer(op.name, cls, shapes))
            size = tuple(conv_geometry(s, op, spec.conv_rounding)[0] for s in size)
            channels = op.filters
        else:
            plan.append(PlannedLayer(op.name, _OP_CLASS[type(op)]))
            if isinstance(op, V.MaxPool):
                size = tuple(pool_geometry(s, op)[0] for s in size)
    fc_in = size[0] * size[1] * channels
    plan.append(PlannedLayer("flatten", "Flatten"))
    for i in (6, 7):
        plan.append(PlannedLayer(f"fc{i}", "Dense", ((fc_in, V.FC_UNITS), (V.FC_UNITS,))))
        plan += [PlannedLayer(f"relu{i}", "ReLU"), PlannedLayer(f"drop{i}", "Dropout")]
        fc_in = V.FC_UNITS
    plan.append(PlannedLayer("fc8", "Dense", ((fc_in, classes), (classes,))))
    plan.append(PlannedLayer("prob", "Activation"))
    return plan

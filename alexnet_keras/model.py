"""`AlexNet(...)`: the functional graph, built from a variant spec."""

import keras

from alexnet_keras import pretrained
from alexnet_keras import variants as V
from alexnet_keras.geometry import conv_geometry, conv_padding, min_input_side, pool_geometry
from alexnet_keras.layers import (
    GroupedConv2D,
    LocalResponseNormalization,
    SpatialResponseNormalization,
)
from alexnet_keras.weights import load_into, read_metadata

__all__ = ["AlexNet"]


def AlexNet(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=None,
    classifier_activation="softmax",
    variant=None,
    name=None,
):
    """Builds the 2012 AlexNet: two-tower grouped convolutions and LRN.

    This is the network of Krizhevsky et al. (2012) as the weight releases
    define it, not torchvision's single-tower "one weird trick" model (64/192
    filters, no LRN, no groups). Three variants share one 60,965,224-parameter
    graph and differ in the details their weights depend on:

    - `"bvlc"` (default): BVLC Caffe `bvlc_alexnet` and `bvlc_alexnet.npy`;
      conv -> ReLU -> LRN -> pool, LRN `k=1`, 227x227 BGR input.
    - `"caffenet"`: BVLC `bvlc_reference_caffenet`; pool before LRN.
    - `"chm2012"`: the CHM release of Krizhevsky's cuda-convnet net
      (`layers-145.cfg`); LRN on pre-ReLU conv1, `k=2` per GPU half, a 5x5
      spatial `rnorm` after `norm2`, 224x224 RGB input.

    Every variant takes 224 and 227 inputs. Sizes round as in the source:
    Caffe rounds convolutions down and pooling up; cuda-convnet rounds both up
    with implicit zeros at the bottom/right (224 -> 55 in conv1). Either way
    fc6 sees 6x6x256.

    Layer names follow Caffe: `conv1`..`conv5`, `relu*`, `norm1`, `norm2`,
    `pool1`, `pool2`, `pool5`, `fc6`, `fc7`, `fc8`, `drop6`, `drop7` (and
    `cnorm2` in chm2012). Grouped convolutions are single `GroupedConv2D`
    layers with `(kh, kw, in / groups, out)` kernels.

    Args:
        include_top: whether to include fc6..fc8.
        weights: `None` (random initialisation), the path of a
            `.weights.h5` written by `alexnet-keras convert` or by training,
            a legacy file (`bvlc_alexnet.npy`, a `.caffemodel`, a
            cuda-convnet checkpoint) converted through the cache, or a
            release name from the registry (`"bvlc_alexnet"`,
            `"bvlc_reference_caffenet"`; `"imagenet"`, as in
            `keras.applications`, means `"bvlc_alexnet"`): its converted
            file in the cache, or else the release downloaded, verified and
            converted (`alexnet_keras.pretrained.resolve`). The file's
            metadata sets the variant, classes and input size.
        input_tensor: optional Keras tensor to use as the image input.
        input_shape: `(H, W, 3)`; defaults to the variant's size (227 or 224).
            With `include_top` the input must give a 6x6 pool5 (224..227 do).
        pooling: with `include_top=False`: `None` (the pool5 map), `"avg"` or
            `"max"` (global pooling to a 256-vector).
        classes: number of classes; defaults to 1000, or to the weights'.
        classifier_activation: activation of the `prob` layer after `fc8`,
            computed in float32; `None` returns the fc8 logits.
        variant: `"bvlc"`, `"caffenet"` or `"chm2012"`; defaults to `"bvlc"`,
            or to the weights'.
        name: model name; defaults to `alexnet_<variant>`.

    Returns:
        A `keras.Model`.

    Example:

    >>> import alexnet_keras
    >>> model = alexnet_keras.AlexNet(variant="chm2012")
    >>> model.count_params(), model.input_shape
    (60965224, (None, 224, 224, 3))
    """
    weights = pretrained.resolve(weights)
    meta = None if weights is None else read_metadata(weights)
    if meta is not None:
        if variant is not None and variant != meta["variant"]:
            raise ValueError(
                f"The weights are for variant {meta['variant']!r}. Received: variant={variant!r}"
            )
        if include_top and classes is not None and classes != meta["classes"]:
            raise ValueError(
                f"The weights have {meta['classes']} classes. Received: classes={classes!r}"
            )
        variant, classes = meta["variant"], meta["classes"]
    spec = V.get_variant("bvlc" if variant is None else variant)
    classes = 1000 if classes is None else classes
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 1:
        raise ValueError(f"`classes` must be a positive integer. Received: classes={classes!r}")
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"`pooling` must be None, 'avg' or 'max'. Received: pooling={pooling!r}")
    if include_top and pooling is not None:
        raise ValueError(
            "`pooling` applies only with include_top=False; the classifier flattens pool5. "
            f"Received: pooling={pooling!r}"
        )

    default_size = meta["input_size"] if meta is not None else spec.default_size
    img_input = _image_input(input_tensor, input_shape, default_size)
    height, width = img_input.shape[1], img_input.shape[2]

    x, (h, w) = _features(img_input, spec, (height, width))
    if include_top:
        if (h, w) != (V.FC6_GRID, V.FC6_GRID):
            raise ValueError(
                f"With include_top=True the input must give a {V.FC6_GRID}x{V.FC6_GRID} pool5 "
                f"(224 to 227 pixels do); this one gives {h}x{w}. "
                f"Received: input_shape={tuple(img_input.shape[1:])}"
            )
        x = _classifier(x, classes, classifier_activation)
    elif pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = keras.layers.GlobalMaxPooling2D(name="max_pool")(x)

    inputs = keras.utils.get_source_inputs(input_tensor) if input_tensor is not None else img_input
    model = keras.Model(inputs, x, name=name or f"alexnet_{spec.name}")
    if weights is not None:
        load_into(model, weights)
    return model


def _image_input(input_tensor, input_shape, default_size):
    if input_tensor is not None and input_shape is None:
        input_shape = tuple(input_tensor.shape[1:])
    if input_shape is None:
        input_shape = (default_size, default_size, 3)
    input_shape = tuple(input_shape)
    if len(input_shape) != 3 or input_shape[-1] != 3:
        raise ValueError(
            "`input_shape` must be (height, width, 3): AlexNet takes channels-last "
            f"3-channel images. Received: input_shape={input_shape}"
        )
    if not all(isinstance(d, int) and d > 0 for d in input_shape[:2]):
        raise ValueError(
            "`input_shape` needs a fixed height and width: the padding that keeps "
            f"Caffe/cuda-convnet geometry depends on them. Received: input_shape={input_shape}"
        )
    if input_tensor is None:
        return keras.Input(shape=input_shape, name="image")
    if not keras.backend.is_keras_tensor(input_tensor):
        return keras.Input(tensor=input_tensor, shape=input_shape, name="image")
    return input_tensor


def _too_small(spec, op, input_shape):
    """The error for a layer that would get no output, naming the shape the user gave."""
    return ValueError(
        f"The input is too small for AlexNet {spec.name!r}: '{op.name}' would get no output. "
        f"Each side must be at least {min_input_side(spec)} pixels (with include_top, "
        f"{V.INPUT_SIZES[0]} to {V.INPUT_SIZES[-1]}). Received: input_shape={input_shape}"
    )


def _conv_layer(conv, rounding, x, size):
    geo = [conv_geometry(s, conv, rounding) for s in size]
    if any(g[0] is None for g in geo):
        return None, None
    padding, pads = conv_padding(conv, rounding, size)
    if pads is not None:
        x = keras.layers.ZeroPadding2D(pads, name=f"{conv.name}_pad")(x)
    kwargs = dict(strides=conv.stride, padding=padding, name=conv.name)
    if conv.groups > 1:
        layer = GroupedConv2D(conv.filters, conv.kernel, groups=conv.groups, **kwargs)
    else:
        layer = keras.layers.Conv2D(conv.filters, conv.kernel, **kwargs)
    return layer(x), tuple(g[0] for g in geo)


def _features(x, spec, size):
    input_shape = tuple(x.shape[1:])
    for op in spec.features:
        if isinstance(op, V.Conv):
            x, size = _conv_layer(op, spec.conv_rounding, x, size)
            if x is None:
                raise _too_small(spec, op, input_shape)
        elif isinstance(op, V.ReLU):
            x = keras.layers.ReLU(name=op.name)(x)
        elif isinstance(op, V.LRN):
            x = LocalResponseNormalization(
                op.size, op.alpha, op.beta, op.bias, groups=op.groups, name=op.name
            )(x)
        elif isinstance(op, V.SpatialNorm):
            x = SpatialResponseNormalization(op.size, op.alpha, op.beta, op.bias, name=op.name)(x)
        elif isinstance(op, V.MaxPool):
            try:
                geo = [pool_geometry(s, op) for s in size]
            except ValueError:  # a size ceil mode cannot pool: only below the smallest input
                raise _too_small(spec, op, input_shape) from None
            if any(g[0] is None or g[0] < 1 for g in geo):
                raise _too_small(spec, op, input_shape)
            padding = "same" if "same" in (geo[0][1], geo[1][1]) else "valid"
            if padding == "same" and geo[0][1] != geo[1][1]:
                raise ValueError(
                    f"'{op.name}' would need ceil-mode padding on one axis only, which this "
                    f"builder does not express. Received: input_shape={input_shape}"
                )
            x = keras.layers.MaxPooling2D(op.size, op.stride, padding=padding, name=op.name)(x)
            size = tuple(g[0] for g in geo)
        else:  # pragma: no cover - variants.py holds only the ops above
            raise TypeError(f"unknown op {op!r}")
    return x, size


def _classifier(x, classes, classifier_activation):
    x = keras.layers.Flatten(name="flatten")(x)
    for i in (6, 7):
        x = keras.layers.Dense(V.FC_UNITS, name=f"fc{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
        x = keras.layers.Dropout(V.DROPOUT_RATE, name=f"drop{i}")(x)
    x = keras.layers.Dense(classes, name="fc8")(x)
    if classifier_activation is not None:
        x = keras.layers.Activation(classifier_activation, dtype="float32", name="prob")(x)
    return x

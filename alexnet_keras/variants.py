"""The AlexNet variants, as data.

Each variant is the same 60,965,224-parameter network at 1000 classes. They
differ in the order of the layer-1/2 operations, the LRN constants, an extra
spatial normalisation, the geometry rule for odd input sizes and the input
preprocessing. `model.py` builds the Keras graph from these specs alone.

Sources: `shared/docs/design.md` §3 and `shared/docs/formats.md` §1-§5
(BVLC `models/bvlc_alexnet/deploy.prototxt`,
`models/bvlc_reference_caffenet/deploy.prototxt`, CHM `layers/layers-145.cfg`
with `layers/layer-params-145.cfg`).
"""

import dataclasses
import functools
import importlib.resources

import numpy as np

__all__ = [
    "VARIANTS",
    "VariantSpec",
    "check_input_size",
    "class_labels",
    "class_names",
    "decode_predictions",
    "get_variant",
    "imagenet_classes",
]

# Per-channel ILSVRC-2012 mean of BVLC's `ilsvrc_2012_mean.npy`, in BGR order
# (formats.md §4, "Input expectations").
IMAGENET_MEAN_BGR = (104.00699, 116.66877, 122.67891)
IMAGENET_MEAN_RGB = IMAGENET_MEAN_BGR[::-1]


@dataclasses.dataclass(frozen=True)
class Conv:
    """A convolution, in Caffe terms (`pad` is symmetric, before any ceil padding)."""

    name: str
    filters: int
    kernel: int
    stride: int = 1
    pad: int = 0
    groups: int = 1


@dataclasses.dataclass(frozen=True)
class ReLU:
    name: str


@dataclasses.dataclass(frozen=True)
class LRN:
    """Cross-channel LRN; `alpha` is divided by `size` (Caffe / cuda-convnet)."""

    name: str
    size: int = 5
    alpha: float = 1e-4
    beta: float = 0.75
    bias: float = 1.0
    groups: int = 1


@dataclasses.dataclass(frozen=True)
class SpatialNorm:
    """cuda-convnet `rnorm`; `alpha` is divided by `size**2`."""

    name: str
    size: int = 5
    alpha: float = 1e-3
    beta: float = 0.75
    bias: float = 1.0


@dataclasses.dataclass(frozen=True)
class MaxPool:
    name: str
    size: int = 3
    stride: int = 2


@dataclasses.dataclass(frozen=True)
class VariantSpec:
    """One AlexNet variant.

    Attributes:
        name: the `variant=` string.
        description: one line for `alexnet-keras summary`.
        source: where the architecture comes from.
        default_size: the input size the weights were trained at.
        conv_rounding: `"floor"` (Caffe) or `"ceil"` (cuda-convnet: the missing
            bottom/right pixels are zeros). Pooling rounds up in both.
        features: the ops from the image to `pool5`, in order.
        color_order: `"BGR"` or `"RGB"`, the channel order conv1 expects.
        mean: per-channel mean, in `color_order`, subtracted from 0..255 pixels.
        inference_dropout_scale: what the source's dropout multiplies by at test
            time (cuda-convnet's `hs` is not inverted: x0.5). Converters fold
            it into the next kernel, so the Keras graph keeps inverted dropout.
    """

    name: str
    description: str
    source: str
    default_size: int
    conv_rounding: str
    features: tuple
    color_order: str
    mean: tuple
    inference_dropout_scale: float = 1.0

    @property
    def preprocessing(self):
        """The weights-metadata form of this variant's input: `{"color_order", "mean"}`."""
        return {"color_order": self.color_order, "mean": list(self.mean)}


def _convs(conv1_relu):
    """conv1..conv5 with their ReLUs, as (conv, relu-or-None) pairs."""
    return {
        "conv1": (Conv("conv1", 96, 11, stride=4), ReLU("relu1") if conv1_relu else None),
        "conv2": (Conv("conv2", 256, 5, pad=2, groups=2), ReLU("relu2")),
        "conv3": (Conv("conv3", 384, 3, pad=1), ReLU("relu3")),
        "conv4": (Conv("conv4", 384, 3, pad=1, groups=2), ReLU("relu4")),
        "conv5": (Conv("conv5", 256, 3, pad=1, groups=2), ReLU("relu5")),
    }


def _flat(*ops):
    return tuple(op for op in ops if op is not None)


_C = _convs(conv1_relu=True)
_TAIL = (*_C["conv3"], *_C["conv4"], *_C["conv5"])

BVLC = VariantSpec(
    name="bvlc",
    description="BVLC Caffe bvlc_alexnet: conv-relu-LRN-pool, LRN k=1, 227 input, BGR",
    source="BVLC/caffe models/bvlc_alexnet (also bvlc_alexnet.npy)",
    default_size=227,
    conv_rounding="floor",
    features=_flat(
        *_C["conv1"],
        LRN("norm1"),
        MaxPool("pool1"),
        *_C["conv2"],
        LRN("norm2"),
        MaxPool("pool2"),
        *_TAIL,
        MaxPool("pool5"),
    ),
    color_order="BGR",
    mean=IMAGENET_MEAN_BGR,
)

CAFFENET = VariantSpec(
    name="caffenet",
    description="BVLC bvlc_reference_caffenet: conv-relu-pool-LRN, LRN k=1, 227 input, BGR",
    source="BVLC/caffe models/bvlc_reference_caffenet",
    default_size=227,
    conv_rounding="floor",
    features=_flat(
        *_C["conv1"],
        MaxPool("pool1"),
        LRN("norm1"),
        *_C["conv2"],
        MaxPool("pool2"),
        LRN("norm2"),
        *_TAIL,
        MaxPool("pool5"),
    ),
    color_order="BGR",
    mean=IMAGENET_MEAN_BGR,
)

# conv1 and conv5 have no neuron in layers-145.cfg: pool1/pool3 carry the ReLU,
# so LRN1 sees pre-ReLU values (formats.md §5.1, §5.15).
_H = _convs(conv1_relu=False)
CHM2012 = VariantSpec(
    name="chm2012",
    description=(
        "CHM 2012 cuda-convnet layers-145: conv-LRN(pre-ReLU)-pool-relu, per-GPU LRN k=2, "
        "5x5 spatial rnorm, 224 input, RGB"
    ),
    source="computerhistory/AlexNet-Source-Code layers/layers-145.cfg + layer-params-145.cfg",
    default_size=224,
    conv_rounding="ceil",
    features=_flat(
        _H["conv1"][0],
        LRN("norm1", bias=2.0, groups=2),
        MaxPool("pool1"),
        ReLU("relu1"),
        *_H["conv2"],
        LRN("norm2", bias=2.0, groups=2),
        SpatialNorm("cnorm2"),
        MaxPool("pool2"),
        *_H["conv3"],
        *_H["conv4"],
        _H["conv5"][0],
        MaxPool("pool5"),
        ReLU("relu5"),
    ),
    color_order="RGB",
    mean=IMAGENET_MEAN_RGB,
    inference_dropout_scale=0.5,
)

VARIANTS = {spec.name: spec for spec in (BVLC, CAFFENET, CHM2012)}

# The classifier is the same in every variant: fc6 4096, fc7 4096, fc8 classes.
# The layers that carry weights, in network order: the names every weights
# file, converter and trainer agree on (design.md §4).
WEIGHTED_LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")
FC_UNITS = 4096
DROPOUT_RATE = 0.5
# pool5 is FC6_GRID x FC6_GRID x 256 = 9216 features in every release; the
# inputs that give it (with include_top) are INPUT_SIZES, in every variant.
FC6_GRID = 6
INPUT_SIZES = (224, 225, 226, 227)


def check_input_size(size, option="--input-size"):
    """Returns `size` if it is None or one of `INPUT_SIZES`.

    Raises:
        ValueError: naming `option`, if fc6 would not get a 6x6 pool5.

    Example:

    >>> from alexnet_keras.variants import check_input_size
    >>> check_input_size(224)
    224
    >>> check_input_size(200)
    Traceback (most recent call last):
    ...
    ValueError: `--input-size` must be 224..227 (AlexNet's fc6 needs a 6x6 pool5). Received: 200
    """
    if size is not None and (isinstance(size, bool) or size not in INPUT_SIZES):
        raise ValueError(
            f"`{option}` must be {INPUT_SIZES[0]}..{INPUT_SIZES[-1]} (AlexNet's fc6 needs a "
            f"{FC6_GRID}x{FC6_GRID} pool5). Received: {size}"
        )
    return size


@functools.lru_cache(maxsize=1)
def imagenet_classes():
    """The 1000 ILSVRC-2012 classes as `(wnid, name)` pairs, in sorted-wnid order.

    This is Caffe's class-index order (`synset_words.txt`), which BVLC's
    weights use. Shared data: the converters name 1000-class weights with
    it, and `decode_predictions` reads it.

    Example:

    >>> from alexnet_keras.variants import imagenet_classes
    >>> imagenet_classes()[0]
    ('n01440764', 'tench')
    """
    text = importlib.resources.files("alexnet_keras").joinpath("resources/imagenet_classes.txt")
    pairs = [line.split(" ", 1) for line in text.read_text("utf-8").splitlines() if line]
    return tuple((wnid, name) for wnid, name in pairs)


def class_names(meta):
    """The weights' class names, or the ImageNet `(wnid, name)` pairs for 1000 unnamed classes."""
    names = meta.get("class_names")
    return imagenet_classes() if names is None and meta["classes"] == 1000 else names


def class_labels(meta):
    """The label string of each class: its name from the weights' metadata.

    `[id, name]` pairs give the name; without names, 1000 classes are the
    ImageNet ones and any other count gives the index as a string.

    Example:

    >>> from alexnet_keras.variants import class_labels
    >>> class_labels({"classes": 1000, "class_names": None})[:2]
    ['tench', 'goldfish']
    """
    names, classes = class_names(meta), meta["classes"]
    if names is None:
        return [str(i) for i in range(classes)]
    labels = [n[-1] if isinstance(n, (list, tuple)) else str(n) for n in names]
    if len(labels) != classes:
        raise ValueError(
            f"The weights list {len(labels)} class names for {classes} classes; "
            "the labels would be wrong"
        )
    return labels


def decode_predictions(preds, top=5, class_names=None):
    """Turns a batch of class scores into readable labels.

    Args:
        preds: `(N, classes)` scores.
        top: how many labels to return per row.
        class_names: the class list, as names or `(id, name)` pairs; defaults
            to the 1000 ImageNet classes in sorted-wnid order.

    Returns:
        One list per row of `(id, name, score)` tuples, best first. For plain
        names, `id` is the class index as a string.

    Example:

    >>> import numpy as np
    >>> from alexnet_keras import decode_predictions
    >>> preds = np.zeros((1, 1000)); preds[0, 1] = 1.0
    >>> decode_predictions(preds, top=1)
    [[('n01443537', 'goldfish', 1.0)]]
    """
    preds = np.asarray(preds)
    if class_names is None:
        classes = imagenet_classes()
    else:
        classes = [
            tuple(c) if isinstance(c, (tuple, list)) else (str(i), str(c))
            for i, c in enumerate(class_names)
        ]
    if preds.ndim != 2 or preds.shape[1] != len(classes):
        raise ValueError(
            f"`decode_predictions` expects a batch of shape (N, {len(classes)}). "
            f"Received: preds.shape={preds.shape}"
        )
    results = []
    for row in preds:
        order = np.argsort(-row, kind="stable")[:top]
        results.append([(*classes[i], float(row[i])) for i in order])
    return results


def get_variant(name):
    """Returns the `VariantSpec` called `name`.

    Raises:
        ValueError: if there is no such variant.
    """
    try:
        return VARIANTS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown AlexNet variant; expected one of {sorted(VARIANTS)}. "
            f"Received: variant={name!r}"
        ) from None

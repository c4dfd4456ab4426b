"""From a legacy net to Keras arrays: variant detection, layouts, strict assignment.

Layouts (formats.md §4, §7; design.md §4):

- "caffe" (`.caffemodel`): conv `(out, in/groups, kh, kw)` -> Keras
  `(kh, kw, in/groups, out)`; fc `(out, in)` -> `(in, out)`; fc6's `in` index
  is Caffe's NCHW flatten `c*36 + y*6 + x`, so its rows are permuted to the
  `(y, x, c)` order of Keras' NHWC `Flatten`.
- "caffe-tensorflow" (`bvlc_alexnet.npy`): already the Keras layout,
  including fc6's rows (caffe-tensorflow permuted them when it converted).

The assigner is strict: every Keras weight receives exactly one source array
of exactly the right shape; missing, extra or misshapen arrays are errors that
name them. This module imports no Keras.
"""

import dataclasses
import re

import numpy as np

from alexnet_keras import variants as V
from alexnet_keras.geometry import layer_plan

__all__ = ["Mapping", "caffe_blobs", "detect_variant", "to_keras"]

WEIGHTED = V.WEIGHTED_LAYERS
CAFFE_VARIANTS = ("bvlc", "caffenet")


@dataclasses.dataclass
class Mapping:
    """The result of `to_keras`.

    Attributes:
        variant: the variant the arrays belong to.
        classes: fc8 outputs.
        arrays: `{layer: [kernel, bias]}` in Keras layout, float32.
        shapes: `{layer: (source shapes, keras shapes)}` for the report.
        notes: what the user should know (casts, assumptions).
    """

    variant: str
    classes: int
    arrays: dict
    shapes: dict
    notes: list


def _first(net, kind):
    for i, layer in enumerate(net.layers):
        if layer.type == kind:
            return i, layer
    return None, None


def detect_variant(net, requested=None):
    """The variant of a Caffe-family net, and why.

    A `.caffemodel` records its layer order: CaffeNet pools before the first
    LRN, AlexNet normalises first. A `.npy` records no order, so it is
    `requested`, or bvlc.

    Returns:
        `(variant, reason)`.
    """
    if requested is not None and requested not in CAFFE_VARIANTS:
        raise ValueError(
            f"{net.path}: a {net.format} file holds Caffe-family weights; variant "
            f"{requested!r} needs a cuda-convnet checkpoint. Received: --variant {requested}"
        )
    i_lrn, lrn = _first(net, "lrn")
    i_pool, pool = _first(net, "pool")
    if lrn is None or pool is None:
        if requested:
            return requested, f"--variant {requested}"
        return "bvlc", (
            f"assumed: a {net.format} file does not record the layer order "
            "(pass --variant caffenet for CaffeNet weights)"
        )
    found = "caffenet" if i_pool < i_lrn else "bvlc"
    why = (
        f"{pool.name} before {lrn.name}"
        if found == "caffenet"
        else f"{lrn.name} before {pool.name}"
    )
    if requested is not None and requested != found:
        raise ValueError(
            f"{net.path}: the file is {found} ({why}). Received: --variant {requested}"
        )
    return found, why


def _caffe_shape(keras_shape, layout):
    if layout != "caffe":
        return keras_shape
    if len(keras_shape) == 4:
        kh, kw, cin, out = keras_shape
        return (out, cin, kh, kw)
    if len(keras_shape) == 2:
        return keras_shape[::-1]
    return keras_shape


def _normalise(a, want):
    """Accepts old Caffe's 4-D legacy shapes `(1, 1, out, in)`: match by element count."""
    if a.shape != want and a.size == int(np.prod(want)) and a.ndim != len(want):
        squeezed = tuple(d for d in a.shape if d != 1)
        if squeezed == tuple(d for d in want if d != 1):
            return a.reshape(want)
    return a


def _names(path, net):
    weighted = [layer for layer in net.layers if layer.arrays]
    have = {layer.name for layer in weighted}
    missing = [n for n in WEIGHTED if n not in have]
    extra = [layer.name for layer in weighted if layer.name not in WEIGHTED]
    vgg = any(re.fullmatch(r"conv\d_\d", n) for n in have)
    if vgg or len(missing) == len(WEIGHTED):
        hint = " (a VGG-style file?)" if vgg else ""
        raise ValueError(
            f"{path}: not an AlexNet{hint}: expected layers {', '.join(WEIGHTED)}. "
            f"Received: {', '.join(sorted(have))}"
        )
    if missing:
        raise ValueError(f"{path}: missing layer(s) {', '.join(missing)}")
    if extra:
        raise ValueError(
            f"{path}: unexpected layer(s) {', '.join(extra)} with weights; AlexNet has "
            f"{', '.join(WEIGHTED)}"
        )
    return {layer.name: layer for layer in weighted}


def _check(path, name, arrays, want, layout):
    """Shapes in the source's own layout, then dtype and finiteness."""
    labels = ("weights", "biases")
    if len(arrays) != len(want):
        raise ValueError(
            f"{path}: layer '{name}' expects {len(want)} arrays (weights, biases). "
            f"Received: {len(arrays)}"
        )
    out, notes = [], []
    for label, a, shape in zip(labels, arrays, want, strict=False):
        src_want = _caffe_shape(shape, layout)
        a = _normalise(a, src_want)
        if a.shape != src_want:
            hint = ""
            if label == "weights" and a.ndim == 4:
                cin_axis = 1 if layout == "caffe" else 2
                if a.shape[cin_axis] == 2 * src_want[cin_axis]:
                    hint = f" ({name} has 2 groups of {src_want[cin_axis]} input channels)"
            raise ValueError(
                f"{path}: layer '{name}' {label} expect shape {src_want}{hint}. Received: {a.shape}"
            )
        if a.dtype != np.float32:
            notes.append(f"{name} {label} stored as {a.dtype}; cast to float32")
            a = a.astype(np.float32)
        bad = ~np.isfinite(a)
        if bad.any():
            raise ValueError(
                f"{path}: layer '{name}' {label} contain {int(np.isnan(a).sum())} NaN and "
                f"{int(np.isinf(a).sum())} Inf values"
            )
        out.append(a)
    return out, notes


def _fc_to_keras(kernel, spatial):
    """Caffe `(out, in)` to Keras `(in, out)`; fc6's rows go from CHW to HWC order.

    Row `(y*6 + x)*256 + c` of Keras' fc6 is pool5[y, x, c] (NHWC flatten);
    Caffe keeps that weight in column `c*36 + y*6 + x` (NCHW flatten). Copying
    in blocks of output units keeps the transpose in cache: 3x faster than
    one whole-matrix transpose on a 150 MB fc6.
    """
    units, rows = kernel.shape
    source = kernel.reshape(units, rows // spatial, spatial)
    out = np.empty((spatial, rows // spatial, units), kernel.dtype)
    for start in range(0, units, 32):
        out[:, :, start : start + 32] = source[start : start + 32].transpose(2, 1, 0)
    return out.reshape(rows, units)


def _to_keras_layout(name, kernel, layout, fc6_grid):
    if layout != "caffe":
        return kernel
    if kernel.ndim == 4:
        return np.ascontiguousarray(kernel.transpose(2, 3, 1, 0))
    return _fc_to_keras(kernel, fc6_grid * fc6_grid if name == "fc6" else 1)


def _classes(path, fc8):
    if not fc8.arrays or fc8.arrays[-1].ndim == 0:
        raise ValueError(f"{path}: layer 'fc8' has no biases to read the class count from")
    return int(fc8.arrays[-1].size)


def _hw(value):
    return tuple(value) * (2 // len(value)) if isinstance(value, (tuple, list)) else (value,) * 2


def _spec_values(op):
    if isinstance(op, V.Conv):
        return {"kernel_size": (op.kernel,) * 2, "stride": (op.stride,) * 2,
                "pad": (op.pad,) * 2, "group": op.groups}  # fmt: skip
    if isinstance(op, V.LRN):
        return {"local_size": op.size, "alpha": op.alpha, "beta": op.beta, "k": op.bias}
    if isinstance(op, V.MaxPool):
        return {"pool": "max", "kernel_size": (op.size,) * 2, "stride": (op.stride,) * 2}
    return {}


def check_hyperparameters(net, variant):
    """The file's own layer parameters (a `.caffemodel` stores them) against the variant.

    A file whose LRN constants, strides, padding or groups differ from the
    variant cannot be represented by it; the first difference is an error.
    """
    for op in V.get_variant(variant).features:
        layer = net.layer(op.name)
        want = _spec_values(op)
        if layer is None or not layer.params or not want:
            continue
        for key, expected in want.items():
            if key not in layer.params:
                continue
            got = layer.params[key]
            got = _hw(got) if isinstance(expected, tuple) else got
            same = (
                abs(float(got) - expected) <= 1e-6 * abs(expected)
                if isinstance(expected, float)
                else got == expected
            )
            if not same:
                raise ValueError(
                    f"{net.path}: layer '{op.name}' {key} expected {expected} for {variant}. "
                    f"Received: {got}"
                )


def to_keras(net, variant=None):
    """Maps a Caffe-family `SourceNet` to Keras arrays for `AlexNet`.

    Args:
        net: from `read_npy` or `read_caffemodel`.
        variant: "bvlc" or "caffenet"; None detects it (see `detect_variant`).

    Returns:
        A `Mapping`.

    Raises:
        ValueError: naming the file and the layer, for missing or extra
            layers, wrong shapes (e.g. conv2 with 96 input channels instead of
            2 groups of 48), NaN or Inf values.
    """
    path = net.path
    layers = _names(path, net)
    variant, why = detect_variant(net, variant)
    check_hyperparameters(net, variant)
    notes = [f"variant {variant}: {why}"]
    classes = _classes(path, layers["fc8"])
    plan = [p for p in layer_plan(variant, classes=classes) if p.weight_shapes]
    arrays, shapes = {}, {}
    for p in plan:
        checked, cast = _check(path, p.name, layers[p.name].arrays, p.weight_shapes, net.layout)
        notes += cast
        kernel = _to_keras_layout(p.name, checked[0], net.layout, V.FC6_GRID)
        arrays[p.name] = [kernel, checked[1]]
        shapes[p.name] = (
            tuple(_caffe_shape(s, net.layout) for s in p.weight_shapes),
            p.weight_shapes,
        )
    return Mapping(variant, classes, arrays, shapes, notes)


def caffe_blobs(net):
    """The net's weights in Caffe's blob layout, float64, for the numpy reference.

    Read straight from the source, never from `to_keras`: a `.caffemodel`
    already is Caffe's layout; a `.npy` is turned back by inverting
    caffe-tensorflow's documented transform (formats.md §4: HWIO -> OIHW,
    `(in, out)` -> `(out, in)`, fc6 rows HWC -> CHW).
    """
    out = {}
    for name in WEIGHTED:
        layer = net.layer(name)
        w, b = (np.asarray(a, np.float64) for a in layer.arrays[:2])
        b = b.ravel()
        if net.layout == "caffe":
            w = (
                w.reshape(b.size, *w.shape[-3:])
                if name.startswith("conv")
                else w.reshape(b.size, -1)
            )
        elif w.ndim == 4:
            w = w.transpose(3, 2, 0, 1)
        elif name == "fc6":
            rows, grid = w.shape[0], V.FC6_GRID
            w = w.reshape(grid, grid, -1, b.size).transpose(3, 2, 0, 1).reshape(b.size, rows)
        else:
            w = w.T
        out[name] = [w, b]
    return out

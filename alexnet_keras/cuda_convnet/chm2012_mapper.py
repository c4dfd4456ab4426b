"""A layers-145 cuda-convnet checkpoint to the single-tower `AlexNet(variant="chm2012")`.

The two GPU halves are concatenated as `docs/formats.md` §3 lays out, "a"
before "b" in every layer so conv1's order carries through conv2's groups,
conv3's input blocks, fc6's rows and fc7's blocks:

- conv kernels `(C*fs*fs, F)` become `(fs, fs, C, F)`; conv1, conv2, conv4
  and conv5 concatenate the halves' filters (conv2/4/5 stay grouped);
- conv3 reads both halves: its kernel stacks `pool2a` then `pool2b` along
  the input axis, for each half's filters;
- fc6 stacks each half's two matrices (rows `c*36 + y*6 + x` over all 256
  channels) and re-orders the rows to the HWC order of Keras' `Flatten`;
- fc7 and fc8 take each input's matrix by name (`fc2048bb` reads `hs1b,
  hs1a`), and get the `hs` layers' test-time `x keep` folded into their
  kernels (not the biases): Keras dropout is inverted.

The checkpoint's own norm constants must be the variant's (LRN size 5, scale
2e-5 as stored, pow 0.75, minDiv 2; the 5x5 rnorm's 4e-5, 0.75); other
values are refused, since `chm2012` hard-codes them. No Keras is imported.
"""

import math

import numpy as np

from alexnet_keras.cuda_convnet.checkpoint import matrix_for_input
from alexnet_keras.variants import FC6_GRID

__all__ = ["CHM145_WEIGHTED", "chm2012_arrays", "is_chm145"]

# The weighted layers of layers-145 and the cuda-convnet shapes of their matrices.
CHM145_WEIGHTED = {
    "conv1a": [(363, 48)], "conv1b": [(363, 48)],
    "conv2a": [(1200, 128)], "conv2b": [(1200, 128)],
    "conv3a": [(1152, 192)] * 2, "conv3b": [(1152, 192)] * 2,
    "conv4a": [(1728, 192)], "conv4b": [(1728, 192)],
    "conv5a": [(1728, 128)], "conv5b": [(1728, 128)],
    "fc2048a": [(4608, 2048)] * 2, "fc2048b": [(4608, 2048)] * 2,
    "fc2048ba": [(2048, 2048)] * 2, "fc2048bb": [(2048, 2048)] * 2,
    "fc1000": [(2048, None)] * 2,
}  # fmt: skip
# Stored values: cuda-convnet divides scale by size (cmrnorm) or size**2 (rnorm) at parse time.
_NORMS = {
    "rnorm1": {"size": 5, "scale": 1e-4 / 5, "pow": 0.75, "minDiv": 2.0},
    "rnorm2": {"size": 5, "scale": 1e-4 / 5, "pow": 0.75, "minDiv": 2.0},
    "cnorm2": {"size": 5, "scale": 1e-3 / 25, "pow": 0.75},
}


def is_chm145(layers):
    """Whether a checkpoint's layers have the layers-145 weighted layers and shapes."""
    for name, shapes in CHM145_WEIGHTED.items():
        weights = layers.get(name, {}).get("weights")
        if weights is None or len(weights) != len(shapes):
            return False
        for w, (rows, cols) in zip(weights, shapes, strict=True):
            if w.shape[0] != rows or (cols is not None and w.shape[1] != cols):
                return False
    return True


def _check_norms(layers, source):
    notes = []
    for stem, want in _NORMS.items():
        for half in "ab":
            layer = layers.get(f"{stem}{half}")
            if layer is None:
                notes.append(f"{stem}{half}: not in the checkpoint; the variant's constants used")
                continue
            for key, value in want.items():
                got = layer.get(key)
                if got is None:
                    continue
                if not math.isclose(float(got), value, rel_tol=1e-6):
                    raise ValueError(
                        f"{source}: layer '{stem}{half}' has {key}={got}; the chm2012 variant "
                        f"uses {value:g}. Convert it with --layers/--params to the cfg model"
                    )
    return notes


def _keep(layers, name):
    value = layers.get(name, {}).get("keep", 0.5)
    return float(value)


def chm2012_arrays(layers, source="the checkpoint"):
    """`({keras layer: [kernel, bias]}, notes)` for `AlexNet(variant="chm2012")`.

    Args:
        layers: `{name: {"weights": [...], "biases": ..., "inputs": [...]}}`,
            a layers-145 checkpoint's layers (cuda-convnet layout).
        source: named in error messages.

    Raises:
        ValueError: the layers are not layers-145-shaped, an input is missing,
            or a norm constant differs from the variant's.

    Example:

    >>> import numpy as np
    >>> from alexnet_keras.cuda_convnet.chm2012_mapper import CHM145_WEIGHTED, chm2012_arrays
    >>> inputs = {"conv1": ["data"], "conv2": ["pool1{}_neuron"], "conv3": ["pool2a", "pool2b"],
    ...           "conv4": ["conv3{}_neuron"], "conv5": ["conv4{}_neuron"],
    ...           "fc2048": ["pool3a_neuron", "pool3b_neuron"], "fc2048b": ["hs1a", "hs1b"]}
    >>> layers = {}
    >>> for name, shapes in CHM145_WEIGHTED.items():
    ...     stem, half = (name, "") if name == "fc1000" else (name[:-1], name[-1])
    ...     names = ["hs2a", "hs2b"] if name == "fc1000" else [i.format(half) for i in inputs[stem]]
    ...     layers[name] = {"inputs": names, "biases": np.zeros((1, shapes[0][1] or 10)),
    ...                     "weights": [np.zeros((r, c or 10), np.float32) for r, c in shapes]}
    >>> arrays, notes = chm2012_arrays(layers)
    >>> arrays["conv3"][0].shape, arrays["fc6"][0].shape, arrays["fc8"][0].shape
    ((3, 3, 256, 384), (9216, 4096), (4096, 10))
    """
    if not is_chm145(layers):
        raise ValueError(
            f"{source}: not a layers-145-shaped net (the chm2012 variant); convert it with "
            "--layers/--params to the cfg model"
        )
    notes = _check_norms(layers, source)

    def w(name, src):
        return np.asarray(matrix_for_input(layers[name], src, name, source), np.float32)

    def conv_w(m, c, fs):
        return m.reshape(c, fs, fs, -1).transpose(1, 2, 0, 3)

    def bias(*names):
        return np.concatenate([np.asarray(layers[n]["biases"], np.float32).ravel() for n in names])

    def halves(stem, src, c, fs):
        return np.concatenate([conv_w(w(f"{stem}{h}", src.format(h)), c, fs) for h in "ab"], 3)

    out = {
        "conv1": [halves("conv1", "data", 3, 11)],
        "conv2": [halves("conv2", "pool1{}_neuron", 48, 5)],
        "conv3": [np.concatenate([
            np.concatenate([conv_w(w(f"conv3{h}", s), 128, 3) for s in ("pool2a", "pool2b")], 2)
            for h in "ab"], 3)],
        "conv4": [halves("conv4", "conv3{}_neuron", 192, 3)],
        "conv5": [halves("conv5", "conv4{}_neuron", 192, 3)],
    }  # fmt: skip
    for i in range(1, 6):
        out[f"conv{i}"].append(bias(f"conv{i}a", f"conv{i}b"))
    fc6, grid = [], FC6_GRID
    for h in "ab":
        m = np.vstack([w(f"fc2048{h}", s) for s in ("pool3a_neuron", "pool3b_neuron")])
        fc6.append(m.reshape(256, grid, grid, -1).transpose(1, 2, 0, 3).reshape(-1, m.shape[1]))
    out["fc6"] = [np.hstack(fc6), bias("fc2048a", "fc2048b")]
    keep1 = {_keep(layers, "hs1a"), _keep(layers, "hs1b")}
    keep2 = {_keep(layers, "hs2a"), _keep(layers, "hs2b")}
    if len(keep1) != 1 or len(keep2) != 1:
        raise ValueError(f"{source}: the two halves' hs layers keep different fractions")
    fc7 = np.hstack([np.vstack([w(f"fc2048b{h}", s) for s in ("hs1a", "hs1b")]) for h in "ab"])
    out["fc7"] = [keep1.pop() * fc7, bias("fc2048ba", "fc2048bb")]
    fc8 = np.vstack([w("fc1000", s) for s in ("hs2a", "hs2b")])
    out["fc8"] = [keep2.pop() * fc8, bias("fc1000")]
    return {k: [np.ascontiguousarray(a, np.float32) for a in v] for k, v in out.items()}, notes

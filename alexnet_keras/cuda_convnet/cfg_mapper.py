"""cuda-convnet weight arrays in the layout of `chm_model.build_model`'s Keras layers.

cuda-convnet keeps, per weighted layer, one matrix per input and a bias
(`docs/formats.md` §2.4-2.5):

- conv `(filterChannels * fs * fs, filters)`, rows `c * fs * fs + y * fs + x`:
  reshaped to `(c, y, x, f)` and transposed to Keras' `(y, x, c, f)`; a
  multi-input conv stacks its inputs along `c` in the net's `inputs=` order,
  which is the order of the `<name>_inputs` concatenation;
- local `(modules * filterChannels * fs * fs, filters)` (or `(modules, ...,
  filters)`), module `my * modulesX + mx` (`filter_acts.cu` l.85-87): to
  `ConvnetLocal2D`'s `(modules, y * fs + x, c, f)`, stacked along `c`;
  its bias `(filters * modules, 1)`, row `f * modules + m`, to `(my, mx, f)`;
- fc `(in_features_i, outputs)`, rows in the source's CHW order: image inputs
  are re-ordered to the HWC order of Keras' `Flatten`, then stacked.

Each input's matrix is taken by its input's name when the layer dict lists
`inputs` (as checkpoints do: `fc2048bb` reads `hs1b, hs1a`). No Keras here.
"""

import numpy as np

from alexnet_keras.cuda_convnet.cfg_rules import BUILT_WEIGHT_TYPES
from alexnet_keras.cuda_convnet.checkpoint import matrix_for_input

__all__ = ["mirror_arrays"]


def _by_input(layer, entry, source):
    names = [str(n) for n in entry.get("inputs", layer.inputs)]
    if sorted(names) != sorted(layer.inputs) or len(entry["weights"]) != len(names):
        raise ValueError(
            f"{source}: layer '{layer.name}' has weights for inputs {names}; the cfg net's "
            f"inputs are {list(layer.inputs)}"
        )
    named = {"weights": entry["weights"], "inputs": names}
    return [
        np.asarray(matrix_for_input(named, name, layer.name, source), np.float32)
        for name in layer.inputs
    ]


def _checked(layer, i, matrix, shape, source):
    if len(shape) == 3 and matrix.shape == (shape[0] * shape[1], shape[2]):
        matrix = matrix.reshape(shape)  # a local matrix as the file keeps it
    if tuple(matrix.shape) != tuple(shape):
        raise ValueError(
            f"{source}: layer '{layer.name}' input {i} expects a {tuple(shape)} matrix. "
            f"Received: {tuple(matrix.shape)}"
        )
    return matrix


def mirror_arrays(net, layers, source="the weights"):
    """`{layer name: [kernel, bias]}` for the cfg-mirroring Keras model.

    Args:
        net: the `ChmNet` the model was built from.
        layers: `{name: {"weights": [matrix per input], "biases": array,
            "inputs": [names]}}` in cuda-convnet layout (a checkpoint's
            layers); `inputs` is optional (then the net's order).
        source: named in error messages.

    Returns:
        Keras arrays for every conv, local and fc layer, float32.

    Raises:
        ValueError: a missing layer, or a matrix of the wrong shape.

    Example:

    >>> import numpy as np
    >>> from alexnet_keras.cuda_convnet.cfg_net import read_net
    >>> from alexnet_keras.cuda_convnet.cfg_mapper import mirror_arrays
    >>> net = read_net("../shared/data/chm-release/example-layers/layers-80sec.cfg")
    >>> layers = {l.name: {"weights": [np.zeros(s) for s in l.weight_shapes[:-1]],
    ...                    "biases": np.zeros(l.weight_shapes[-1])}
    ...           for l in net.layers if l.weight_shapes}
    >>> [a.shape for a in mirror_arrays(net, layers)["fc64"]]
    [(1024, 64), (64,)]
    """
    out = {}
    for layer in net.layers:
        if layer.type not in BUILT_WEIGHT_TYPES:
            continue
        if layer.name not in layers:
            raise ValueError(f"{source}: no weights for layer '{layer.name}'")
        entry = layers[layer.name]
        mats = _by_input(layer, entry, source)
        shapes = layer.weight_shapes[:-1]
        pairs = enumerate(zip(mats, shapes, strict=True))
        mats = [_checked(layer, i, m, s, source) for i, (m, s) in pairs]
        bias = np.asarray(entry["biases"], np.float32).reshape(-1)
        if layer.type == "local":  # rows f * modules + m, to (my, mx, f)
            bias = bias.reshape(layer.output_shape).transpose(1, 2, 0)
        blocks = []
        for name, m in zip(layer.inputs, mats, strict=True):
            shape = net.layer(name).output_shape
            if layer.type == "local":
                fs, (f, my, mx) = layer.params["filterSize"][0], layer.output_shape
                blocks.append(m.reshape(my * mx, -1, fs * fs, f).transpose(0, 2, 1, 3))
            elif layer.type == "conv":
                fs = layer.params["filterSize"][0]
                c = m.shape[0] // (fs * fs)
                blocks.append(m.reshape(c, fs, fs, -1).transpose(1, 2, 0, 3))
            elif len(shape) == 3:
                c, h, w = shape
                blocks.append(m.reshape(c, h, w, -1).transpose(1, 2, 0, 3).reshape(c * h * w, -1))
            else:
                blocks.append(m)
        axis = 0 if layer.type == "fc" else 2
        kernel = np.concatenate(blocks, axis=axis)
        out[layer.name] = [np.ascontiguousarray(kernel), bias]
    return out

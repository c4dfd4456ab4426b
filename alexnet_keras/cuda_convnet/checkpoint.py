"""cuda-convnet / CHM-2012 checkpoints, read without running the file.

`batches.meta` has its own module, `batches_meta`.

cuda-convnet saves a checkpoint as a Python 2 `cPickle` (protocol 2) of
`{"model_state": {"layers": ..., "epoch", "batchnum", "train_outputs",
"test_outputs"}, "op": options.OptionsParser}`, one file `"<epoch>.<batch>"`
per save in a checkpoint directory, plain or as a zip with one member `data`
(`docs/formats.md` §2). `layers` is a dict keyed by name (CHM) or a list whose
`inputs` are indexes into it (cuda-convnet 1). Arrays keep cuda-convnet's
layout: conv weights `(filterChannels*fs*fs, filters)`, fc weights
`(inputs, outputs)` in Fortran order, one weight matrix per input.

Everything goes through `safe_pickle`. The only classes it admits besides
arrays and containers are inert stand-ins for the `options` module (see
`OptionsStub`), so a file naming `os.system` or anything else is refused
before any object is built. No Keras or TensorFlow is imported.
"""

import dataclasses
import re

import numpy as np

from alexnet_keras.cuda_convnet import checkpoint_io as cuda_convnet_io
from alexnet_keras.cuda_convnet.cfg_rules import WEIGHT_TYPES
from alexnet_keras.cuda_convnet.checkpoint_io import (
    OptionsStub,
    kind,
    load_file,
    natural_key,
    plain,
)

__all__ = [
    "Checkpoint",
    "OptionsStub",
    "check_against",
    "layer_arrays",
    "matrix_for_input",
    "natural_key",
    "read_checkpoint",
    "weights_for_input",
]

CHECKPOINT = cuda_convnet_io.CHECKPOINT


@dataclasses.dataclass
class Checkpoint:
    """A cuda-convnet checkpoint as stored, with names in place of list indexes.

    Attributes:
        layers: `{name: layer dict}` in file order. Keys and strings are `str`;
            arrays are numpy arrays in their stored shape and memory order;
            values are as cuda-convnet stored them (`padding` negated, conv
            `filters` already multiplied by `groups`, norm `scale` already
            divided by the size). `inputs` holds input names (list-form
            integer indexes are resolved); the `inputLayers` back references
            are dropped.
        epoch: `model_state["epoch"]`, or None if absent.
        batchnum: `model_state["batchnum"]`, or None if absent.
        options: `{name: value}` of the command-line options in `op`, e.g.
            `crop_border`; empty when the file has no `op`.
        train_outputs: `model_state["train_outputs"]`, or None.
        test_outputs: `model_state["test_outputs"]`, or None.
        source: the file read (inside the directory, if one was given).
        notes: what the reader noticed: the file picked, the container, the
            layer form.
        layer_form: "dict" (CHM) or "list" (cuda-convnet 1).
        container: "plain", "zip" or "gzip".
    """

    layers: dict
    epoch: int | None
    batchnum: int | None
    options: dict
    train_outputs: list | None = None
    test_outputs: list | None = None
    source: str = ""
    notes: list = dataclasses.field(default_factory=list)
    layer_form: str = "dict"
    container: str = "plain"

    def layer(self, name):
        """The layer dict `name`; ValueError naming the file if there is none."""
        if name not in self.layers:
            known = cuda_convnet_io.key_list(self.layers)
            raise ValueError(f"{self.source}: has no layer {name!r}. Received: layers {known}")
        return self.layers[name]


def read_checkpoint(path):
    """Reads a cuda-convnet / CHM checkpoint file or directory safely.

    Args:
        path: a checkpoint directory, whose last file in natural order is read
            (`10.1` after `9.3`, as cuda-convnet's `load_checkpoint` does; the
            notes say which), or a checkpoint file: a zip (member `data`), a
            gzip, or a plain pickle, told apart by their first bytes.

    Returns:
        A `Checkpoint`.

    Raises:
        ValueError: one line naming the file, for a missing path, an empty
            file or directory, a truncated or corrupt pickle, zip or gzip, a
            zip without `data`, a file that is not a checkpoint dict, a layer
            without `type`, an input index or name that resolves to no layer.
        safe_pickle.UnsafePickleError: (a ValueError) the pickle names a
            global other than numpy's array reconstruction and the `options`
            stand-ins; nothing in the file ran.

    Example:

    >>> import os, pickle, tempfile, numpy as np
    >>> from alexnet_keras.cuda_convnet import checkpoint as cuda_convnet
    >>> fc = {"name": "fc10", "type": "fc", "inputs": ["data"], "outputs": 10,
    ...       "weights": [np.ones((3072, 10), np.float32, order="F")],
    ...       "biases": np.zeros((1, 10), np.float32)}
    >>> state = {"layers": {"data": {"name": "data", "type": "data"}, "fc10": fc},
    ...          "epoch": 9, "batchnum": 3}
    >>> folder = tempfile.mkdtemp()
    >>> for name in ("9.3", "10.1"):
    ...     with open(os.path.join(folder, name), "wb") as f:
    ...         pickle.dump({"model_state": state}, f, protocol=2)
    >>> checkpoint = cuda_convnet.read_checkpoint(folder)
    >>> checkpoint.notes[0]
    'picked 10.1: the last of 2 files in ... in natural order, after 9.3'
    >>> cuda_convnet.layer_arrays(checkpoint, "fc10")["weights"][0].shape
    (3072, 10)
    """
    notes = []
    file = cuda_convnet_io.checkpoint_file(path, notes)
    obj, container = load_file(file, CHECKPOINT)
    if container != "plain":
        notes.append(f"container: {container}")
    top, state = cuda_convnet_io.model_state(file, obj, notes)
    form, layers = cuda_convnet_io.layers_of(file, state["layers"], notes)
    notes.append(f"layers: a {form} of {len(layers)}")
    epoch, batchnum = (
        cuda_convnet_io.int_or_none(file, state, "epoch"),
        cuda_convnet_io.int_or_none(file, state, "batchnum"),
    )
    m = re.fullmatch(r"(\d+)\.(\d+)", file.name)
    if m and epoch is not None and (int(m[1]), int(m[2])) != (epoch, batchnum):
        notes.append(f"file name {file.name} differs from epoch.batchnum {epoch}.{batchnum}")
    outputs = {
        key: plain(state[key], f"{file}: model_state[{key!r}]") if key in state else None
        for key in ("train_outputs", "test_outputs")
    }
    return Checkpoint(
        layers=layers,
        epoch=epoch,
        batchnum=batchnum,
        options=cuda_convnet_io.options_of(file, top, notes),
        train_outputs=outputs["train_outputs"],
        test_outputs=outputs["test_outputs"],
        source=str(file),
        notes=notes,
        layer_form=form,
        container=container,
    )


def _float_array(checkpoint, name, what, value):
    if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
        got = value.dtype if isinstance(value, np.ndarray) else type(value).__name__
        raise ValueError(
            f"{checkpoint.source}: layer {name!r} {what} must be a float array. Received: {got}"
        )
    return value


def layer_arrays(checkpoint, name):
    """The arrays of a weighted layer, as stored.

    Args:
        checkpoint: a `Checkpoint`.
        name: a conv, local or fc layer.

    Returns:
        `{"weights": [one array per input, in the layer's own inputs order],
        "biases": array or None, "inputs": [input names]}`. Select a matrix
        by input name (`weights_for_input`), never by position: CHM's
        `fc2048bb` reads `hs1b, hs1a` (`docs/formats.md` §2.5).

    Raises:
        ValueError: naming the file: no such layer, a layer without weights,
            not one weight array per input, an array that is not float.

    Example (`read_checkpoint` reads a `Checkpoint` from a file):

    >>> import numpy as np
    >>> fc = {"name": "fc10", "type": "fc", "inputs": ["pool3"],
    ...       "weights": [np.zeros((1024, 10), np.float32, order="F")],
    ...       "biases": np.zeros((1, 10), np.float32)}
    >>> checkpoint = Checkpoint({"fc10": fc}, epoch=1, batchnum=1, options={})
    >>> arrays = layer_arrays(checkpoint, "fc10")
    >>> arrays["inputs"], arrays["weights"][0].shape, arrays["biases"].shape
    (['pool3'], (1024, 10), (1, 10))
    """
    layer = checkpoint.layer(name)
    if "weights" not in layer:
        raise ValueError(
            f"{checkpoint.source}: layer {name!r} (type {layer['type']}) has no weights"
        )
    weights = layer["weights"]
    weights = [weights] if isinstance(weights, np.ndarray) else weights
    if not isinstance(weights, (list, tuple)):
        raise ValueError(
            f"{checkpoint.source}: layer {name!r} weights must be a list of arrays. "
            f"Received: {kind(weights)}"
        )
    inputs = list(layer.get("inputs", []))
    if len(weights) != len(inputs):
        raise ValueError(
            f"{checkpoint.source}: layer {name!r} needs one weight matrix per input. "
            f"Received: {len(weights)} for inputs {inputs}"
        )
    weights = [_float_array(checkpoint, name, f"weights[{i}]", w) for i, w in enumerate(weights)]
    biases = layer.get("biases")
    if biases is not None:
        biases = _float_array(checkpoint, name, "biases", biases)
    return {"weights": weights, "biases": biases, "inputs": inputs}


def weights_for_input(checkpoint, name, input_name):
    """The weight matrix of layer `name` that reads `input_name`.

    Example (CHM's fc2048bb reads hs1b first):

    >>> import numpy as np
    >>> w_b, w_a = np.full((2048, 2048), 1, np.float32), np.full((2048, 2048), 2, np.float32)
    >>> fc = {"type": "fc", "inputs": ["hs1b", "hs1a"], "weights": [w_b, w_a], "biases": None}
    >>> checkpoint = Checkpoint({"fc2048bb": fc}, epoch=1, batchnum=1, options={})
    >>> weights_for_input(checkpoint, "fc2048bb", "hs1a") is w_a
    True

    Raises:
        ValueError: naming the file, if the layer does not read `input_name`.
    """
    return matrix_for_input(layer_arrays(checkpoint, name), input_name, name, checkpoint.source)


def matrix_for_input(entry, input_name, layer_name, source="the checkpoint"):
    """The matrix of a layer dict (`{"weights", "inputs"}`) that reads `input_name`.

    The one place a per-input matrix is picked, by name and never by position
    (the mappers and the numpy reference call it too). Raises a ValueError
    naming `source` and the layer if it does not read `input_name`.
    """
    names = [str(n) for n in entry.get("inputs", ())]
    if input_name not in names:
        raise ValueError(
            f"{source}: layer {layer_name!r} does not read {input_name!r}. Received: inputs {names}"
        )
    return entry["weights"][names.index(input_name)]


def _shape_ok(shape, expected):
    if tuple(shape) == tuple(expected):
        return True
    if len(expected) == 1:  # biases: cuda-convnet stores (F, 1) for conv, (1, out) for fc
        return tuple(shape) in ((expected[0], 1), (1, expected[0]))
    if len(expected) == 3:  # local: chm_cfg says (modules, k, F); the file (modules*k, F)
        return tuple(shape) == (expected[0] * expected[1], expected[2])
    return False


def check_against(checkpoint, net):
    """Checks a checkpoint against the `chm_cfg.ChmNet` of its layer definition file.

    Every layer of the net must be in the checkpoint with the same type; every
    weighted one with the net's inputs, one weight array per input of the
    net's `weight_shapes`, and a bias of `(F,)`, `(F, 1)` or `(1, F)`.

    Args:
        checkpoint: a `Checkpoint`.
        net: `chm_cfg.read_net(...)` of the def file the checkpoint was
            trained with.

    Returns:
        Notes (a list of str): layers in the checkpoint that the net lacks,
        arrays that are not float32.

    Raises:
        ValueError: one line naming the checkpoint, the net's file and the
            first layer that differs.

    Example:

    >>> from alexnet_keras.cuda_convnet import cfg_net as chm_cfg
    >>> net = chm_cfg.read_net("../shared/data/chm-release/example-layers/layers-80sec.cfg")
    >>> empty = Checkpoint({}, epoch=1, batchnum=1, options={}, source="1.1")
    >>> check_against(empty, net)
    Traceback (most recent call last):
    ...
    ValueError: 1.1: against ../shared/.../layers-80sec.cfg: has no layer 'data' (data)...
    """
    where = f"{checkpoint.source}: against {net.source}:"
    for layer in net.layers:
        if layer.name not in checkpoint.layers:
            raise ValueError(
                f"{where} has no layer {layer.name!r} ({layer.type}). "
                f"Received: layers {cuda_convnet_io.key_list(checkpoint.layers)}"
            )
        got = checkpoint.layers[layer.name]
        if got["type"] != layer.type:
            raise ValueError(
                f"{where} layer {layer.name!r} should be {layer.type}. Received: {got['type']}"
            )
    notes = []
    for layer in net.layers:
        if layer.type not in WEIGHT_TYPES:
            continue
        arrays = layer_arrays(checkpoint, layer.name)
        if arrays["inputs"] != list(layer.inputs):
            raise ValueError(
                f"{where} layer {layer.name!r} should read {list(layer.inputs)}. "
                f"Received: inputs {arrays['inputs']}"
            )
        *weight_shapes, bias_shape = layer.weight_shapes
        named = [(f"weights[{i}]", w) for i, w in enumerate(arrays["weights"])]
        for (what, array), expected in zip(
            named + [("biases", arrays["biases"])], [*weight_shapes, bias_shape], strict=True
        ):
            if array is None:
                raise ValueError(f"{where} layer {layer.name!r} has no {what}")
            if not _shape_ok(array.shape, expected):
                raise ValueError(
                    f"{where} layer {layer.name!r} {what} should have shape {tuple(expected)}. "
                    f"Received: {array.shape}"
                )
            if array.dtype != np.float32:
                notes.append(f"layer {layer.name!r} {what} is {array.dtype}, not float32")
    extra = [name for name in checkpoint.layers if name not in net.names]
    if extra:
        notes.append(f"layers the net does not define: {', '.join(extra)}")
    return notes

"""`bvlc_alexnet.npy`: caffe-tensorflow's pickled dict of layer arrays.

The file (formats.md §4) is a `.npy` holding a 0-d object array whose one
element is a Python 2 dict, pickled with protocol 2. Two flavours exist:
`{"conv1": [W, b], ...}` (caffe-tensorflow before 2016-05, the file most
tutorials use) and `{"conv1": {"weights": W, "biases": b}, ...}`. Keys may be
`str` or, when re-saved after `encoding="bytes"` loading, `bytes`. Arrays are
in TensorFlow layout: conv HWIO, fc `(in, out)`, fc6 rows already in HWC
order. Everything goes through `safe_pickle`; nothing in the file runs.
"""

import pickle
import re
import struct
import tokenize
import warnings

import numpy as np

from alexnet_keras import safe_pickle
from alexnet_keras.caffe.source import SourceLayer, SourceNet
from alexnet_keras.files import existing_file

__all__ = ["read_npy", "write_npy"]

_PICKLE_PROTO = b"\x80"


def _read_header(f, path):
    from numpy.lib import format as npy_format

    try:
        version = npy_format.read_magic(f)
        read = {(1, 0): npy_format.read_array_header_1_0, (2, 0): npy_format.read_array_header_2_0}
        if version not in read:
            raise ValueError(f"unsupported .npy version {version}")
        with warnings.catch_warnings():
            # "created on Python 2": expected of this file, and not for stderr.
            warnings.simplefilter("ignore", UserWarning)
            return read[version](f)
    except (ValueError, SyntaxError, tokenize.TokenError) as e:
        # numpy tokenizes the header dict: a mangled one is a TokenError, not a ValueError.
        raise ValueError(f"{path}: not a valid .npy file ({e})") from None


def _load_object(path):
    path = existing_file(path, "a .npy file")
    with open(path, "rb") as f:
        head = f.read(6)
        f.seek(0)
        if head.startswith(_PICKLE_PROTO):  # a bare pickle, as some mirrors ship
            obj = safe_pickle.load(f)
        elif head == b"\x93NUMPY":
            shape, _, dtype = _read_header(f, path)
            if dtype != np.dtype(object):
                raise ValueError(
                    f"{path}: holds a plain {dtype} array of shape {shape}; "
                    "expected a pickled dict of layers (bvlc_alexnet.npy)"
                )
            obj = safe_pickle.load(f)
        else:
            raise ValueError(f"{path}: not a .npy file (no \\x93NUMPY magic)")
        if f.read(1):
            raise ValueError(f"{path}: has trailing bytes after the pickle")
    if isinstance(obj, np.ndarray) and obj.dtype == object and obj.size == 1:
        obj = obj.reshape(()).item()
    return obj


def _text(key):
    return key.decode("latin1") if isinstance(key, bytes) else key


def _arrays(path, name, value):
    if isinstance(value, dict):
        value = {_text(k): v for k, v in value.items()}
        extra = sorted(set(value) - {"weights", "biases"})
        if extra or "weights" not in value:
            raise ValueError(
                f"{path}: layer '{name}' expects keys ['weights', 'biases']. "
                f"Received: {sorted(value)}"
            )
        value = [value["weights"]] + ([value["biases"]] if "biases" in value else [])
    if not isinstance(value, (list, tuple)):
        raise ValueError(
            f"{path}: layer '{name}' expects [weights, biases] or "
            f"{{'weights', 'biases'}}. Received: a {type(value).__name__}"
        )
    for i, a in enumerate(value):
        if not isinstance(a, np.ndarray) or a.dtype.kind not in "fiu":
            kind = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
            raise ValueError(
                f"{path}: layer '{name}' array {i} expects a numeric array. Received: {kind}"
            )
    return list(value)


def _order(name):
    # conv1..conv5, fc6..fc8 first, in network order; anything else after.
    m = re.fullmatch(r"(conv|fc)(\d+)", name)
    return (0, int(m.group(2)), name) if m else (1, 0, name)


def read_npy(path):
    """Reads a caffe-tensorflow `bvlc_alexnet.npy` (either flavour) safely.

    Args:
        path: the `.npy` file.

    Returns:
        A `SourceNet` with layout "caffe-tensorflow": one `SourceLayer` per
        key, `type` "conv"/"fc" by name, arrays `[weights, biases]` as stored.

    Raises:
        ValueError: naming the file, for a missing, empty, truncated, corrupt
            or unsafe file, or one that is not a dict of layer arrays.

    Example:

    >>> import os, tempfile, numpy as np
    >>> from alexnet_keras.caffe.npy import read_npy, write_npy
    >>> path = os.path.join(tempfile.mkdtemp(), "tiny.npy")
    >>> write_npy(path, {"conv1": [np.ones((1, 1, 3, 2), np.float32), np.zeros(2, np.float32)]})
    >>> [(layer.name, layer.arrays[0].shape) for layer in read_npy(path).layers]
    [('conv1', (1, 1, 3, 2))]
    """
    try:
        obj = _load_object(path)
    except safe_pickle.UnsafePickleError as e:
        raise ValueError(f"{path}: unsafe pickle: {e}; nothing was loaded") from None
    except ValueError as e:
        message = str(e)
        raise ValueError(
            message if message.startswith(str(path)) else f"{path}: {message}"
        ) from None
    if not isinstance(obj, dict):
        raise ValueError(
            f"{path}: expects a dict of layers (bvlc_alexnet.npy). Received: {type(obj).__name__}"
        )
    if not obj:
        raise ValueError(f"{path}: the dict of layers is empty")
    layers = []
    for key, value in obj.items():
        name = _text(key)
        if not isinstance(name, str):
            raise ValueError(
                f"{path}: layer names must be strings. Received: {safe_pickle.brief(key)}"
            )
        kind = re.match(r"[a-z]*", name).group(0)
        layers.append(
            SourceLayer(
                name,
                {"conv": "conv", "fc": "fc"}.get(kind, "other"),
                _arrays(path, name, value),
                source_type="dict" if isinstance(value, dict) else "list",
            )
        )
    layers.sort(key=lambda layer: _order(layer.name))
    flavours = sorted({layer.source_type for layer in layers})
    notes = [f"flavour: dict of {' and '.join(flavours)}s"]
    return SourceNet(str(path), "npy", "caffe-tensorflow", layers, notes=notes)


class _Py2CompatiblePickler(pickle._Pickler):
    """Writes the pickle Python 2 numpy wrote, which every Python and numpy reads.

    - numpy's array reconstructor is named `numpy.core.multiarray`: numpy 2
      says `numpy._core`, which numpy 1 and Python 2 cannot import, while
      numpy 2 still resolves the old name.
    - Array bytes are Python 2 `str` opcodes (BINSTRING), as in the original
      file, not Python 3's `_codecs.encode` of a text copy, which would store
      them as UTF-8 and grow the file by half.

    Only the pure-Python pickler lets a global be renamed.
    """

    _RECONSTRUCT = np.zeros(0).__reduce__()[0]
    dispatch = pickle._Pickler.dispatch.copy()

    def save_bytes(self, obj):
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)))
            self.write(obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes

    def save_global(self, obj, name=None):
        if obj is self._RECONSTRUCT:
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


def write_npy(path, arrays):
    """Writes `{layer: [W, b]}` as caffe-tensorflow's `bvlc_alexnet.npy` (dict of lists).

    The pickle is protocol 2, which Python 2 and 3 and every numpy read;
    load it with `np.load(path, allow_pickle=True, encoding="latin1").item()`.
    The write is atomic: a temporary name, then a rename.
    """
    from numpy.lib import format as npy_format

    from alexnet_keras.weights import atomic_write

    holder = np.empty((), dtype=object)
    holder[()] = {name: [np.asarray(a) for a in value] for name, value in arrays.items()}

    def write(tmp):
        with open(tmp, "wb") as f:
            header = {"descr": "|O", "fortran_order": False, "shape": ()}
            npy_format.write_array_header_1_0(f, header)
            _Py2CompatiblePickler(f, protocol=2).dump(holder)

    needed = sum(a.nbytes for value in holder[()].values() for a in value)
    atomic_write(path, write, suffix=".npy", needed=needed)

"""The file side of `cuda_convnet`: containers, the `options` stand-ins, layer dicts.

cuda-convnet's `util.pickle` writes a plain `cPickle` or, with `--zip-save`,
a zip with one member `data`; later versions also read gzip
(`docs/formats.md` §2.1). `load_file` tells them apart by their first bytes
and unpickles through `safe_pickle`, admitting only numpy arrays, plain
containers and the inert `OptionsStub` classes. The rest turns the unpickled
dict into `cuda_convnet.Checkpoint` fields: the checkpoint file of a
directory, the model state, layers by name with `inputs` as names, options.
"""

import gzip
import os
import pathlib
import re
import zipfile
import zlib

from alexnet_keras import limits, safe_pickle
from alexnet_keras.files import existing_file

__all__ = [
    "STUBS",
    "OptionsStub",
    "checkpoint_file",
    "int_or_none",
    "key_list",
    "kind",
    "layers_of",
    "load_file",
    "model_state",
    "natural_key",
    "options_of",
    "plain",
    "text",
]

CHECKPOINT = "a cuda-convnet checkpoint"
MAX_DEPTH = 64


class OptionsStub:
    """An inert stand-in for a class of cuda-convnet's `options` module.

    A checkpoint pickles its `op` (`options.OptionsParser`), whose `options`
    dict holds `options.Option` objects, whose `parser` is a parser class
    (`options.StringOptionParser`, ...) or a `ListOptionParser` instance.
    They are Python 2 old-style classes, pickled as OBJ + BUILD: the
    unpickler makes the instance with `cls.__new__` (no `__init__`) and hands
    the pickled `__dict__` to `__setstate__`. A stub keeps that dict as
    attributes and has no other behaviour: nothing it receives is called.
    """

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise TypeError(
                f"{type(self).__name__} expects a dict state. Received: {type(state).__name__}"
            )
        self.__dict__.update(state)

    def __repr__(self):
        return f"<options.{type(self).__name__} stub: {', '.join(map(str, self.__dict__))}>"


# Every class cuda-convnet 1's options.py defines that a pickle can name.
_OPTION_CLASSES = (
    "OptionsParser",
    "Option",
    "OptionExpression",
    "OptionParser",
    "IntegerOptionParser",
    "BooleanOptionParser",
    "StringOptionParser",
    "FloatOptionParser",
    "RangeOptionParser",
    "ListOptionParser",
)
STUBS = {
    ("options", name): type(name, (OptionsStub,), {"__module__": __name__})
    for name in _OPTION_CLASSES
}


def kind(value, pickled=False):
    """What `value` is, for messages: "a list", "an int", "a pickled list"."""
    words = ("pickled " if pickled else "") + type(value).__name__
    return ("an " if words[0] in "aeiou" else "a ") + words


def text(value):
    """A Python 2 `str` read as bytes (e.g. a Python 3 re-save) decoded as latin1."""
    return value.decode("latin1") if isinstance(value, bytes) else value


def natural_key(name):
    """Sort key that compares digit runs as numbers, so `10.1` sorts after `9.3`.

    >>> sorted(["10.1", "9.3", "9.12"], key=natural_key)
    ['9.3', '9.12', '10.1']
    """
    # re.split with a group alternates text and digits, so equal positions
    # always hold the same type and the lists compare.
    return [int(part) if i % 2 else part for i, part in enumerate(re.split(r"(\d+)", name))]


def plain(value, where, drop=(), depth=0, _memo=None):
    """`value` with bytes decoded, OrderedDicts as dicts, and `drop` keys left out at the top.

    Shared sub-objects are converted once and stay shared; a cycle or nesting
    deeper than `MAX_DEPTH` is refused (a real checkpoint has neither once
    `inputLayers` is dropped).
    """
    memo = {} if _memo is None else _memo
    if isinstance(value, bytes):
        return value.decode("latin1")
    if not isinstance(value, (dict, list, tuple)):
        return value  # numbers, str, None, numpy arrays, option stubs
    if id(value) in memo:
        if memo[id(value)] is None:
            raise ValueError(f"{where}: holds a reference cycle")
        return memo[id(value)]
    if depth >= MAX_DEPTH:
        raise ValueError(f"{where}: nests deeper than {MAX_DEPTH} levels")
    memo[id(value)] = None  # in progress
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            key = text(k)
            if key not in drop:
                out[key] = plain(v, where, (), depth + 1, memo)
    else:
        out = [plain(v, where, (), depth + 1, memo) for v in value]
        out = tuple(out) if isinstance(value, tuple) else out
    memo[id(value)] = out
    return out


def _unpickle(f, compressed_size=None):
    # A zip or gzip member is decompressed as it is read, up to the limit: a
    # member that claims or holds more is refused without being expanded. What
    # it may allocate is bounded by the size of the compressed file.
    limit = None if compressed_size is None else limits.MAX_CHECKPOINT_BYTES
    obj = safe_pickle.load(f, stubs=STUBS, limit=limit, file_size=compressed_size)
    if f.read(1):
        raise ValueError("trailing bytes after the pickle")
    return obj


def _open_zip(path, expected):
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise ValueError(f"{path}: a corrupt or truncated zip ({e}), expected {expected}") from None
    with archive:
        names = archive.namelist()
        if "data" not in names:
            raise ValueError(
                f"{path}: a zip without the member 'data' that cuda-convnet's --zip-save "
                f"writes. Received: members {names[:8]}"
            )
        size = archive.getinfo("data").file_size
        if size > limits.MAX_CHECKPOINT_BYTES:
            raise ValueError(
                f"{path}: the zip member 'data' declares {size:,} bytes; at most "
                f"{limits.MAX_CHECKPOINT_BYTES:,} are decompressed as {expected}"
            )
        with archive.open("data") as f:
            return _unpickle(f, compressed_size=os.path.getsize(path))


def _load(path, expected):
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:2] == b"PK" and head[2:4] in (b"\x03\x04", b"\x05\x06", b"\x07\x08"):
        return _open_zip(path, expected), "zip"
    if head[:2] == b"\x1f\x8b":
        with gzip.open(path, "rb") as f:
            return _unpickle(f, compressed_size=os.path.getsize(path)), "gzip"
    with open(path, "rb") as f:
        try:
            return _unpickle(f), "plain"
        except safe_pickle.UnsafePickleError:
            raise
        except ValueError as e:
            if head[:1] == b"\x80":
                raise
            # Protocol 0/1 pickles are read too, but cuda-convnet wrote protocol 2.
            raise ValueError(
                f"starts with {head!r}: not a protocol-2 pickle, zip or gzip ({e})"
            ) from None


def load_file(path, expected):
    """Unpickles a cuda-convnet file: a zip (member `data`), a gzip or a plain pickle.

    Returns:
        `(object, container)`, container "zip", "gzip" or "plain".

    Raises:
        safe_pickle.UnsafePickleError: the pickle names a global other than
            numpy's and the `options` stand-ins; raised when the unpickler
            reaches it, so nothing it names has run.
        ValueError: a truncated or corrupt pickle, zip or gzip, trailing
            bytes, a zip without `data`. Every message is one line that
            starts with the file.
    """
    try:
        return _load(path, expected)
    except safe_pickle.UnsafePickleError as e:
        raise safe_pickle.UnsafePickleError(
            f"{path}: unsafe pickle: {e}; nothing in the file ran"
        ) from None
    except ValueError as e:
        message = str(e)
        if message.startswith(str(path)):
            raise
        raise ValueError(f"{path}: {_one_line(message)}, expected {expected}") from None
    except (EOFError, OSError, zlib.error, zipfile.BadZipFile) as e:
        # gzip.BadGzipFile is an OSError; zip and gzip check their CRC at the end.
        raise ValueError(
            f"{path}: a corrupt or truncated container ({type(e).__name__}: "
            f"{_one_line(str(e))}), expected {expected}"
        ) from None


def _one_line(message):
    return " ".join(message.split())


def key_list(items, limit=12):
    """`[a, b, ...] (n)`: the first `limit` keys of a dict, for messages."""
    keys = list(items)
    shown = ", ".join(map(str, keys[:limit]))
    return f"[{shown}{', ...' if len(keys) > limit else ''}] ({len(keys)})"


def checkpoint_file(path, notes):
    """A checkpoint file, or the last file of a checkpoint directory in natural order."""
    path = pathlib.Path(path)
    if not path.exists():  # a checkpoint may be either, so say both
        raise ValueError(f"{path}: no such file or directory, expected {CHECKPOINT}")
    if not path.is_dir():
        return existing_file(path, CHECKPOINT)
    # cuda-convnet's load_checkpoint unpickles the alphanumerically last file;
    # dot files (.DS_Store, editor swap files) are never checkpoints.
    files = [p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")]
    if not files:
        raise ValueError(
            f"{path}: an empty checkpoint directory, expected files named <epoch>.<batch> "
            "(e.g. 10.1). Received: no regular files"
        )
    files.sort(key=lambda p: natural_key(p.name))
    picked = files[-1]
    others = f", after {files[-2].name}" if len(files) > 1 else ""
    notes.append(
        f"picked {picked.name}: the last of {len(files)} files in {path} in natural order{others}"
    )
    return existing_file(picked, CHECKPOINT)


def int_or_none(file, state, key):
    """`state[key]` if it is an int, None if absent; ValueError naming the file otherwise."""
    value = state.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(
            f"{file}: model_state[{key!r}] must be an int. Received: {safe_pickle.brief(value)}"
        )
    return value


def model_state(file, top, notes):
    """`(top-level dict, model_state dict)` with str keys; a bare model state is accepted."""
    if not isinstance(top, dict):
        raise ValueError(
            f"{file}: expects a dict with 'model_state' ({CHECKPOINT}). "
            f"Received: {kind(top, pickled=True)}"
        )
    top = {text(k): v for k, v in top.items()}
    if "model_state" in top:
        state = top["model_state"]
        if not isinstance(state, dict):
            raise ValueError(f"{file}: model_state must be a dict. Received: {kind(state)}")
        state = {text(k): v for k, v in state.items()}
    elif "layers" in top:
        state = top
        notes.append("no 'model_state': the top-level dict is read as the model state")
    else:
        raise ValueError(
            f"{file}: expects a dict with 'model_state' or 'layers' ({CHECKPOINT}). "
            f"Received: keys {key_list(top)}"
        )
    if "layers" not in state:
        raise ValueError(f"{file}: model_state has no 'layers'. Received: keys {key_list(state)}")
    return top, state


def _raw_layers(file, raw):
    if isinstance(raw, dict):
        return "dict", [(text(k), v) for k, v in raw.items()]
    if isinstance(raw, (list, tuple)):
        return "list", [(None, v) for v in raw]
    raise ValueError(
        f"{file}: model_state['layers'] must be a dict or a list of layer dicts. "
        f"Received: {kind(raw)}"
    )


def layers_of(file, raw, notes):
    """`(form, {name: layer dict})` from `model_state["layers"]`, a dict or a list.

    Each layer dict goes through `plain` without `inputLayers`; `inputs` become
    names (list-form integer indexes resolved). A layer needs a str `type`.
    """
    form, items = _raw_layers(file, raw)
    layers, order = {}, []
    for index, (key, layer) in enumerate(items):
        label = repr(key) if key is not None else f"#{index}"
        if not isinstance(layer, dict):
            raise ValueError(f"{file}: layer {label} must be a dict. Received: {kind(layer)}")
        # inputLayers repeats the input layers' dicts (shared references):
        # dropped, not copied, so nothing is walked twice.
        layer = plain(layer, f"{file}: layer {label}", drop=("inputLayers",))
        name = layer.get("name", key)
        if not isinstance(name, str) or not name:
            raise ValueError(
                f"{file}: layer {label} has no 'name'. Received: keys {key_list(layer)}"
            )
        if key is not None and name != key:
            notes.append(f"layer {key!r} says name={name!r}; the dict key is used")
            name = key
        if "type" not in layer:
            raise ValueError(
                f"{file}: layer {name!r} has no 'type' key. Received: keys {key_list(layer)}"
            )
        if not isinstance(layer["type"], str):
            raise ValueError(
                f"{file}: layer {name!r} 'type' must be a str. "
                f"Received: {safe_pickle.brief(layer['type'])}"
            )
        if name in layers:
            raise ValueError(f"{file}: two layers are named {name!r}")
        layer["name"] = name
        layers[name] = layer
        order.append(name)
    for name, layer in layers.items():
        if "inputs" in layer:
            layer["inputs"] = _input_names(file, form, order, name, layer["inputs"])
    return form, layers


def _input_names(file, form, order, name, inputs):
    if isinstance(inputs, (str, int)):
        inputs = [inputs]  # a detached neuron layer briefly holds one name
    if not isinstance(inputs, (list, tuple)):
        raise ValueError(
            f"{file}: layer {name!r} 'inputs' must be a list. Received: {type(inputs).__name__}"
        )
    names = []
    for x in inputs:
        if isinstance(x, int) and not isinstance(x, bool):
            if form != "list" or not 0 <= x < len(order):
                where = "a dict of layers" if form == "dict" else f"{len(order)} layers"
                raise ValueError(
                    f"{file}: layer {name!r} reads input index {x}, which {where} cannot "
                    f"resolve. Received: inputs={list(inputs)}"
                )
            names.append(order[x])
        elif isinstance(x, str) and x in order:
            names.append(x)
        else:
            raise ValueError(
                f"{file}: layer {name!r} reads an unknown layer {x!r}. Received: inputs="
                f"{list(inputs)}"
            )
    return names


def options_of(file, top, notes):
    """`{name: value}` of `op.options`, whose values are `options.Option` stubs."""
    op = top.get("op")
    if op is None:
        notes.append("no 'op' (options) in the file")
        return {}
    options = getattr(op, "options", None) if isinstance(op, OptionsStub) else None
    if not isinstance(options, dict):
        notes.append(f"'op' is {kind(op)} without an options dict; options ignored")
        return {}
    out = {}
    for key, option in options.items():
        value = option.__dict__.get("value") if isinstance(option, OptionsStub) else option
        out[text(key)] = plain(value, f"{file}: option {key!r}")
    return out

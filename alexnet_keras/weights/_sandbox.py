"""Runs the weights reader in a child process and checks everything it hands back.

The child (`_reader`) parses the untrusted file; a crash, a loop or a memory
blow-up in libhdf5 ends the child, never this process, and becomes a one-line
`ValueError`. The child's answer is read as data, never unpickled: a header
(`MAGIC`, length, JSON with the metadata and the array shapes), the raw
little-endian float32 bytes of each array, and `MAGIC` again. Every part is
checked here as if the child were hostile too: the metadata against the schema,
the shapes against the plan and the file's size, the byte counts exactly.
"""

import collections
import json
import math
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import threading

import numpy as np

from alexnet_keras import files, limits
from alexnet_keras.weights import _reader
from alexnet_keras.weights._schema import check_metadata, expected_arrays

__all__ = ["forget", "read"]

# The module the child runs (tests swap in a reader that crashes or lies).
READER = "alexnet_keras.weights._reader"
_PACKAGE_ROOT = str(pathlib.Path(__file__).resolve().parents[2])
# Metadata checked by an earlier call, as JSON text, by the file's identity and
# version: `AlexNet(weights=)` reads the metadata, then the arrays.
_CACHE = collections.OrderedDict()
_CACHE_SIZE = 16


class _Malformed(Exception):
    """The child's answer does not follow the framing."""


def _stat(path):
    try:
        os.stat(path)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such weights file") from None
    except OSError:
        pass  # existing_file says what is wrong
    files.existing_file(path, "a .weights.h5 file", limits.MAX_WEIGHTS_FILE_BYTES)
    info = os.stat(path)
    return info, (os.path.realpath(path), info.st_dev, info.st_ino, info.st_size,
                  info.st_mtime_ns)  # fmt: skip


def read(path, *, arrays, kind="alexnet"):
    """`(metadata, {layer: [arrays]} or None)` of a checked weights file.

    Args:
        path: the `.weights.h5`.
        arrays: whether to read the arrays too (else only the tree is checked).
        kind: `"alexnet"` (metadata of the schema, layers of its plan) or
            `"any"` (any JSON object, or none; any Keras layers).

    Raises:
        ValueError: `"{path}: ..."`, for every file that is not what Keras and
            alexnet-keras write, and for one the reader crashed or hung on.
    """
    if kind not in ("alexnet", "any"):
        raise ValueError(f"`kind` must be 'alexnet' or 'any'. Received: kind={kind!r}")
    path = pathlib.Path(path)
    info, key = _stat(path)
    key += (kind,)
    if not arrays and key in _CACHE:
        _CACHE.move_to_end(key)
        return json.loads(_CACHE[key]), None
    meta, out = _run(path, info.st_size, arrays, kind)
    _CACHE[key] = json.dumps(meta)
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return meta, out


def _run(path, size, arrays, kind):
    seconds = _reader.read_seconds(size)
    python_path = [_PACKAGE_ROOT] + (
        [os.environ["PYTHONPATH"]] if "PYTHONPATH" in os.environ else []
    )
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(python_path))  # fmt: skip
    argv = [sys.executable, "-m", READER, os.fspath(path), str(size),
            "arrays" if arrays else "metadata", kind]  # fmt: skip
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=err, env=env)  # fmt: skip
        expired = threading.Event()
        timer = threading.Timer(seconds, lambda: (expired.set(), proc.kill()))
        timer.start()
        try:
            try:
                result = _receive(proc.stdout, size, kind)
            except _Malformed as e:
                result = e
            proc.stdout.close()
            rc = proc.wait()
        finally:
            timer.cancel()
            proc.kill()
            proc.wait()
        err.seek(0)
        stderr = err.read(64 << 10).decode("utf-8", "replace")
    return _outcome(path, rc, result, stderr, seconds if expired.is_set() else None)


def _outcome(path, rc, result, stderr, expired_after):
    if rc == 0 and not isinstance(result, _Malformed):
        return result
    if rc == _reader.REFUSED:
        lines = stderr.strip().splitlines()
        raise ValueError(f"{path}: {lines[-1] if lines else 'refused by the weights reader'}")
    if expired_after is not None or rc == -signal.SIGXCPU:
        limit = f"{expired_after} s" if expired_after is not None else "its CPU time"
        raise ValueError(f"{path}: the weights reader did not finish within {limit} "
                         "(a corrupt HDF5 file)")  # fmt: skip
    if rc < 0:
        name = signal.Signals(-rc).name if -rc in signal.valid_signals() else str(-rc)
        raise ValueError(f"{path}: a corrupt HDF5 file (the reader crashed with {name})")
    if rc == 0:
        raise ValueError(
            f"{path}: a corrupt HDF5 file (the reader's answer is malformed: "
            f"{' '.join(str(result).split())[:300]})"
        )
    # Any other status is a bug in the reader, not a bad file: show it.
    raise RuntimeError(f"{path}: the weights reader failed (exit {rc}):\n{stderr[-4000:]}")


def _read_exact(stream, n):
    data = stream.read(n)
    if len(data) != n:
        raise _Malformed(f"{len(data)} of {n} bytes")
    return data


def _receive(stream, size, kind):
    magic, length = _reader.HEADER.unpack(_read_exact(stream, _reader.HEADER.size))
    if magic != _reader.MAGIC or length > limits.MAX_METADATA_BYTES + (1 << 20):
        raise _Malformed("bad header")
    try:
        header = json.loads(_read_exact(stream, length))
        meta, listed = header["metadata"], header["arrays"]
        if kind == "alexnet":
            check_metadata(meta)
        elif meta is not None and not isinstance(meta, dict):
            raise _Malformed("metadata")
        shapes = _shapes(listed, size)
    except (ValueError, KeyError, TypeError, RecursionError) as e:  # Refusal is a ValueError
        raise _Malformed(f"header: {e}") from None
    if listed and kind == "alexnet" and shapes != expected_arrays(meta):
        raise _Malformed("shapes differ from the plan")
    out = {}
    for layer, layer_shapes in shapes.items():
        out[layer] = []
        for shape in layer_shapes:
            array = np.empty(shape, "<f4")
            view = memoryview(array).cast("B")
            got = 0
            while got < len(view):
                n = stream.readinto(view[got:])
                if not n:
                    raise _Malformed(f"array '{layer}' ends early")
                got += n
            out[layer].append(array)
    if _read_exact(stream, len(_reader.MAGIC)) != _reader.MAGIC or stream.read(1):
        raise _Malformed("bad trailer")
    return meta, (out if listed else None)


def _shapes(listed, size):
    """`{layer: [shape]}` from the header's `[layer, index, dims]` list, checked."""
    shapes, total = {}, 0
    if not isinstance(listed, list) or len(listed) > limits.MAX_WEIGHTS_OBJECTS:
        raise TypeError("arrays")
    for layer, index, dims in listed:
        if not isinstance(layer, str) or index != len(shapes.setdefault(layer, [])):
            raise TypeError("array order")
        if not 1 <= len(dims) <= 4 or any(type(d) is not int or d < 1 for d in dims):
            raise TypeError("dims")
        total += 4 * math.prod(dims)  # Python integers: no overflow
        if total > size:
            raise TypeError("more array bytes than the file holds")
        shapes[layer].append(tuple(dims))
    return shapes


def forget():
    """Empties the metadata cache (tests that rewrite a file in place within one clock tick)."""
    _CACHE.clear()

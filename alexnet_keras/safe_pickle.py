"""A restricted unpickler for legacy pickles from the internet.

`bvlc_alexnet.npy` and cuda-convnet checkpoints are Python 2 pickles. A plain
`pickle.load` (or `np.load(allow_pickle=True)`) runs whatever callable the
file names, so a crafted file can run `os.system`. This unpickler resolves only
the globals that numpy arrays and plain containers need, under numpy's old
(`numpy.core`) and new (`numpy._core`) module names, and refuses every other
global before any object is built. Python 2 `str` arrives as `latin1`, which
keeps the raw bytes of array data intact.
"""

import collections
import io
import pickle

import numpy as np

__all__ = ["UnsafePickleError", "load", "loads"]


class UnsafePickleError(ValueError):
    """A pickle names a global outside the allow-list."""


def _latin1_encode(text, encoding="utf-8"):
    # Python 3 writes bytes into protocol-2 pickles as _codecs.encode(str, "latin1").
    if encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError(f"refuses _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def _allowed():
    # Taken from numpy's own reduce tuples, so they are the real functions
    # whichever module path numpy uses today.
    reconstruct = np.zeros(0).__reduce__()[0]
    scalar = np.float32(0).__reduce__()[0]
    frombuffer = np.zeros(1).__reduce_ex__(5)[0]  # protocol 5's out-of-band arrays
    allowed = {}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = reconstruct
        allowed[(module, "scalar")] = scalar
    for module in ("numpy", "numpy.core.numeric", "numpy._core.numeric"):
        allowed[(module, "ndarray")] = np.ndarray
        allowed[(module, "dtype")] = np.dtype
        allowed[(module, "_frombuffer")] = frombuffer
    for module in ("collections", "ordereddict"):
        allowed[(module, "OrderedDict")] = collections.OrderedDict
    allowed[("_codecs", "encode")] = _latin1_encode
    return allowed


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, stubs):
        super().__init__(file, encoding="latin1")
        self._stubs = stubs or {}

    def find_class(self, module, name):
        obj = _ALLOWED.get((module, name)) or self._stubs.get((module, name))
        if obj is None:
            raise UnsafePickleError(f"refuses the global {module}.{name}")
        return obj

    def persistent_load(self, pid):
        raise UnsafePickleError("refuses a persistent id")


def load(file, *, stubs=None):
    """Unpickles from a binary file object, allowing only arrays and containers.

    Args:
        file: a binary file object positioned at the pickle.
        stubs: optional `{(module, name): class}` of inert classes to admit,
            e.g. cuda-convnet's `options.OptionsParser`.

    Raises:
        UnsafePickleError: the pickle names a global outside the allow-list.
        ValueError: the data is not a valid pickle (truncated, corrupt).

    Example:

    >>> import io, pickle, numpy as np
    >>> from alexnet_keras import safe_pickle
    >>> data = pickle.dumps({"w": np.arange(3.0)}, protocol=2)
    >>> safe_pickle.load(io.BytesIO(data))["w"]
    array([0., 1., 2.])
    >>> safe_pickle.load(io.BytesIO(pickle.dumps(print)))
    Traceback (most recent call last):
    ...
    alexnet_keras.safe_pickle.UnsafePickleError: refuses the global builtins.print
    """
    try:
        return _Unpickler(file, stubs).load()
    except UnsafePickleError:
        raise
    except RecursionError:
        raise ValueError("the pickle nests too deeply") from None
    except (EOFError, pickle.UnpicklingError) as e:
        raise ValueError(f"truncated or corrupt pickle ({e or 'unexpected end of data'})") from None
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError) as e:
        # Malformed argument tuples for allowed callables (e.g. a bad dtype).
        raise ValueError(f"corrupt pickle ({type(e).__name__}: {e})") from None


def loads(data, *, stubs=None):
    """`load` from bytes."""
    return load(io.BytesIO(data), stubs=stubs)


_ALLOWED = _allowed()

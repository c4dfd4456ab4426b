"""A restricted, bounded unpickler for legacy pickles from the internet.

`bvlc_alexnet.npy` and cuda-convnet checkpoints are Python 2 pickles. A plain
`pickle.load` (or `np.load(allow_pickle=True)`) runs whatever callable the
file names, so a crafted file can run `os.system`; and even numpy's own
functions, called with crafted arguments, read and write wherever the file
says. This unpickler resolves only the globals numpy arrays and plain
containers need, under numpy's old (`numpy.core`) and new (`numpy._core`)
module names, to stand-ins that admit exactly the forms real files write
(`_numpy`); every other global is refused before any object is built. It
reads through a bounded source (`_source`) and bounds opcodes, allocation and
nesting (`_unpickler`), so a small file cannot cost much memory or time.
Python 2 `str` arrives as `latin1`, which keeps the raw bytes of array data
intact. Every refusal is a one-line ValueError.
"""

import io
import pickle
import struct

from alexnet_keras import limits
from alexnet_keras.safe_pickle._source import Refusal, Source, UnsafePickleError, brief
from alexnet_keras.safe_pickle._unpickler import Unpickler

__all__ = ["UnsafePickleError", "brief", "load", "loads"]


class _Global:
    """A name a pickle may use; what it does is decided by `Unpickler._call`."""

    def __init__(self, name, label):
        self.name, self.label = name, label

    def __repr__(self):
        return self.label


def _globals():
    allowed = {}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        for name in ("_reconstruct", "scalar"):
            allowed[(module, name)] = _Global(name, f"numpy {name}")
    ndarray = _Global("ndarray", "numpy.ndarray")
    allowed[("numpy", "ndarray")] = ndarray
    for module in ("numpy", "numpy.core.numeric", "numpy._core.numeric"):
        allowed[(module, "ndarray")] = ndarray
        allowed[(module, "dtype")] = _Global("dtype", "numpy.dtype")
        allowed[(module, "_frombuffer")] = _Global("_frombuffer", "numpy _frombuffer")
    for module in ("collections", "ordereddict"):
        allowed[(module, "OrderedDict")] = _Global("OrderedDict", "OrderedDict")
    allowed[("_codecs", "encode")] = _Global("encode", "_codecs.encode")
    for module in ("builtins", "__builtin__"):  # Python 3 pickles b"" at protocols 0-2 as bytes()
        allowed[(module, "bytes")] = _Global("bytes", "bytes")
    return allowed


_GLOBALS = _globals()


def _remaining(file):
    here = file.tell()
    end = file.seek(0, 2)
    file.seek(here)
    return end - here


def load(file, *, stubs=None, limit=None, file_size=None, bounds=limits):
    """Unpickles from a binary file object, allowing only arrays and containers.

    Args:
        file: a binary file object positioned at the pickle.
        stubs: optional `{(module, name): class}` of inert classes to admit,
            e.g. cuda-convnet's `options.OptionsParser`; they are made
            without arguments and take a dict state.
        limit: for a stream (a zip or gzip member), the most bytes that may
            be decompressed; None for a seekable file, read to its end.
        file_size: the size on disk of what the pickle comes from (a
            compressed file's, for a stream); by default the bytes left in
            `file`. Allocation is bounded by `PICKLE_ALLOCATION_FACTOR` x this
            + `PICKLE_ALLOCATION_SLACK`, checked before each allocation.
        bounds: `alexnet_keras.limits` (a test may pass an object with other
            `MAX_PICKLE_DEPTH`, `MAX_PICKLE_OPS`, `MAX_ARRAY_DIMS`,
            `PICKLE_ALLOCATION_FACTOR` and `PICKLE_ALLOCATION_SLACK`).

    Raises:
        UnsafePickleError: the pickle names a global outside the allow-list,
            or uses one in a form real files never write.
        ValueError: one line: a truncated or corrupt pickle, or a bound
            reached (length, opcodes, allocation, nesting).

    Example:

    >>> import io, pickle, numpy as np
    >>> from alexnet_keras import safe_pickle
    >>> data = pickle.dumps({"w": np.arange(3.0)}, protocol=2)
    >>> safe_pickle.load(io.BytesIO(data))["w"]
    array([0., 1., 2.])
    >>> safe_pickle.loads(pickle.dumps(print))
    Traceback (most recent call last):
    ...
    alexnet_keras.safe_pickle.UnsafePickleError: refuses the global builtins.print
    """
    if limit is None:
        source = Source(file, _remaining(file), exact=True)
    else:
        source = Source(file, limit, exact=False)
    size = source.left if file_size is None else file_size
    factor, slack = bounds.PICKLE_ALLOCATION_FACTOR, bounds.PICKLE_ALLOCATION_SLACK
    budget = (factor * size + slack, f"{factor} x the file's {size:,} bytes + {slack:,}")
    unpickler = Unpickler(
        source, globals_=_GLOBALS, stubs=stubs or {}, max_depth=bounds.MAX_PICKLE_DEPTH,
        max_dims=bounds.MAX_ARRAY_DIMS, max_ops=bounds.MAX_PICKLE_OPS, budget=budget,
    )  # fmt: skip
    try:
        return unpickler.load()
    except Refusal as e:
        raise type(e)(_one_line(str(e))) from None
    except (EOFError, pickle.UnpicklingError, struct.error) as e:
        detail = _one_line(str(e)) or "unexpected end of data"
        raise ValueError(
            f"truncated or corrupt pickle ({detail}) at byte {source.consumed:,}"
        ) from None
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError) as e:
        # Malformed arguments for an allowed name, a short stack, an unknown memo key.
        raise ValueError(
            f"corrupt pickle ({type(e).__name__}: {_one_line(str(e)):.200}) at byte "
            f"{source.consumed:,}"
        ) from None


def loads(data, *, stubs=None, bounds=limits):
    """`load` from bytes."""
    return load(io.BytesIO(data), stubs=stubs, bounds=bounds)


def _one_line(message):
    return " ".join(message.split())

"""numpy's pickle forms, admitted only as real files write them, through one checked path.

numpy pickles an array as `_reconstruct(ndarray, (0,), 'b')` followed by BUILD
with `(1, shape, dtype, is_fortran, raw bytes)`, a dtype as `dtype(code, 0, 1)`
followed by BUILD with `(3, byte order, None, None, None, -1, -1, flags)`, a
scalar as `scalar(dtype, raw bytes)`, and (protocol 5) an array as
`_frombuffer(bytes, dtype, shape, order)`. numpy's own functions trust those
arguments: a dtype given fields by BUILD, an object dtype over raw bytes or an
`ndarray(shape, dtype, buffer, offset)` reads and writes wherever the file
says. None of them is handed to the unpickler. The stand-ins here accept the
forms above and nothing else: a dtype is rebuilt from an allow-listed type
code, never taken from the file, and array bytes must be exactly what the
shape and dtype need.
"""

import math

import numpy as np

from alexnet_keras.safe_pickle._source import Refusal, brief
from alexnet_keras.safe_pickle._source import UnsafePickleError as UnsafeForm

__all__ = [
    "DtypeSpec", "UnsafeForm", "array_state", "dtype_state", "frombuffer", "new_array", "new_dtype",
    "scalar",
]  # fmt: skip

# Every type code a numeric array or a 0-d object holder pickles with;
# Python 2 numpy wrote object as O8 (O4 on 32-bit builds).
_CODES = {
    "b1", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f2", "f4", "f8", "c8", "c16", "O4", "O8",
}  # fmt: skip
_OBJECT_FLAGS = 63  # numpy's flags for object dtypes, as pickled
_INTP = 1 << 63  # numpy's dimensions are intp; a larger int would only cost time to multiply


class DtypeSpec:
    """`numpy.dtype(code, 0, 1)` as unpickled; `dtype` exists once BUILD gave a valid state."""

    __slots__ = ("code", "dtype")

    def __init__(self, code):
        self.code, self.dtype = code, None

    def __repr__(self):
        return f"<pickled dtype {self.code!r}>"


def _is_int(value, *allowed):
    return type(value) in (int, bool) and (not allowed or value in allowed)


def _text(value):
    """A str or Python 2 str (bytes) as str; anything else as None, so comparing it is safe."""
    if type(value) is bytes:
        return value.decode("latin1")
    return value if type(value) is str else None


def new_dtype(args):
    """`numpy.dtype(*args)` as REDUCE calls it: a spec, completed by `dtype_state`."""
    if type(args) is not tuple or len(args) != 3:
        raise UnsafeForm(f"refuses numpy.dtype with arguments {brief(args)}")
    code, align, copy = _text(args[0]), args[1], args[2]
    if code not in _CODES or not _is_int(align, 0) or not _is_int(copy, 1):
        raise UnsafeForm(f"refuses numpy.dtype({brief(args[0])}): only plain numeric dtypes load")
    return DtypeSpec(code)


def dtype_state(spec, state):
    """BUILD on a dtype: only `(3, order, None, None, None, -1, -1, flags)`, no fields."""
    if spec.dtype is not None:
        raise UnsafeForm(f"refuses a second state for dtype {spec.code!r}")
    if type(state) is not tuple or len(state) != 8:
        raise UnsafeForm(f"refuses dtype state {brief(state)}: only numeric dtypes load")
    version, order, subarray, names, fields, elsize, alignment, flags = state
    order = _text(order)
    is_object = spec.code[0] == "O"
    single = is_object or spec.code in ("b1", "i1", "u1")
    if not (
        _is_int(version, 3)
        and subarray is None
        and names is None
        and fields is None
        and _is_int(elsize, -1)
        and _is_int(alignment, -1)
        and _is_int(flags, _OBJECT_FLAGS if is_object else 0)
        and order in (("|",) if single else ("<", ">", "="))
    ):
        raise UnsafeForm(
            f"refuses dtype {spec.code!r} with state {brief(state)}: only plain numeric dtypes load"
        )
    spec.dtype = np.dtype(object) if is_object else np.dtype(order.strip("|") + spec.code)


def _dtype(spec, what, numeric=True):
    if not isinstance(spec, DtypeSpec) or spec.dtype is None:
        raise UnsafeForm(f"refuses {what} with dtype {brief(spec)}: not a complete numpy dtype")
    if numeric and spec.dtype.hasobject:
        raise UnsafeForm(f"refuses {what} of object dtype over raw bytes")
    return spec.dtype


def _shape(shape, what, max_dims):
    if (
        type(shape) is not tuple
        or len(shape) > max_dims
        or not all(type(d) is int and 0 <= d < _INTP for d in shape)
    ):
        raise UnsafeForm(f"refuses {what} with shape {brief(shape)}")
    return shape


def _raw(data, nbytes, what):
    data = data.encode("latin1") if isinstance(data, str) else data
    if type(data) not in (bytes, bytearray):
        raise UnsafeForm(f"refuses {what} whose data is {type(data).__name__}, not bytes")
    if len(data) != nbytes:
        raise Refusal(f"{what} needs {nbytes:,} bytes of data. Received: {len(data):,}")
    return data


def new_array(ndarray, args):
    """`_reconstruct(ndarray, (0,), 'b')`, the only call real files make: an empty array."""
    if type(args) is not tuple or len(args) != 3 or args[0] is not ndarray:
        raise UnsafeForm(f"refuses numpy _reconstruct{brief(args)}")
    if type(args[1]) is not tuple or args[1] != (0,) or _text(args[2]) != "b":
        raise UnsafeForm(f"refuses numpy _reconstruct{brief(args)}")
    return np.empty(0, np.int8)


def array_state(array, state, max_dims):
    """BUILD on an array from `new_array`: checks `(1, shape, dtype, fortran, data)`, then fills it.

    Numeric data must be bytes of exactly `prod(shape) * itemsize`; object
    data (the 0-d holder of a `.npy` pickle) a list of exactly `prod(shape)`
    objects. Only then does numpy see them, with a dtype rebuilt here.

    Returns:
        The bytes the array holds, for the allocation budget.
    """
    if type(state) is not tuple or len(state) != 5 or not _is_int(state[0], 1):
        raise UnsafeForm(f"refuses array state {brief(state)}")
    _, shape, spec, fortran, data = state
    shape = _shape(shape, "an array", max_dims)
    dtype = _dtype(spec, "an array", numeric=False)
    if not _is_int(fortran, 0, 1):
        raise UnsafeForm(f"refuses array state with is_fortran={brief(fortran)}")
    count = math.prod(shape)
    if dtype.hasobject:
        if type(data) is not list or len(data) != count:
            raise UnsafeForm(
                f"refuses an object array of {count:,} items over {type(data).__name__}"
            )
    else:
        data = _raw(data, count * dtype.itemsize, f"an array of shape {shape} and dtype {dtype}")
        data = bytes(data)
    array.__setstate__((1, shape, dtype, bool(fortran), data))
    return count * dtype.itemsize


def scalar(args):
    """`scalar(dtype, raw bytes)`: a numpy number, never an object."""
    if type(args) is not tuple or len(args) != 2:
        raise UnsafeForm(f"refuses numpy scalar{brief(args)}")
    dtype = _dtype(args[0], "a numpy scalar")
    data = _raw(args[1], dtype.itemsize, f"a {dtype} scalar")
    return np.frombuffer(data, dtype, 1)[0]


def frombuffer(args, max_dims):
    """Protocol 5's `_frombuffer(buffer, dtype, shape, order)`, with the buffer's size checked."""
    if type(args) is not tuple or len(args) != 4 or _text(args[3]) not in ("C", "F"):
        raise UnsafeForm(f"refuses numpy _frombuffer{brief(args)}")
    dtype = _dtype(args[1], "an array")
    shape = _shape(args[2], "an array", max_dims)
    nbytes = math.prod(shape) * dtype.itemsize
    data = _raw(args[0], nbytes, f"an array of shape {shape} and dtype {dtype}")
    flat = np.frombuffer(data, dtype, math.prod(shape)) if nbytes else np.empty(0, dtype)
    return flat.reshape(shape, order=_text(args[3])), nbytes

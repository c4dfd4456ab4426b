"""Writes `.npy` files byte for byte as Python 2 + numpy 1.x wrote `bvlc_alexnet.npy`.

caffe-tensorflow ran `np.save(path, data_dict)` under Python 2: a version 1.0
`.npy` header for a 0-d object array, then `cPickle` protocol 2 of that array.
Python 2 `str` (the array bytes, the dict keys, dtype codes) is emitted with
the BINSTRING opcodes, which Python 3 can only read as `latin1`. The opcodes
are written here by hand, independently of `pickle`, so the reader is tested
against the real format and not against what Python 3 would write.
"""

import struct

import numpy as np

_GLOBAL_RECONSTRUCT = b"cnumpy.core.multiarray\n_reconstruct\n"


class Py2Pickle:
    """A protocol-2 pickle writer that emits what Python 2's cPickle did."""

    def __init__(self):
        self.out = bytearray(b"\x80\x02")
        self.memo = 0

    def _put(self):
        if self.memo < 256:
            self.out += b"q" + bytes([self.memo])
        else:
            self.out += b"r" + struct.pack("<I", self.memo)
        self.memo += 1

    def _global(self, text):
        self.out += text
        self._put()

    def _str(self, data):  # a Python 2 `str`: raw bytes
        data = data.encode("latin1") if isinstance(data, str) else bytes(data)
        if len(data) < 256:
            self.out += b"U" + bytes([len(data)]) + data
        else:
            self.out += b"T" + struct.pack("<i", len(data)) + data
        self._put()

    def _int(self, v):
        if 0 <= v < 256:
            self.out += b"K" + bytes([v])
        elif 0 <= v < 65536:
            self.out += b"M" + struct.pack("<H", v)
        else:
            self.out += b"J" + struct.pack("<i", v)

    def _tuple(self, items):
        if not items:
            self.out += b")"
            return
        if len(items) > 3:
            self.out += b"("
        for item in items:
            self.save(item)
        self.out += b"t" if len(items) > 3 else bytes([0x84 + len(items)])
        self._put()

    def _dtype(self, dt):
        self._global(b"cnumpy\ndtype\n")
        code = "O8" if dt.kind == "O" else dt.str[1:]
        self._tuple([code, 0, 1])
        self.out += b"R"
        self._put()
        order = "|" if dt.kind == "O" or dt.itemsize == 1 else "<"
        self._tuple([3, order, None, None, None, -1, -1, 63 if dt.kind == "O" else 0])
        self.out += b"b"

    def _array(self, a):
        self._global(_GLOBAL_RECONSTRUCT)
        self._global(b"cnumpy\nndarray\n")
        self._tuple([0])
        self._str("b")
        self.out += b"\x87"  # TUPLE3 (ndarray, (0,), 'b')
        self._put()
        self.out += b"R"
        self._put()
        data = list(a.ravel()) if a.dtype == object else np.ascontiguousarray(a).tobytes()
        self.out += b"("
        self._int(1)
        self._tuple(list(a.shape))
        self._dtype(a.dtype)
        self.out += b"\x89"  # not Fortran order
        if isinstance(data, list):
            self._list(data)
        else:
            self._str(data)
        self.out += b"t"
        self._put()
        self.out += b"b"

    def _list(self, items):
        self.out += b"]"
        self._put()
        if items:
            self.out += b"("
            for item in items:
                self.save(item)
            self.out += b"e"

    def _dict(self, d):
        self.out += b"}"
        self._put()
        if d:
            self.out += b"("
            for k, v in d.items():
                self.save(k)
                self.save(v)
            self.out += b"u"

    def save(self, obj):
        if obj is None:
            self.out += b"N"
        elif isinstance(obj, bool):
            self.out += b"\x88" if obj else b"\x89"
        elif isinstance(obj, int):
            self._int(obj)
        elif isinstance(obj, (str, bytes)):
            self._str(obj)
        elif isinstance(obj, tuple):
            self._tuple(list(obj))
        elif isinstance(obj, list):
            self._list(obj)
        elif isinstance(obj, dict):
            self._dict(obj)
        elif isinstance(obj, np.ndarray):
            self._array(obj)
        else:
            raise TypeError(type(obj))
        return self

    def finish(self):
        return bytes(self.out + b".")


def npy_header_object():
    """The version 1.0 header numpy writes before a pickled 0-d object array."""
    text = "{'descr': '|O', 'fortran_order': False, 'shape': (), }"
    pad = 64 - (10 + len(text) + 1) % 64
    text = (text + " " * pad + "\n").encode("latin1")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text


def py2_npy_bytes(data):
    """The bytes of `np.save(path, data)` under Python 2 for a dict `data`."""
    holder = np.empty((), dtype=object)
    holder[()] = data
    return npy_header_object() + Py2Pickle().save(holder).finish()


def write_py2_npy(path, data):
    with open(path, "wb") as f:
        f.write(py2_npy_bytes(data))
    return path


def keras_to_npy_dict(arrays, flavour="lists", key_type=str):
    """`{layer: [W, b]}` as caffe-tensorflow stored it: dict of lists, or of dicts."""
    out = {}
    for name, (w, b) in arrays.items():
        key = key_type(name) if key_type is str else name.encode("latin1")
        if flavour == "lists":
            out[key] = [w, b]
        else:
            out[key] = {key_type("weights") if key_type is str else b"weights": w,
                        key_type("biases") if key_type is str else b"biases": b}  # fmt: skip
    return out

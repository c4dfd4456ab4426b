"""The ILSVRC-2012 devkit's `meta.mat`, read as data: a bounded MATLAB 5 file reader.

The devkit maps its ILSVRC2012_IDs to wnids in `data/meta.mat`, a MATLAB
level-5 MAT-file (MathWorks, "MAT-File Format", ch. 1) holding `synsets`, a
struct array with `ILSVRC2012_ID` and `WNID` fields. This reads numeric,
char, cell and struct arrays from plain and zlib-compressed elements, and
nothing else: no MATLAB objects, no function handles, no code. Sizes, nesting
and the decompressed bytes are bounded (`limits.MAX_LABEL_FILE_BYTES`).
"""

import struct
import zlib

from alexnet_keras.files import read_bounded
from alexnet_keras.limits import MAX_LABEL_FILE_BYTES, MAX_VAL_IMAGES

__all__ = ["read_mat", "read_synsets"]

_MATRIX, _COMPRESSED = 14, 15
# Data types: struct code and item size (MAT-File Format, table 1-1).
_TYPES = {1: "b", 2: "B", 3: "h", 4: "H", 5: "i", 6: "I", 7: "f", 9: "d", 12: "q", 13: "Q",
          16: "B", 17: "H", 18: "I"}  # fmt: skip
_CELL, _STRUCT, _CHAR = 1, 2, 4
_NUMERIC = range(6, 16)
_MAX_DEPTH = 8


class _Bad(ValueError):
    pass


def _tag(data, pos, order):
    if pos + 8 > len(data):
        raise _Bad(f"a data element at byte {pos} is cut short")
    first, second = struct.unpack_from(order + "II", data, pos)
    if first >> 16:  # the small data element format: type, size and 4 bytes of data in 8
        size = first >> 16
        if size > 4:
            raise _Bad(f"a small data element at byte {pos} claims {size} bytes")
        return first & 0xFFFF, pos + 4, size, pos + 8
    end = pos + 8 + second
    if end > len(data):
        raise _Bad(f"a data element at byte {pos} claims {second:,} bytes past the end")
    return first, pos + 8, second, end + (-second % 8)


def _values(data, pos, order):
    kind, start, size, end = _tag(data, pos, order)
    if kind not in _TYPES:
        raise _Bad(f"data type {kind} at byte {pos} is not a number or text type")
    code = _TYPES[kind]
    count = size // struct.calcsize(code)
    return kind, list(struct.unpack_from(f"{order}{count}{code}", data, start)), end


def _matrix(data, pos, order, depth):
    """`(name, value)` of the miMATRIX content that starts at `pos`."""
    if depth > _MAX_DEPTH:
        raise _Bad(f"arrays nest more than {_MAX_DEPTH} deep")
    _, flags, pos = _values(data, pos, order)
    _, dims, pos = _values(data, pos, order)
    _, name, pos = _values(data, pos, order)
    kind, count = flags[0] & 0xFF, 1
    for d in dims:
        count *= d
    if not 0 <= count <= 8 * MAX_VAL_IMAGES:
        raise _Bad(f"an array of {count:,} elements")
    name = bytes(name).decode("ascii", "replace")
    if kind == _CHAR:
        dtype, codes, _ = _values(data, pos, order)
        return name, bytes(codes).decode() if dtype == 16 else "".join(map(chr, codes))
    if kind in _NUMERIC:
        return name, _values(data, pos, order)[1]
    if kind == _CELL:
        return name, [_element(data, p, order, depth) for p in _positions(data, pos, order, count)]
    if kind != _STRUCT:
        raise _Bad(f"array class {kind} is not numeric, char, cell or struct")
    _, (length,), pos = _values(data, pos, order)
    _, chars, pos = _values(data, pos, order)
    if length <= 0 or len(chars) % length or len(chars) // length > 64:
        raise _Bad("a struct's field names are malformed")
    fields = [bytes(chars[i : i + length]).split(b"\0")[0].decode("ascii", "replace")
              for i in range(0, len(chars), length)]  # fmt: skip
    starts = _positions(data, pos, order, count * len(fields))
    items = [_element(data, p, order, depth) for p in starts]
    n = len(fields)
    return name, [dict(zip(fields, items[i : i + n], strict=True)) for i in range(0, len(items), n)]


def _positions(data, pos, order, count):
    """The start of each of `count` consecutive miMATRIX elements from `pos`."""
    out = []
    for _ in range(count):
        out.append(pos)
        pos = _tag(data, pos, order)[3]
    return out


def _element(data, pos, order, depth):
    kind, start, size, _ = _tag(data, pos, order)
    if kind != _MATRIX:
        raise _Bad(f"an array element at byte {pos} has data type {kind}")
    # A memoryview slice bounds the element without copying the file.
    return _matrix(data[: start + size], start, order, depth + 1)[1] if size else []


def _inflate(body, budget):
    inflate = zlib.decompressobj()
    out = inflate.decompress(body, budget + 1)
    if len(out) > budget or inflate.unconsumed_tail:
        raise _Bad(f"decompresses past {MAX_LABEL_FILE_BYTES:,} bytes")
    return out


def read_mat(path):
    """`{name: value}` of a MATLAB 5 file: numbers as lists, text as str, structs as dicts.

    Raises:
        ValueError: one line naming `path`, for anything that is not such a file.
    """
    data = read_bounded(path, "a MATLAB 5 .mat file", MAX_LABEL_FILE_BYTES)
    if len(data) < 128 or data[126:128] not in (b"IM", b"MI") or data[:6] != b"MATLAB":
        raise ValueError(f"{path}: not a MATLAB 5 .mat file (e.g. the devkit's meta.mat)")
    order = "<" if data[126:128] == b"IM" else ">"
    out, pos, budget = {}, 128, MAX_LABEL_FILE_BYTES
    try:
        while pos < len(data):
            kind, start, size, end = _tag(data, pos, order)
            body = memoryview(data)[start : start + size]
            if kind == _COMPRESSED:  # no padding after a compressed element
                end, raw = start + size, _inflate(body, budget)
                budget -= len(raw)
                kind, start, size, _ = _tag(raw, 0, order)
                body = memoryview(raw)[start : start + size]
            if kind == _MATRIX and len(body):
                name, value = _matrix(body, 0, order, 0)
                out[name] = value
            pos = end
    except (_Bad, struct.error, zlib.error, UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"{path}: not a readable MATLAB 5 file ({e})") from None
    return out


def read_synsets(path):
    """`[(ILSVRC2012_ID, wnid)]` of the devkit's `meta.mat`, for the IDs 1..1000.

    Raises:
        ValueError: one line naming `path`: no `synsets`, or not this shape.
    """
    synsets = read_mat(path).get("synsets")
    if not isinstance(synsets, list) or not all(isinstance(s, dict) for s in synsets):
        raise ValueError(f"{path}: holds no `synsets` struct array (the devkit's meta.mat does)")
    pairs = []
    for s in synsets:
        ilsvrc_id, wnid = s.get("ILSVRC2012_ID"), s.get("WNID")
        if not (isinstance(ilsvrc_id, list) and len(ilsvrc_id) == 1 and isinstance(wnid, str)):
            raise ValueError(f"{path}: a synset lacks a scalar ILSVRC2012_ID or a WNID string")
        if 1 <= ilsvrc_id[0] <= 1000:  # the higher IDs are the hierarchy's inner nodes
            pairs.append((int(ilsvrc_id[0]), wnid))
    return pairs

"""Caffe `.caffemodel`: a binary protobuf `NetParameter`, read without Caffe or protobuf.

The decoder knows the protobuf wire format (varint, 64-bit, length-delimited,
32-bit) and the few caffe.proto fields AlexNet-family files use (formats.md
§7); everything else is skipped. The file is read once into one buffer and
blob data become numpy views of it: a packed float blob costs no copy.
Both layer forms are read: `layer` (field 100, string types such as
"Convolution", files since 2015) and the older `layers` (field 2,
`V1LayerParameter` with enum types such as CONVOLUTION).
"""

import math
import struct

import numpy as np

from alexnet_keras import limits
from alexnet_keras.caffe.params import (
    SCHEMAS,
    V1_TYPES,
    layer_kind,
    layer_params,
)
from alexnet_keras.caffe.source import SourceLayer, SourceNet
from alexnet_keras.files import existing_file

__all__ = ["read_caffemodel"]

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5

# The two layer messages: field numbers of their common parts and parameter messages.
_NEW = {
    "name": 1, "type": 2, "bottom": 3, "top": 4, "blobs": 7,
    "params": {106: "convolution_param", 108: "dropout_param", 117: "inner_product_param",
               118: "lrn_param", 121: "pooling_param", 143: "input_param"},
}  # fmt: skip
_V1 = {
    "name": 4, "type": 5, "bottom": 2, "top": 3, "blobs": 6,
    "params": {10: "convolution_param", 12: "dropout_param", 17: "inner_product_param",
               18: "lrn_param", 19: "pooling_param"},
}  # fmt: skip
_V0_LAYER = 1  # V1LayerParameter.layer: a whole V0LayerParameter (Caffe of 2013)

# BlobProto: unpacked floats are runs of one-byte tags, each followed by the value.
_DATA, _DOUBLE_DATA, _SHAPE = 5, 8, 7
_DATA_TAG, _DOUBLE_TAG = (_DATA << 3) | _I32, (_DOUBLE_DATA << 3) | _I64
_LEGACY_DIMS = {1: "num", 2: "channels", 3: "height", 4: "width"}
_INT_MAX = 2**31 - 1


class _Corrupt(ValueError):
    """A decoding error; `read_caffemodel` prefixes the file name, as for every ValueError."""


def _truncated(what, pos):
    return _Corrupt(f"truncated or not a .caffemodel ({what} runs past the end at byte {pos})")


def _varint(buf, pos, end):
    result = shift = 0
    while pos < end:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise _Corrupt(f"not a Caffe .caffemodel (a varint longer than 10 bytes at byte {pos})")
    raise _truncated("a varint", pos)


def _signed(value):
    return value - (1 << 64) if value >= 1 << 63 else value


def _field(buf, pos, end):
    """One field at `pos`: `(number, wire type, value, next pos)`.

    The value is an int for varints, and the byte offset for fixed-size and
    `(start, stop)` for length-delimited fields.
    """
    tag, pos = _varint(buf, pos, end)
    number, wire = tag >> 3, tag & 7
    if number == 0 or wire not in (_VARINT, _I64, _LEN, _I32):
        raise _Corrupt(
            f"not a Caffe .caffemodel (field {number} with wire type {wire} at byte {pos - 1})"
        )
    if wire == _VARINT:
        value, pos = _varint(buf, pos, end)
        return number, wire, value, pos
    if wire == _LEN:
        size, pos = _varint(buf, pos, end)
        value, stop = (pos, pos + size), pos + size
    else:
        value, stop = pos, pos + (8 if wire == _I64 else 4)
    if stop > end:
        raise _truncated(f"field {number}", end)
    return number, wire, value, stop


def _fields(buf, start, end):
    pos = start
    while pos < end:
        number, wire, value, pos = _field(buf, pos, end)
        yield number, wire, value


def _text(buf, value, wire, what):
    if wire != _LEN:
        raise _Corrupt(f"not a Caffe .caffemodel ({what} has wire type {wire}, expected 2)")
    return bytes(buf[value[0] : value[1]]).decode("utf-8", errors="replace")


def _packed_varints(buf, start, end, limit=limits.MAX_CAFFE_REPEATED):
    values = []
    while start < end:
        value, start = _varint(buf, start, end)
        values.append(value)
        _at_most(len(values), limit, "values in one repeated field", start)
    return values


def _at_most(count, limit, what, pos):
    # Checked as items are added, so a hostile count never allocates more than the limit.
    if count > limit:
        raise _Corrupt(f"not a Caffe .caffemodel (more than {limit:,} {what} at byte {pos})")


def _f32(buf, offset):
    # The shortest decimal that is this float32, so alpha reads 0.0001 as in the prototxt.
    return float(str(np.float32(struct.unpack_from("<f", buf, offset)[0])))


def _message(buf, start, end, schema):
    """A parameter message as `{field name: [values]}` (see `caffe_params.SCHEMAS`)."""
    raw = {}
    for number, wire, value in _fields(buf, start, end):
        if number not in schema:
            continue
        name, kind = schema[number]
        if kind == "shape" and wire == _LEN:
            values = [{"dim": _dims(buf, *value)}]
        elif kind == "float" and wire == _I32:
            values = [_f32(buf, value)]
        elif kind not in ("float", "shape") and wire == _VARINT:
            values = [value]
        elif kind not in ("float", "shape") and wire == _LEN:
            values = _packed_varints(buf, *value)
        else:
            raise _Corrupt(f"not a Caffe .caffemodel ({name} has wire type {wire})")
        raw.setdefault(name, []).extend(values)
        _at_most(len(raw[name]), limits.MAX_CAFFE_REPEATED, f"values of {name}", start)
    return raw


def _dims(buf, start, end):
    """`BlobShape.dim`, packed or not."""
    dims = []
    for number, wire, value in _fields(buf, start, end):
        if number == 1 and wire == _LEN:
            dims += [_signed(v) for v in _packed_varints(buf, *value, limits.MAX_ARRAY_DIMS)]
        elif number == 1 and wire == _VARINT:
            dims.append(_signed(value))
        _at_most(len(dims), limits.MAX_ARRAY_DIMS, "dimensions in a blob shape", start)
    return dims


def _run(buf, pos, end, tag, dtype):
    """The values of consecutive unpacked fields `tag value tag value ...` from `pos`.

    A strided view of the buffer; blocks double in size so a long run costs
    O(n) numpy work and a short one little.
    """
    step = 1 + np.dtype(dtype).itemsize
    count, block = 0, 256
    while True:
        k = min(block, (end - pos) // step - count)
        if k <= 0:
            break
        tags = np.frombuffer(buf, np.uint8, count=k * step, offset=pos + count * step)[::step]
        other = np.flatnonzero(tags != tag)
        if other.size:
            count += int(other[0])
            break
        count, block = count + k, block * 2
    values = np.ndarray((count,), dtype, buffer=buf, offset=pos + 1, strides=(step,))
    return values, pos + count * step


def _blob(buf, start, end, where):
    shape, legacy, chunks = None, {}, {_DATA: [], _DOUBLE_DATA: []}
    pos = start
    while pos < end:
        number, wire, value, stop = _field(buf, pos, end)
        if number == _SHAPE and wire == _LEN:
            shape = (shape or []) + _dims(buf, *value)  # proto2 merges repeated messages
        elif number in chunks and wire == _LEN:
            dtype = "<f4" if number == _DATA else "<f8"
            size = np.dtype(dtype).itemsize
            if (value[1] - value[0]) % size:
                raise _Corrupt(f"{where} has a {value[1] - value[0]}-byte data field")
            chunks[number].append(
                np.frombuffer(buf, dtype, (value[1] - value[0]) // size, value[0])
            )
        elif (number, wire) in ((_DATA, _I32), (_DOUBLE_DATA, _I64)):
            tag, dtype = (_DATA_TAG, "<f4") if number == _DATA else (_DOUBLE_TAG, "<f8")
            values, run_stop = _run(buf, pos, end, tag, dtype)
            if not len(values):  # a tag spelt with a padded varint: not a run, one value
                values = np.frombuffer(buf, dtype, 1, value)
            chunks[number].append(values)
            stop = max(stop, run_stop)
        elif number in chunks:
            raise _Corrupt(f"not a Caffe .caffemodel ({where} data has wire type {wire})")
        elif number in _LEGACY_DIMS and wire == _VARINT:
            legacy[number] = _signed(value)
        pos = stop
    is_legacy = shape is None and bool(legacy)
    if shape is None:
        # Caffe's own rule: any legacy dim makes the shape 4-D, missing ones are 0.
        shape = [legacy.get(n, 0) for n in _LEGACY_DIMS] if legacy else []
    return _values(shape, chunks, where), is_legacy


def _values(shape, chunks, where):
    shape = tuple(shape)
    if any(d < 0 for d in shape):
        raise _Corrupt(f"{where} has a negative dimension in its shape {shape}")
    if len(shape) > limits.MAX_ARRAY_DIMS:
        raise _Corrupt(f"{where} has {len(shape)} dimensions; Caffe allows {limits.MAX_ARRAY_DIMS}")
    count = math.prod(shape)  # exact: a hostile shape must not wrap around to match
    if max(shape, default=0) > _INT_MAX or count > _INT_MAX:
        # Caffe's Blob::Reshape checks count <= INT_MAX; numpy would refuse past its own limit.
        raise _Corrupt(f"{where} has shape {shape}, more than a Caffe blob holds ({_INT_MAX:,})")
    floats, doubles = chunks[_DATA], chunks[_DOUBLE_DATA]
    n_floats, n_doubles = sum(map(len, floats)), sum(map(len, doubles))
    if n_floats and n_doubles:
        raise _Corrupt(f"{where} has both data ({n_floats}) and double_data ({n_doubles})")
    parts, unit = (doubles, "doubles") if n_doubles else (floats, "floats")
    received = n_doubles or n_floats
    if received != count:
        if received == 0:
            raise _Corrupt(f"{where} has shape {shape} = {count} values but no data")
        raise _Corrupt(f"{where} has shape {shape} = {count} values. Received: {received} {unit}")
    if not parts:
        return np.zeros(shape, np.float32)
    if len(parts) == 1 and parts[0].flags.c_contiguous:
        return parts[0].reshape(shape)
    return np.concatenate(parts).reshape(shape)


def _layer(buf, start, end, form, index):
    name, source_type, lists, messages, blobs = f"#{index}", "", {"bottom": [], "top": []}, {}, []
    for number, wire, value in _fields(buf, start, end):
        if number == form["name"]:
            name = _text(buf, value, wire, "a layer name")
        elif number == form["type"] and form is _V1:
            if wire != _VARINT:
                raise _Corrupt(f"not a Caffe .caffemodel (layer type has wire type {wire})")
            source_type = V1_TYPES.get(value, str(value))
        elif number == form["type"]:
            source_type = _text(buf, value, wire, "a layer type")
        elif number in (form["bottom"], form["top"]):
            key = "bottom" if number == form["bottom"] else "top"
            lists[key].append(_text(buf, value, wire, f"a layer {key}"))
            _at_most(len(lists[key]), limits.MAX_CAFFE_REPEATED, f"{key}s", value[1])
        elif number == form["blobs"] and wire == _LEN:
            blobs.append(value)
            _at_most(len(blobs), limits.MAX_CAFFE_REPEATED, "blobs", value[1])
        elif number in form["params"] and wire == _LEN:
            message = form["params"][number]
            for key, values in _message(buf, *value, SCHEMAS[message]).items():
                messages.setdefault(message, {}).setdefault(key, []).extend(values)
        elif number == _V0_LAYER and form is _V1 and wire == _LEN:
            raise _Corrupt(
                f"layer {index} is in Caffe's V0 layer format (2013), which this reader "
                "does not read; upgrade the file with Caffe's upgrade_net_proto_binary"
            )
    arrays, legacy = [], False
    for i, (b_start, b_end) in enumerate(blobs):
        array, is_legacy = _blob(buf, b_start, b_end, f"layer '{name}' blob {i}")
        arrays.append(array)
        legacy |= is_legacy
    kind = layer_kind(source_type)
    params = {**layer_params(name, kind, messages), **lists}
    values = sum(map(len, lists.values())) + len(blobs)
    values += sum(len(v) for message in messages.values() for v in message.values())
    return SourceLayer(name, kind, arrays, params, source_type), legacy, values


def _net(buf):
    net_name, layers, notes, forms = None, [], [], set()
    legacy, values = False, 0
    for number, wire, value in _fields(buf, 0, len(buf)):
        if number == 1 and wire == _LEN:
            net_name = _text(buf, value, wire, "the net name")
        elif number in (100, 2) and wire == _LEN:
            form = _NEW if number == 100 else _V1
            forms.add(number)
            _at_most(len(layers) + 1, limits.MAX_CAFFE_LAYERS, "layers", value[0])
            layer, is_legacy, count = _layer(buf, *value, form, len(layers))
            values += count
            _at_most(values, limits.MAX_CAFFE_VALUES, "names and parameter values", value[1])
            layers.append(layer)
            legacy |= is_legacy
    if not layers:
        raise _Corrupt("not a Caffe .caffemodel (no layers in the NetParameter)")
    if forms == {2}:
        notes.append("V1 file: layers with enum types (Caffe before 2015)")
    if legacy:
        notes.append("blobs carry legacy 4-D shapes (num, channels, height, width)")
    if any(a.dtype == np.float64 for layer in layers for a in layer.arrays):
        notes.append("blobs are stored as double_data (float64)")
    return net_name, layers, notes


def read_caffemodel(path):
    """Reads a Caffe `.caffemodel` into a `SourceNet` (layout "caffe").

    Layers come in file order with their blobs as stored (conv `(out,
    in/group, kh, kw)`, fc `(out, in)`, legacy 4-D shapes kept as given;
    float32, or float64 for `double_data`), their `source_type` as the file
    spells it ("Convolution" or "CONVOLUTION"), and `params` as
    `caffe_params.layer_params` normalises them plus `bottom` and `top`
    lists. Blob arrays are writable views of one buffer holding the file.

    Example:

    >>> net = read_caffemodel("bvlc_alexnet.caffemodel")  # doctest: +SKIP
    >>> net.layer("conv2").params["group"], net.layer("conv2").arrays[0].shape  # doctest: +SKIP
    (2, (256, 48, 5, 5))

    Raises:
        ValueError: one line naming the file: missing, a directory, empty,
            truncated, not a protobuf `NetParameter` with layers, or a blob
            whose data disagree with its shape.
    """
    path = existing_file(path, "a .caffemodel file")
    buf = bytearray(path.stat().st_size)
    with open(path, "rb") as f:
        n = f.readinto(buf)
    if n != len(buf):
        raise ValueError(f"{path}: the file changed while it was read")
    try:
        net_name, layers, notes = _net(memoryview(buf))
    except ValueError as e:  # _Corrupt, or a bad parameter from layer_params
        raise ValueError(f"{path}: {e}") from None
    return SourceNet(str(path), "caffemodel", "caffe", layers, net_name, notes)

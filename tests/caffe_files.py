"""Writes real-format Caffe files for tests: `.caffemodel` (binary protobuf) and `.prototxt`.

Written from caffe.proto's field numbers with plain `struct` and bytes, and
independent of the package's readers, so a reader bug cannot cancel a writer
bug. Layers are dicts in Caffe's own spelling:

    {"name": "conv2", "type": "Convolution", "bottom": ["norm1"], "top": ["conv2"],
     "blobs": [W, b], "params": {"num_output": 256, "pad": 2, "kernel_size": 5, "group": 2}}

A blob is an array, or `(shape, flat values)` to write a shape that
disagrees with its data.
"""

import struct

import numpy as np

# Caffe type -> (V1LayerParameter.LayerType, parameter message, its field in LayerParameter,
# its field in V1LayerParameter).
TYPES = {
    "Data": (5, None, None, None),
    "Input": (None, "input_param", 143, None),
    "Convolution": (4, "convolution_param", 106, 10),
    "ReLU": (18, None, None, None),
    "LRN": (15, "lrn_param", 118, 18),
    "Pooling": (17, "pooling_param", 121, 19),
    "InnerProduct": (14, "inner_product_param", 117, 17),
    "Dropout": (6, "dropout_param", 108, 12),
    "Softmax": (20, None, None, None),
    "SoftmaxWithLoss": (21, None, None, None),
    "Accuracy": (1, None, None, None),
}
V1_NAMES = {
    "Data": "DATA", "Convolution": "CONVOLUTION", "ReLU": "RELU", "LRN": "LRN",
    "Pooling": "POOLING", "InnerProduct": "INNER_PRODUCT", "Dropout": "DROPOUT",
    "Softmax": "SOFTMAX", "SoftmaxWithLoss": "SOFTMAX_LOSS", "Accuracy": "ACCURACY",
}  # fmt: skip
# Parameter name -> (field number, "varint" | "float" | "enum").
PARAM_FIELDS = {
    "convolution_param": {
        "num_output": (1, "varint"), "bias_term": (2, "varint"), "pad": (3, "varint"),
        "kernel_size": (4, "varint"), "group": (5, "varint"), "stride": (6, "varint"),
        "pad_h": (9, "varint"), "pad_w": (10, "varint"), "kernel_h": (11, "varint"),
        "kernel_w": (12, "varint"), "stride_h": (13, "varint"), "stride_w": (14, "varint"),
    },
    "lrn_param": {
        "local_size": (1, "varint"), "alpha": (2, "float"), "beta": (3, "float"),
        "norm_region": (4, "enum"), "k": (5, "float"),
    },
    "pooling_param": {
        "pool": (1, "enum"), "kernel_size": (2, "varint"), "stride": (3, "varint"),
        "pad": (4, "varint"),
    },
    "inner_product_param": {"num_output": (1, "varint"), "bias_term": (2, "varint")},
    "dropout_param": {"dropout_ratio": (1, "float")},
}  # fmt: skip
ENUMS = {"MAX": 0, "AVE": 1, "STOCHASTIC": 2, "ACROSS_CHANNELS": 0, "WITHIN_CHANNEL": 1}


def varint(n):
    n &= (1 << 64) - 1  # negative int64: ten bytes of two's complement
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def key(field, wire):
    return varint(field << 3 | wire)


def length_delimited(field, payload):
    return key(field, 2) + varint(len(payload)) + payload


def _scalar(field, kind, value):
    if kind == "float":
        return key(field, 5) + struct.pack("<f", value)
    if kind == "enum" and isinstance(value, str):
        value = ENUMS[value]
    return key(field, 0) + varint(int(value))


def param_message(message, params):
    if message == "input_param":
        return length_delimited(1, _shape(params["shape"], packed=True))
    out = b""
    for name, value in params.items():
        field, kind = PARAM_FIELDS[message][name]
        for v in value if isinstance(value, (list, tuple)) else [value]:
            out += _scalar(field, kind, v)
    return out


def _shape(dims, packed):
    if packed:
        return length_delimited(1, b"".join(varint(d) for d in dims))
    return b"".join(key(1, 0) + varint(d) for d in dims)


def _unpacked(field, wire, values):
    """One tag per value: a (n, 1 + size) byte table built without a Python loop."""
    raw = values.view(np.uint8).reshape(len(values), values.itemsize)
    table = np.empty((len(values), 1 + values.itemsize), np.uint8)
    table[:, 0] = field << 3 | wire
    table[:, 1:] = raw
    return table.tobytes()


def _in_field_order(fields):
    """Joins `(field number, bytes)` pairs as protobuf's C++ writer orders them: by number."""
    return b"".join(data for _, data in sorted(fields, key=lambda f: f[0]))


def blob(array, *, packed=True, legacy_shape=False, double=False):
    """A BlobProto; Caffe's order puts the data (5) before the shape (7)."""
    if isinstance(array, tuple):
        shape, flat = array
        flat = np.asarray(flat).ravel()
    else:
        shape, flat = array.shape, np.asarray(array).ravel()
    if legacy_shape:
        dims = (1,) * (4 - len(shape)) + tuple(shape)  # (out, in) -> (1, 1, out, in)
        fields = [(f, key(f, 0) + varint(d)) for f, d in zip((1, 2, 3, 4), dims, strict=True)]
    else:
        fields = [(7, length_delimited(7, _shape(shape, packed)))]
    field, wire, dtype = (8, 1, "<f8") if double else (5, 5, "<f4")
    values = flat.astype(dtype)
    if packed:
        fields.append((field, length_delimited(field, values.tobytes())))
    else:
        fields.append((field, _unpacked(field, wire, values)))
    return _in_field_order(fields)


def layer_bytes(layer, *, v1=False, **blob_options):
    v1_type, message, new_field, v1_field = TYPES[layer["type"]]
    name, kind, bottom, top, blobs = (4, 5, 2, 3, 6) if v1 else (1, 2, 3, 4, 7)
    fields = [(name, length_delimited(name, layer["name"].encode()))]
    if v1:
        fields.append((kind, key(kind, 0) + varint(v1_type)))
    else:
        fields.append((kind, length_delimited(kind, layer["type"].encode())))
    fields += [(bottom, length_delimited(bottom, b.encode())) for b in layer.get("bottom", [])]
    fields += [(top, length_delimited(top, t.encode())) for t in layer.get("top", [])]
    for array in layer.get("blobs", []):
        fields.append((blobs, length_delimited(blobs, blob(array, **blob_options))))
    if layer.get("params"):
        number = v1_field if v1 else new_field
        fields.append((number, length_delimited(number, param_message(message, layer["params"]))))
    return _in_field_order(fields)


def caffemodel_bytes(layers, *, v1=False, net_name="AlexNet", **blob_options):
    """The bytes of a `NetParameter`; each layer is one field, so cutting between them is valid."""
    head = length_delimited(1, net_name.encode()) if net_name else b""
    field = 2 if v1 else 100
    return head + b"".join(
        length_delimited(field, layer_bytes(layer, v1=v1, **blob_options)) for layer in layers
    )


def write_caffemodel(
    path, layers, *, v1=False, packed=True, legacy_shape=False, double=False, net_name="AlexNet"
):
    """Writes `layers` as a `.caffemodel`: `layer` (field 100), or V1 `layers` (field 2).

    `packed=False` writes every float and dim with its own tag; `legacy_shape`
    writes num/channels/height/width instead of a BlobShape; `double` writes
    `double_data`.
    """
    data = caffemodel_bytes(
        layers, v1=v1, net_name=net_name, packed=packed, legacy_shape=legacy_shape, double=double
    )
    with open(path, "wb") as f:
        f.write(data)
    return path


def _block(kind, name, **fields):
    return {"name": name, "type": kind, **fields}


def alexnet_layers(params, caffenet=False):
    """BVLC AlexNet (models/bvlc_alexnet/deploy.prototxt) after a Data layer, as layer dicts.

    Args:
        params: `{"conv1": [W, b], ..., "fc8": [W, b]}` in Caffe layout, or
            None for layers without blobs (a prototxt).
        caffenet: bvlc_reference_caffenet's order, pool before norm in blocks 1 and 2.
    """
    params = params or {}
    classes = params["fc8"][0].shape[0] if "fc8" in params else 1000

    def weighted(kind, name, bottom, **p):
        return _block(kind, name, bottom=[bottom], top=[name], blobs=params.get(name, []), params=p)

    def simple(kind, name, bottom, top=None, **p):
        return _block(kind, name, bottom=[bottom], top=[top or name], params=p)

    lrn = {"local_size": 5, "alpha": 0.0001, "beta": 0.75}
    pool = {"pool": "MAX", "kernel_size": 3, "stride": 2}
    layers = [_block("Data", "data", top=["data"])]
    last = "data"
    for i, conv in enumerate(
        [
            {"num_output": 96, "kernel_size": 11, "stride": 4},
            {"num_output": 256, "pad": 2, "kernel_size": 5, "group": 2},
        ],
        start=1,
    ):
        layers += [
            weighted("Convolution", f"conv{i}", last, **conv),
            simple("ReLU", f"relu{i}", f"conv{i}", f"conv{i}"),
        ]
        first, second = ("pool", "norm") if caffenet else ("norm", "pool")
        kinds = {"norm": ("LRN", lrn), "pool": ("Pooling", pool)}
        prev = f"conv{i}"
        for stage in (first, second):
            kind, p = kinds[stage]
            layers.append(simple(kind, f"{stage}{i}", prev, **p))
            prev = f"{stage}{i}"
        last = prev
    for i, conv in [(3, {}), (4, {"group": 2}), (5, {"group": 2})]:
        out = 256 if i == 5 else 384
        layers += [
            weighted("Convolution", f"conv{i}", last, num_output=out, pad=1, kernel_size=3, **conv),
            simple("ReLU", f"relu{i}", f"conv{i}", f"conv{i}"),
        ]
        last = f"conv{i}"
    layers.append(simple("Pooling", "pool5", "conv5", **pool))
    last = "pool5"
    for i in (6, 7):
        layers += [
            weighted("InnerProduct", f"fc{i}", last, num_output=4096),
            simple("ReLU", f"relu{i}", f"fc{i}", f"fc{i}"),
            simple("Dropout", f"drop{i}", f"fc{i}", f"fc{i}", dropout_ratio=0.5),
        ]
        last = f"fc{i}"
    layers += [
        weighted("InnerProduct", "fc8", "fc7", num_output=classes),
        simple("Softmax", "prob", "fc8"),
    ]
    return layers


def _text_value(name, value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value in ENUMS else '"' + value.replace('"', '\\"') + '"'
    return repr(value)


def write_prototxt(path, layers, input_shape=(10, 3, 227, 227), *, v1=False, input_style="shape"):
    """Writes the text format of `layers` as a deploy file: Data layers are left out.

    Args:
        input_shape: the net input; None writes none.
        v1: `layers { type: CONVOLUTION }` blocks instead of `layer { type: "Convolution" }`.
        input_style: "shape" (`input: "data"` and `input_shape { dim }`),
            "dim" (`input_dim` x4) or "layer" (an Input layer with `input_param`).
    """
    lines = ["# written by tests/caffe_files.py", 'name: "AlexNet"']
    body = [layer for layer in layers if layer["type"] != "Data"]
    if input_shape is not None and input_style == "layer":
        body.insert(0, {"name": "data", "type": "Input", "top": ["data"],
                        "params": {"shape": input_shape}})  # fmt: skip
    elif input_shape is not None:
        lines.append('input: "data"')
        if input_style == "dim":
            lines += [f"input_dim: {d}" for d in input_shape]
        else:
            lines.append("input_shape { " + " ".join(f"dim: {d}" for d in input_shape) + " }")
    for layer in body:
        lines.append("layers {" if v1 else "layer {")
        lines.append(f'  name: "{layer["name"]}"')
        kind = layer["type"]
        lines.append(f"  type: {V1_NAMES[kind]}" if v1 else f'  type: "{kind}"')
        lines += [f'  bottom: "{b}"' for b in layer.get("bottom", [])]
        lines += [f'  top: "{t}"' for t in layer.get("top", [])]
        message = TYPES[kind][1]
        if layer.get("params") and message == "input_param":
            dims = " ".join(f"dim: {d}" for d in layer["params"]["shape"])
            lines.append(f"  input_param {{ shape: {{ {dims} }} }}")
        elif layer.get("params"):
            lines.append(f"  {message} {{")
            for name, value in layer["params"].items():
                for v in value if isinstance(value, (list, tuple)) else [value]:
                    lines.append(f"    {name}: {_text_value(name, v)}")
            lines.append("  }")
        lines.append("}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path

"""Caffe `.prototxt` (protobuf text format): parsed without Caffe, checked against a `.caffemodel`.

A `deploy.prototxt` or `train_val.prototxt` describes the net a `.caffemodel`
was trained as. `read_prototxt` parses it into layers normalised exactly as
`read_caffemodel` normalises the binary file (one table, `caffe_params`), and
`check_against` says where the two disagree: a different group, LRN constant
or layer order (CaffeNet pools before it normalises) is a different network.
"""

import dataclasses
import math
import pathlib
import re

from alexnet_keras import limits
from alexnet_keras.caffe.params import (
    MESSAGES,
    V1_TYPES,
    layer_kind,
    layer_params,
)
from alexnet_keras.files import read_bounded

__all__ = ["PrototxtNet", "check_against", "read_prototxt"]


@dataclasses.dataclass
class PrototxtNet:
    """A parsed `.prototxt`.

    Attributes:
        path: the file read.
        layers: one dict per layer in file order: `{"name", "type"
            (normalised, as `SourceLayer.type`), "source_type", "params"}`,
            params as `caffe_params.layer_params` plus `bottom` and `top`.
        input_shape: from `input_shape { dim }`, `input_dim` or an Input
            layer's `input_param { shape { dim } }`, else None.
        name: the net's `name`, if any.
    """

    path: str
    layers: list
    input_shape: tuple | None = None
    name: str | None = None

    def layer(self, name):
        for layer in self.layers:
            if layer["name"] == name:
                return layer
        return None


_TOKEN = re.compile(
    r"""(?P<newline>\n)|(?P<space>[ \t\r\f\v]+)|(?P<comment>\#[^\n]*)
    |(?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
    |(?P<number>[-+]?(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)[fF]?
        |[-+](?i:inf(?:inity)?|nan)\b)
    |(?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<punct>[{}<>:\[\],;])
    |(?P<bad>.)""",
    re.VERBOSE,
)
_ESCAPE = re.compile(r"\\(?:([0-7]{1,3})|x([0-9a-fA-F]{1,2})|(.))", re.DOTALL)
_SIMPLE_ESCAPES = {"n": 10, "t": 9, "r": 13, "a": 7, "b": 8, "f": 12, "v": 11}
_CLOSE = {"{": "}", "<": ">"}
_BOOLS = {"true": True, "True": True, "false": False, "False": False}


def _unescape(body):
    """A quoted string's body: C escapes, octal and hex bytes, UTF-8."""
    out, pos = bytearray(), 0
    for m in _ESCAPE.finditer(body):
        out += body[pos : m.start()].encode("utf-8")
        octal, hexa, char = m.groups()
        if octal or hexa:
            out.append(int(octal, 8) & 0xFF if octal else int(hexa, 16))
        else:
            out += bytes([_SIMPLE_ESCAPES[char]]) if char in _SIMPLE_ESCAPES else char.encode()
        pos = m.end()
    out += body[pos:].encode("utf-8")
    return out.decode("utf-8", errors="replace")


def _number(text):
    if re.fullmatch(r"[-+]?0[xX][0-9a-fA-F]+", text):
        return int(text, 16)
    if re.fullmatch(r"[-+]?\d+", text):
        return int(text, 10)
    return float(text.rstrip("fF"))


def _tokens(text, where):
    tokens, line = [], 1
    for m in _TOKEN.finditer(text):
        kind, value = m.lastgroup, m.group()
        if kind == "newline":
            line += 1
        elif kind == "bad":
            what = "unterminated string" if value in "\"'" else f"unexpected character {value!r}"
            raise ValueError(f"{where}:{line}: {what}")
        elif kind == "string":
            tokens.append(("string", _unescape(value[1:-1]), value, line))
        elif kind == "number":
            tokens.append(("number", _number(value), value, line))
        elif kind in ("ident", "punct"):
            tokens.append((kind, value, value, line))
    tokens.append(("eof", None, "end of file", line))
    return tokens


class _Block(dict):
    """One `{ ... }` message: `{field name: [values]}`, and the line that opened it."""

    def __init__(self, line):
        super().__init__()
        self.line = line


class _Parser:
    def __init__(self, text, where):
        self.tokens = _tokens(text, where)
        self.pos = 0
        self.where = where

    def error(self, token, expected):
        received = token[2] if token[0] == "eof" else repr(token[2])
        raise ValueError(f"{self.where}:{token[3]}: {expected}. Received: {received}")

    def next(self):
        token = self.tokens[self.pos]
        self.pos += token[0] != "eof"
        return token

    def peek(self):
        return self.tokens[self.pos]

    def block(self, line, close, depth=0):
        block = _Block(line)
        while True:
            token = self.next()
            if token[0] == "punct" and token[1] == close:
                return block
            if token[0] == "eof":
                if close is None:
                    return block
                self.error(token, f"expected '{close}' to close the block opened at line {line}")
            if token[0] != "ident":
                self.error(token, "expected a field name")
            name, sep = token[1], self.peek()
            if sep[1] == ":" and sep[0] == "punct":
                self.next()
            if self.peek()[0] == "punct" and self.peek()[1] in _CLOSE:
                opener = self.next()
                if depth >= limits.MAX_PROTOTXT_DEPTH:
                    self.error(opener, f"blocks nested deeper than {limits.MAX_PROTOTXT_DEPTH}")
                values = [self.block(opener[3], _CLOSE[opener[1]], depth + 1)]
            elif sep[1] != ":" or sep[0] != "punct":
                self.error(sep, f"expected ':' or '{{' after '{name}'")
            else:
                values = self.values(name)
            block.setdefault(name, []).extend(values)
            if self.peek()[0] == "punct" and self.peek()[1] in ";,":
                self.next()

    def values(self, name):
        token = self.peek()
        if token[0] == "punct" and token[1] == "[":
            self.next()
            values = []
            while not (self.peek()[0] == "punct" and self.peek()[1] == "]"):
                values.append(self.scalar(name))
                if self.peek()[0] == "punct" and self.peek()[1] == ",":
                    self.next()
            self.next()
            return values
        return [self.scalar(name)]

    def scalar(self, name):
        token = self.next()
        if token[0] == "string":
            value = token[1]
            while self.peek()[0] == "string":  # adjacent strings concatenate, as in C
                value += self.next()[1]
            return value
        if token[0] == "number":
            return token[1]
        if token[0] == "ident":
            return _BOOLS.get(token[1], token[1])
        self.error(token, f"expected a value after '{name}:'")


def _last(block, key, default=None):
    values = block.get(key)
    return values[-1] if values else default


def _layer(block, where):
    source_type = _last(block, "type", "")
    if isinstance(source_type, int):  # `type: 4` in a V1 file
        source_type = V1_TYPES.get(source_type, str(source_type))
    name = _last(block, "name", "")
    kind = layer_kind(str(source_type))
    messages = {}
    for message in MESSAGES.values():
        for sub in block.get(message, []):
            if not isinstance(sub, dict):
                raise ValueError(f"{where}:{block.line}: layer '{name}': {message} must be a block")
            for key, values in sub.items():  # repeated blocks merge, as in protobuf
                messages.setdefault(message, {}).setdefault(key, []).extend(values)
    try:
        params = layer_params(name, kind, messages)
    except ValueError as e:
        raise ValueError(f"{where}:{block.line}: {e}") from None
    params["bottom"] = [str(v) for v in block.get("bottom", [])]
    params["top"] = [str(v) for v in block.get("top", [])]
    return {"name": str(name), "type": kind, "source_type": str(source_type), "params": params}


def _input_shape(top, layers):
    shape = _last(top, "input_shape")
    if isinstance(shape, dict):
        return tuple(shape.get("dim", []))
    if top.get("input_dim"):
        return tuple(top["input_dim"])
    for layer in layers:
        if layer["type"] == "data" and layer["params"].get("shape") is not None:
            return layer["params"]["shape"]
    return None


def read_prototxt(path):
    """Parses a Caffe `.prototxt` (`layer { }` or the older `layers { }` blocks).

    Example:

    >>> net = read_prototxt("models/bvlc_alexnet/deploy.prototxt")  # doctest: +SKIP
    >>> net.input_shape, net.layer("norm1")["params"]["alpha"]  # doctest: +SKIP
    ((10, 3, 227, 227), 0.0001)

    Returns:
        A `PrototxtNet`.

    Raises:
        ValueError: naming the file and line, e.g. `"deploy.prototxt:12:
            expected ':' or '{' after 'kernel_size'. Received: '}'"`; also a
            missing, empty or binary file, or one without layers.
    """
    path = pathlib.Path(path)
    data = read_bounded(path, "a .prototxt file", limits.MAX_CFG_BYTES)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text .prototxt (a binary .caffemodel?)") from None
    top = _Parser(text, path).block(1, None)
    blocks = top.get("layer", []) + top.get("layers", [])
    if top.get("layer") and top.get("layers"):
        raise ValueError(f"{path}: has both 'layer' and 'layers' blocks; Caffe reads one form")
    if not blocks:
        raise ValueError(f"{path}: no 'layer {{ }}' blocks, expected a Caffe .prototxt")
    for block in blocks:
        if not isinstance(block, dict):
            raise ValueError(f"{path}: 'layer' must be a block. Received: {block!r}")
    layers = [_layer(block, path) for block in blocks]
    name = _last(top, "name")
    return PrototxtNet(str(path), layers, _input_shape(top, layers), name and str(name))


# What must agree between a prototxt and a caffemodel, by kind.
_COMPARED = {
    "conv": ("num_output", "kernel_size", "stride", "pad", "dilation", "group", "bias_term"),
    "fc": ("num_output", "bias_term"),
    "lrn": ("local_size", "alpha", "beta", "norm_region", "k"),
    "pool": ("pool", "kernel_size", "stride", "pad", "global_pooling"),
}


def _same(a, b):
    if isinstance(a, float) or isinstance(b, float):
        # float32 in the binary file, decimal in the text: 1e-6 covers the rounding.
        return math.isclose(a, b, rel_tol=1e-6)
    return a == b


def check_against(prototxt_net, source_net):
    """Checks that a `.caffemodel` holds the network its `.prototxt` describes.

    Every conv, fc, lrn and pool layer of the prototxt must be in the
    caffemodel under the same name and type with the same hyper-parameters
    (`_COMPARED`), in the same relative order; a caffemodel layer with blobs
    that the prototxt lacks is an error too.

    Args:
        prototxt_net: from `read_prototxt`.
        source_net: from `read_caffemodel`.

    Raises:
        ValueError: the first disagreement, e.g. `"deploy.prototxt: layer
            'conv2' has group 1, but the caffemodel x.caffemodel has group 2"`.
    """
    pt, cm = prototxt_net.path, source_net.path
    checked = [layer for layer in prototxt_net.layers if layer["type"] in _COMPARED]
    for layer in checked:
        name, kind = layer["name"], layer["type"]
        other = source_net.layer(name)
        if other is None:
            raise ValueError(f"{pt}: layer '{name}' ({kind}) is not in the caffemodel {cm}")
        if other.type != kind:
            raise ValueError(
                f"{pt}: layer '{name}' has type {layer['source_type']}, but the caffemodel {cm} "
                f"has type {other.source_type}"
            )
        for key in _COMPARED[kind]:
            mine, theirs = layer["params"].get(key), other.params.get(key)
            if not _same(mine, theirs):
                raise ValueError(
                    f"{pt}: layer '{name}' has {key} {mine}, but the caffemodel {cm} has "
                    f"{key} {theirs}"
                )
    known = {layer["name"] for layer in prototxt_net.layers}
    for other in source_net.layers:
        if other.arrays and other.name not in known:
            raise ValueError(
                f"{pt}: the caffemodel {cm} has weights for layer '{other.name}', which the "
                "prototxt does not have"
            )
    order = [layer["name"] for layer in checked]
    names = set(order)
    theirs = [layer.name for layer in source_net.layers if layer.name in names]
    for a, b in zip(order, theirs, strict=False):  # a name twice in the caffemodel: stop short
        if a != b:
            raise ValueError(
                f"{pt}: layer '{a}' comes before '{b}', but the caffemodel {cm} has "
                f"'{b}' before '{a}'"
            )

"""The `alexnet_keras` metadata attribute: its schema, checked field by field.

Pure Python on purpose: the sandboxed reader checks the metadata before it
reads an array, and the parent checks it again when the reader hands it over,
since a reader that libhdf5 corrupted could hand over anything. The schema is
documented in `alexnet_keras.weights`.
"""

import json
import math

from alexnet_keras import limits
from alexnet_keras import variants as V

__all__ = [
    "FORMAT_VERSION",
    "METADATA_KEY",
    "PROTOCOLS",
    "Refusal",
    "check_metadata",
    "expected_arrays",
    "parse_metadata",
    "weights_protocol",
]

# The root attribute that holds the metadata, and the schema version it follows.
METADATA_KEY = "alexnet_keras"
FORMAT_VERSION = 1
_KEYS = {"format_version", "variant", "input_size", "classes", "class_names", "preprocessing",
         "source", "alexnet_keras_version", "protocol"}  # fmt: skip
_REQUIRED = ("variant", "classes", "input_size")
_PREPROCESSING_KEYS = {"color_order", "mean", "pixel_range"}
# How the source measured its accuracy (`preprocessing.PROTOCOLS`): "bvlc" warps
# to 256x256 (Caffe's ImageNet LMDB), "shorter-side" resizes the shorter side.
PROTOCOLS = ("bvlc", "shorter-side")
# Provenance: a flat object of scalars (path, format, digests, size, epoch...).
_MAX_SOURCE_KEYS = 64


class Refusal(ValueError):
    """A weights file that is not what alexnet-keras writes; the message lacks the path."""


def _json_kind(value):
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )


def parse_metadata(raw):
    """The metadata object from the attribute's text (str or UTF-8 bytes), unchecked.

    Raises:
        Refusal: not UTF-8, too long, not JSON, or JSON that is not an object.
    """
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Refusal("the alexnet-keras metadata is not UTF-8 text") from None
    if not isinstance(raw, str):
        raise Refusal("the alexnet-keras metadata is not a string attribute")
    if len(raw) > limits.MAX_METADATA_BYTES:
        raise Refusal(
            f"the alexnet-keras metadata has {len(raw):,} characters; "
            f"at most {limits.MAX_METADATA_BYTES:,} are read"
        )
    try:
        meta = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: arrays nested thousands deep
        raise Refusal("the alexnet-keras metadata is not valid JSON") from None
    if not isinstance(meta, dict):
        raise Refusal(f"the alexnet-keras metadata is a JSON {_json_kind(meta)}, not an object")
    return meta


def _string(value, what, limit=limits.MAX_METADATA_STRING):
    if not isinstance(value, str):
        raise Refusal(f"metadata `{what}` must be a string, not a JSON {_json_kind(value)}")
    if len(value) > limit:
        raise Refusal(f"metadata `{what}` has {len(value):,} characters; at most {limit:,}")
    return value


def _integer(value, what):
    if isinstance(value, bool) or not isinstance(value, int):
        raise Refusal(f"metadata `{what}` must be an integer. Received: {_short(value)}")
    return value


def _number(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Refusal(f"metadata `{what}` must be a number. Received: {_short(value)}")
    if not math.isfinite(value):
        raise Refusal(f"metadata `{what}` must be finite. Received: {value}")
    return value


def _short(value):
    text = json.dumps(value, allow_nan=True) if _json_kind(value) != "number" else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _class_names(names, classes):
    if names is None:
        return
    if not isinstance(names, list) or len(names) != classes:
        kind = f"{len(names)} entries" if isinstance(names, list) else f"a {_json_kind(names)}"
        raise Refusal(f"metadata `class_names` must list {classes} classes; it is {kind}")
    for i, name in enumerate(names):
        if isinstance(name, list) and len(name) == 2:
            _string(name[0], f"class_names[{i}][0]")
            _string(name[1], f"class_names[{i}][1]")
        elif not isinstance(name, list):
            _string(name, f"class_names[{i}]")
        else:
            raise Refusal(f"metadata `class_names[{i}]` must be a name or an [id, name] pair")


def _mean(mean, size):
    """3 finite numbers, or a size x size x 3 image of them (a cuda-convnet mean crop)."""
    if isinstance(mean, list) and len(mean) == 3:
        for i, value in enumerate(mean):
            _number(value, f"preprocessing.mean[{i}]")
        return
    if not isinstance(mean, list) or len(mean) != size:
        raise Refusal(f"metadata `preprocessing.mean` must be 3 numbers or {size}x{size}x3")
    for y, row in enumerate(mean):
        if not isinstance(row, list) or len(row) != size:
            raise Refusal(f"metadata `preprocessing.mean[{y}]` must list {size} pixels")
        for x, pixel in enumerate(row):
            if not isinstance(pixel, list) or len(pixel) != 3:
                raise Refusal(f"metadata `preprocessing.mean[{y}][{x}]` must be 3 numbers")
            for value in pixel:
                _number(value, f"preprocessing.mean[{y}][{x}]")


def _preprocessing(pre, size):
    if pre is None:
        return
    if not isinstance(pre, dict):
        raise Refusal(f"metadata `preprocessing` must be an object, not a {_json_kind(pre)}")
    if unknown := sorted(set(pre) - _PREPROCESSING_KEYS):
        raise Refusal(f"metadata `preprocessing` has an unknown key `{_string(unknown[0], 'key')}`")
    if pre.get("color_order") not in ("BGR", "RGB"):
        raise Refusal(
            "metadata `preprocessing.color_order` must be 'BGR' or 'RGB'. "
            f"Received: {_short(pre.get('color_order'))}"
        )
    if "mean" in pre:
        _mean(pre["mean"], size)
    if "pixel_range" in pre and pre["pixel_range"] != [0, 255]:
        raise Refusal(f"metadata `preprocessing.pixel_range` must be [0, 255]. "
                      f"Received: {_short(pre['pixel_range'])}")  # fmt: skip


def _source(source):
    if source is None:
        return
    if not isinstance(source, dict) or len(source) > _MAX_SOURCE_KEYS:
        raise Refusal(f"metadata `source` must be an object of at most {_MAX_SOURCE_KEYS} fields")
    for key, value in source.items():
        _string(key, "source key", 256)
        if isinstance(value, str):
            _string(value, f"source.{key}")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            _number(value, f"source.{key}")
        elif value is not None and not isinstance(value, bool):
            raise Refusal(f"metadata `source.{key}` must be a string, a number or null")


def check_metadata(meta):
    """Returns `meta` if it follows the schema of `alexnet_keras.weights`.

    Raises:
        Refusal: naming the first field that does not.

    Example:

    >>> from alexnet_keras.weights._schema import check_metadata
    >>> check_metadata({"variant": "bvlc", "classes": 10, "input_size": 227})["classes"]
    10
    >>> check_metadata({"variant": "bvlc", "classes": 10, "input_size": 227,
    ...                 "preprocessing": {"color_order": "BGR", "mean": [1, 2, float("nan")]}})
    Traceback (most recent call last):
    ...
    alexnet_keras.weights._schema.Refusal: metadata `preprocessing.mean[2]` must be finite. \
Received: nan
    """
    if not isinstance(meta, dict):
        raise Refusal(f"the alexnet-keras metadata is a JSON {_json_kind(meta)}, not an object")
    for key in _REQUIRED:
        if key not in meta:
            raise Refusal(f"the alexnet-keras metadata lacks `{key}`")
    if unknown := sorted(set(meta) - _KEYS):
        raise Refusal(
            f"the alexnet-keras metadata has an unknown key `{_string(unknown[0], 'key')}`"
        )
    version = meta.get("format_version", FORMAT_VERSION)
    if _integer(version, "format_version") != FORMAT_VERSION:
        raise Refusal(
            f"metadata format_version {version}; this alexnet-keras reads {FORMAT_VERSION}"
        )
    if meta["variant"] not in V.VARIANTS:
        raise Refusal(f"metadata `variant` must be one of {sorted(V.VARIANTS)}. "
                      f"Received: {_short(meta['variant'])}")  # fmt: skip
    if _integer(meta["input_size"], "input_size") not in V.INPUT_SIZES:
        raise Refusal(f"metadata `input_size` must be one of {list(V.INPUT_SIZES)}. "
                      f"Received: {meta['input_size']}")  # fmt: skip
    classes = _integer(meta["classes"], "classes")
    if not 1 <= classes <= limits.MAX_WEIGHTS_CLASSES:
        raise Refusal(f"metadata `classes` must be 1..{limits.MAX_WEIGHTS_CLASSES:,}. "
                      f"Received: {classes}")  # fmt: skip
    _class_names(meta.get("class_names"), classes)
    _preprocessing(meta.get("preprocessing"), meta["input_size"])
    _source(meta.get("source"))
    if meta.get("protocol") is not None and meta["protocol"] not in PROTOCOLS:
        raise Refusal(f"metadata `protocol` must be one of {list(PROTOCOLS)}. "
                      f"Received: {_short(meta['protocol'])}")  # fmt: skip
    if meta.get("alexnet_keras_version") is not None:
        _string(meta["alexnet_keras_version"], "alexnet_keras_version", 64)
    return meta


def weights_protocol(meta):
    """The protocol a weights file's source measured its accuracy with.

    The metadata's `protocol`; a file written before that field is `"bvlc"`
    when converted from a `caffemodel` or `npy` (Caffe's releases), else
    `"shorter-side"` (trained here, or cuda-convnet's, which the paper
    describes as shorter side 256 and the central crop).

    Example:

    >>> from alexnet_keras.weights._schema import weights_protocol
    >>> weights_protocol({"source": {"format": "caffemodel"}})
    'bvlc'
    """
    if meta.get("protocol") is not None:
        return meta["protocol"]
    source = meta.get("source") if isinstance(meta.get("source"), dict) else {}
    return "bvlc" if source.get("format") in ("caffemodel", "npy") else "shorter-side"


def expected_arrays(meta):
    """`{layer name: [shape, ...]}` of every weighted layer the checked `meta` describes."""
    from alexnet_keras.geometry import layer_plan

    plan = layer_plan(meta["variant"], meta["input_size"], meta["classes"])
    return {p.name: [tuple(s) for s in p.weight_shapes] for p in plan if p.weight_shapes}

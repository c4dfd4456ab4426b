"""Weights files of cfg-mirroring models (`cfg_model.build_model`), self-contained.

The file is `model.save_weights` output plus a root attribute `alexnet_keras`
with JSON metadata: `"model": "chm-cfg"`, the text and sha256 of the layer
definition and parameter files, the cuda-convnet era the net computes with
(`convnet_semantics`, `era.decide`), the class names, the mean image (CHW,
as cuda-convnet's `batches.meta` holds it) and the provenance. `load_mirror`
rebuilds the model from the file alone.
"""

import hashlib
import pathlib

import numpy as np

from alexnet_keras import limits
from alexnet_keras.cuda_convnet.cfg_text import CfgText
from alexnet_keras.cuda_convnet.era import SEMANTICS
from alexnet_keras.weights import load_into, read_metadata, write_model_weights

__all__ = ["is_mirror_file", "load_mirror", "mirror_net", "save_mirror_weights"]


def _cfg_record(path, text=None):
    if path is None:
        return None
    # The text the net was parsed from (read_cfg decodes UTF-8): the file is not read again.
    data = text.encode("utf-8") if text is not None else pathlib.Path(path).read_bytes()
    return {"name": pathlib.Path(path).name, "sha256": hashlib.sha256(data).hexdigest(),
            "text": data.decode("latin-1")}  # fmt: skip


def save_mirror_weights(net, arrays, output, *, class_names=None, mean=None, source=None):
    """Builds `net`'s Keras model, sets `arrays`, and writes the weights file atomically.

    Args:
        net: the `ChmNet`; its `source` and `config["source"]` name the cfg files.
        arrays: `chm_weights.mirror_arrays(net, ...)`.
        output: the `.weights.h5` to write.
        class_names, mean, source: metadata.

    Returns:
        The path written.
    """
    from alexnet_keras.cuda_convnet.cfg_model import build_model

    model = build_model(net)
    for name, values in arrays.items():
        model.get_layer(name).set_weights(values)
    layers_text, params_text = net.texts or (None, None)
    meta = {
        "model": "chm-cfg",
        "layers_cfg": _cfg_record(net.source, layers_text),
        "params_cfg": _cfg_record((net.config or {}).get("source"), params_text),
        "image_size": net.image_size,
        "convnet_semantics": net.semantics,
        "class_names": None if class_names is None else list(class_names),
        "mean": None if mean is None else np.asarray(mean, np.float32).round(5).tolist(),
        "source": source,
    }
    return write_model_weights(model, output, meta)


def is_mirror_file(path):
    """Whether `path` is a weights file written by `save_mirror_weights` (read in the sandbox)."""
    try:
        meta = read_metadata(path, kind="any")
    except ValueError:
        return False
    return isinstance(meta, dict) and meta.get("model") == "chm-cfg"


def _not_mirror(path, why):
    return ValueError(f"{path}: not a cfg-model weights file written by alexnet-keras ({why})")


def _cfg_text(path, meta, key, required):
    record = meta.get(key)
    if record is None and not required:
        return None
    fields = ("name", "sha256", "text")
    if not isinstance(record, dict) or not all(isinstance(record.get(f), str) for f in fields):
        raise _not_mirror(path, f"`{key}` must be an object with string {', '.join(fields)}")
    if len(record["text"]) > limits.MAX_CFG_BYTES or len(record["name"]) > 255:
        raise _not_mirror(path, f"`{key}` is longer than a cfg file may be")
    try:
        data = record["text"].encode("latin-1")  # as _cfg_record stored it
    except UnicodeEncodeError:
        raise _not_mirror(path, f"`{key}.text` is not the latin-1 text of a file") from None
    if hashlib.sha256(data).hexdigest() != record["sha256"]:
        raise _not_mirror(path, f"`{key}.text` does not match its sha256")
    return CfgText(pathlib.PurePath(record["name"]).name or key, data.decode("utf-8", "replace"))


def _check_meta(path, meta):
    """The stored metadata, checked: it came from a file, so every type and range is verified."""
    if not isinstance(meta, dict) or meta.get("model") != "chm-cfg":
        raise _not_mirror(path, "its metadata does not say model=chm-cfg")
    size = meta.get("image_size")
    if size is not None and (type(size) is not int or not 1 <= size <= limits.MAX_IMAGE_SIDE):
        raise _not_mirror(path, f"`image_size` must be null or 1 to {limits.MAX_IMAGE_SIDE}")
    names = meta.get("class_names")
    if names is not None and (
        not isinstance(names, list)
        or len(names) > limits.MAX_WEIGHTS_CLASSES
        or not all(isinstance(n, str) for n in names)
    ):
        raise _not_mirror(path, "`class_names` must be null or a list of strings")
    if meta.get("mean") is not None:
        try:
            mean = np.asarray(meta["mean"], dtype=np.float64)
        except (ValueError, TypeError):
            mean = None
        if mean is None or mean.ndim > 3 or not np.isfinite(mean).all():
            raise _not_mirror(path, "`mean` must be null or nested lists of finite numbers")
    if meta.get("convnet_semantics", "2012") not in SEMANTICS:
        raise _not_mirror(path, f"`convnet_semantics` must be one of {', '.join(SEMANTICS)}")
    source = meta.get("source")
    if source is not None and not isinstance(source, (str, dict)):
        raise _not_mirror(path, "`source` must be null, a string or an object")
    return [_cfg_text(path, meta, "layers_cfg", True), _cfg_text(path, meta, "params_cfg", False)]


def mirror_net(path, meta=None):
    """`(net, metadata)` of a weights file written by `save_mirror_weights`; no Keras.

    The net is parsed from the cfg texts the file stores, after the metadata
    is checked (texts against their sha256, every other field its type): what
    a reader needs to name and order the layers without building the model.

    Args:
        path: the `.weights.h5`.
        meta: its metadata, if already read (`read_metadata(path, kind="any")`).

    Raises:
        ValueError: one line naming the file, for any file not written so.

    Example:

    >>> from alexnet_keras.cuda_convnet.cfg_weights import mirror_net
    >>> mirror_net("../shared/data/chm-release/LICENSE")
    Traceback (most recent call last):
    ...
    ValueError: ../shared/data/chm-release/LICENSE: not an HDF5 file (expected a .weights.h5)
    """
    from alexnet_keras.cuda_convnet.cfg_net import read_net

    path = pathlib.Path(path)
    meta = read_metadata(path, kind="any") if meta is None else meta
    texts = _check_meta(path, meta)
    # The stored texts are parsed as they are: no temporary files.
    # A file written before the key existed was computed with the clipped divisor (2012).
    net = read_net(*texts, image_size=meta.get("image_size"),
                   semantics=meta.get("convnet_semantics", "2012"))  # fmt: skip
    return net, meta


def load_mirror(path):
    """`(model, metadata)` from a weights file written by `save_mirror_weights`.

    The file is read through `alexnet_keras.weights` (a sandboxed, checked
    reader), and its metadata is checked here before anything is built
    (`mirror_net`).

    Raises:
        ValueError: one line naming the file, for any file not written so.
    """
    from alexnet_keras.cuda_convnet.cfg_model import build_model

    net, meta = mirror_net(path)
    model = build_model(net)
    load_into(model, path, kind="any")
    return model, meta

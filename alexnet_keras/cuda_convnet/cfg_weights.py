"""Weights files of cfg-mirroring models (`cfg_model.build_model`), self-contained.

The file is `model.save_weights` output plus a root attribute `alexnet_keras`
with JSON metadata: `"model": "chm-cfg"`, the text and sha256 of the layer
definition and parameter files, the class names, the mean image (CHW, as
cuda-convnet's `batches.meta` holds it) and the provenance. `load_mirror`
rebuilds the model from the file alone.
"""

import hashlib
import json
import pathlib

import numpy as np

from alexnet_keras.weights import METADATA_KEY, write_model_weights

__all__ = ["is_mirror_file", "load_mirror", "save_mirror_weights"]


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
        "class_names": None if class_names is None else list(class_names),
        "mean": None if mean is None else np.asarray(mean, np.float32).round(5).tolist(),
        "source": source,
    }
    return write_model_weights(model, output, meta)


def is_mirror_file(path):
    """Whether `path` is a weights file written by `save_mirror_weights`."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return json.loads(f.attrs[METADATA_KEY]).get("model") == "chm-cfg"
    except (OSError, KeyError, ValueError, TypeError, AttributeError):
        return False


def load_mirror(path):
    """`(model, metadata)` from a weights file written by `save_mirror_weights`.

    Raises:
        ValueError: not such a file.
    """
    import h5py

    from alexnet_keras.cuda_convnet.cfg_model import build_model
    from alexnet_keras.cuda_convnet.cfg_net import read_net
    from alexnet_keras.cuda_convnet.cfg_text import CfgText

    path = pathlib.Path(path)
    try:
        with h5py.File(path, "r") as f:
            meta = json.loads(f.attrs[METADATA_KEY])
    except (OSError, KeyError, ValueError):
        raise ValueError(f"{path}: not a cfg-model weights file written by alexnet-keras") from None
    if meta.get("model") != "chm-cfg":
        raise ValueError(f"{path}: not a cfg-model weights file written by alexnet-keras")
    # The stored texts are parsed as they are: no temporary files.
    texts = [None if meta.get(key) is None else CfgText(meta[key]["name"], meta[key]["text"])
             for key in ("layers_cfg", "params_cfg")]  # fmt: skip
    net = read_net(*texts, image_size=meta.get("image_size"))
    model = build_model(net)
    model.load_weights(path)
    return model, meta

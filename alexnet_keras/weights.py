"""The weights file: a Keras `.weights.h5` with alexnet-keras metadata.

The file is what `model.save_weights` writes, plus one root attribute,
`alexnet_keras`, holding JSON metadata: the variant, input size, classes,
class names, preprocessing and provenance. `AlexNet(weights=path)` rebuilds
the right model from the file alone. Arrays are matched to layers by the
layer name Keras records in every `layers/*/vars` group, so a file also loads
into a headless model or one built for the other input size.

Files are written to a temporary name in the target folder and renamed at the
end: a crash never leaves a half-written file under the final name.
"""

import json
import os
import pathlib
import tempfile

import numpy as np

from alexnet_keras.version import __version__

__all__ = ["load_into", "read_arrays", "read_metadata", "save_weights"]

METADATA_KEY = "alexnet_keras"
FORMAT_VERSION = 1


def _h5py():
    import h5py

    return h5py


def _open(path):
    path = pathlib.Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such weights file")
    h5py = _h5py()
    try:
        return h5py.File(path, "r")
    except OSError:
        raise ValueError(f"{path}: not an HDF5 file (expected a .weights.h5)") from None


def read_metadata(path):
    """Returns the metadata dict of a weights file.

    Raises:
        ValueError: if the file is missing, not HDF5, or has no valid metadata.

    Example:

    >>> import alexnet_keras, tempfile, os
    >>> model = alexnet_keras.AlexNet(variant="caffenet", classes=10)
    >>> path = os.path.join(tempfile.mkdtemp(), "m.weights.h5")
    >>> _ = alexnet_keras.weights.save_weights(model, path, variant="caffenet")
    >>> meta = alexnet_keras.weights.read_metadata(path)
    >>> meta["variant"], meta["classes"], meta["input_size"]
    ('caffenet', 10, 227)
    """
    with _open(path) as f:
        raw = f.attrs.get(METADATA_KEY)
    if raw is None:
        raise ValueError(
            f"{path}: a weights file without alexnet-keras metadata; "
            "write it with `alexnet-keras convert` or alexnet_keras.weights.save_weights"
        )
    try:
        meta = json.loads(raw)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: the alexnet-keras metadata is not valid JSON") from None
    for key in ("variant", "classes", "input_size"):
        if key not in meta:
            raise ValueError(f"{path}: the alexnet-keras metadata lacks `{key}`")
    return meta


def read_arrays(path):
    """Returns `{layer_name: [arrays]}` from a Keras `.weights.h5`."""
    arrays = {}
    with _open(path) as f:
        layers = f.get("layers")
        if layers is None:
            raise ValueError(f"{path}: not a Keras weights file (no `layers` group)")
        for group in layers.values():
            vars_ = group.get("vars")
            if vars_ is None or "name" not in vars_.attrs or not len(vars_):
                continue
            name = vars_.attrs["name"]
            name = name.decode() if isinstance(name, bytes) else str(name)
            arrays[name] = [np.asarray(vars_[k]) for k in sorted(vars_, key=int)]
    return arrays


def load_into(model, path):
    """Loads every weighted layer of `model` from `path`, matched by layer name.

    Layers of the file that `model` lacks (e.g. the classifier of a headless
    model) are left unused; a layer of `model` that the file lacks, or whose
    shapes differ, is an error naming it.
    """
    arrays = read_arrays(path)
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.name not in arrays:
            raise ValueError(f"{path}: has no weights for layer '{layer.name}'")
        got = [a.shape for a in arrays[layer.name]]
        want = [tuple(w.shape) for w in layer.weights]
        if got != want:
            raise ValueError(f"{path}: layer '{layer.name}' expects shapes {want}. Received: {got}")
        layer.set_weights(arrays[layer.name])


def save_weights(model, path, *, variant, class_names=None, preprocessing=None, source=None):
    """Writes `model`'s weights with metadata, atomically.

    Args:
        model: an `AlexNet` model with its classifier.
        path: destination; must end in `.weights.h5`.
        variant: the model's variant name.
        class_names: optional list of class names (or `[id, name]` pairs).
        preprocessing: optional dict (`color_order`, `mean`); defaults to the
            variant's.
        source: optional provenance dict (`path`, `format`, `sha256`, ...).

    Returns:
        The path written, as a `pathlib.Path`.
    """
    from alexnet_keras.variants import get_variant

    spec = get_variant(variant)
    path = pathlib.Path(path)
    if not path.name.endswith(".weights.h5"):
        raise ValueError(f"Weights files must end in `.weights.h5`. Received: path={str(path)!r}")
    fc8 = model.get_layer("fc8")
    meta = {
        "format_version": FORMAT_VERSION,
        "variant": spec.name,
        "input_size": int(model.input_shape[1]),
        "classes": int(fc8.units),
        "class_names": None
        if class_names is None
        else [list(c) if isinstance(c, (list, tuple)) else c for c in class_names],
        "preprocessing": preprocessing
        or {"color_order": spec.color_order, "mean": list(spec.mean)},
        "source": source,
        "alexnet_keras_version": __version__,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".weights.h5", dir=path.parent)
    os.close(fd)
    try:
        model.save_weights(tmp, overwrite=True)
        with _h5py().File(tmp, "a") as f:
            f.attrs[METADATA_KEY] = json.dumps(meta)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path

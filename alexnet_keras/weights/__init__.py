"""The weights file: a Keras `.weights.h5` with alexnet-keras metadata.

The file is what `model.save_weights` writes, plus one root attribute,
`alexnet_keras`, holding JSON metadata: the variant, input size, classes,
class names, preprocessing and provenance. `AlexNet(weights=path)` rebuilds
the right model from the file alone. Arrays are matched to layers by the
layer name Keras records in every `layers/*/vars` group, so a file also loads
into a headless model or one built for the other input size.

Reading: a weights file may come from anywhere, and HDF5 can point outside
itself (external storage, external links) or crash libhdf5. Every reader here
goes through `_sandbox.read`: a child process, bounded in time and memory,
accepts only what Keras writes (see `_reader`) and hands back the checked
metadata and arrays. Anything else is one `ValueError` line naming the file.

The metadata schema (a JSON object, at most `limits.MAX_METADATA_BYTES`):

- `variant` (required): a name of `variants.VARIANTS`.
- `input_size` (required): one of `variants.INPUT_SIZES`.
- `classes` (required): an integer, 1 to `limits.MAX_WEIGHTS_CLASSES`.
- `format_version`: 1.
- `class_names`: null, or `classes` entries, each a name or an `[id, name]`
  pair of strings.
- `preprocessing`: null, or `{"color_order": "BGR" | "RGB", "mean": M,
  "pixel_range": [0, 255]}`, `mean` (optional) being 3 finite numbers or an
  `input_size` x `input_size` x 3 nest of them.
- `source`: null, or an object of at most 64 fields, each a string, a finite
  number, a boolean or null.
- `alexnet_keras_version`: a string.
- `protocol`: null, `"bvlc"` or `"shorter-side"`: how the weights' source
  prepared evaluation images (`evaluate --protocol`'s default). The Caffe
  converters write `"bvlc"` (256x256 warp), everything else `"shorter-side"`.
  A file without it (written before the field) is `"bvlc"` if its `source`
  format is `caffemodel` or `npy`, else `"shorter-side"`
  (`preprocessing.weights_protocol`).

Strings are at most `limits.MAX_METADATA_STRING` characters; no other key is
accepted. The arrays must be exactly the layers and shapes
`geometry.layer_plan(variant, input_size, classes)` gives.

Files are written to a temporary name in the target folder and renamed at the
end: a crash never leaves a half-written file under the final name.
"""

import json
import os
import pathlib
import tempfile

import numpy as np

from alexnet_keras.files import apply_umask, write_error
from alexnet_keras.version import __version__
from alexnet_keras.weights._schema import FORMAT_VERSION, METADATA_KEY

__all__ = [
    "METADATA_KEY",
    "atomic_write",
    "load_into",
    "read_arrays",
    "read_metadata",
    "save_weights",
    "write_arrays",
    "write_model_weights",
]


def _h5py():
    import h5py

    return h5py


def read_metadata(path, *, kind="alexnet"):
    """Returns the metadata dict of a weights file, after checking the whole file.

    Args:
        path: the `.weights.h5`.
        kind: `"alexnet"`, a file of the schema above; or `"any"`, any Keras
            weights file whose metadata, if any, is a JSON object (then None
            when it has none).

    Raises:
        ValueError: if the file is missing, not HDF5, not what Keras writes,
            or has no valid metadata.

    Example:

    >>> import alexnet_keras, tempfile, os
    >>> model = alexnet_keras.AlexNet(variant="caffenet", classes=10)
    >>> path = os.path.join(tempfile.mkdtemp(), "m.weights.h5")
    >>> _ = alexnet_keras.weights.save_weights(model, path, variant="caffenet")
    >>> meta = alexnet_keras.weights.read_metadata(path)
    >>> meta["variant"], meta["classes"], meta["input_size"]
    ('caffenet', 10, 227)
    """
    from alexnet_keras.weights import _sandbox

    return _sandbox.read(path, arrays=False, kind=kind)[0]


def read_arrays(path, *, kind="alexnet"):
    """Returns `{layer_name: [arrays]}` from a checked Keras `.weights.h5`.

    Args:
        path: the `.weights.h5`.
        kind: as in `read_metadata`.

    Raises:
        ValueError: as `read_metadata`.
    """
    from alexnet_keras.weights import _sandbox

    return _sandbox.read(path, arrays=True, kind=kind)[1]


def load_into(model, path, *, kind="alexnet"):
    """Loads every weighted layer of `model` from `path`, matched by layer name.

    Layers of the file that `model` lacks (e.g. the classifier of a headless
    model) are left unused; a layer of `model` that the file lacks, or whose
    shapes differ, is an error naming it.

    Args:
        model: a Keras model.
        path: the `.weights.h5`.
        kind: as in `read_metadata`.
    """
    arrays = read_arrays(path, kind=kind)
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


def _metadata(spec, input_size, classes, class_names, preprocessing, source, protocol):
    return {
        "format_version": FORMAT_VERSION,
        "variant": spec.name,
        "input_size": int(input_size),
        "classes": int(classes),
        "class_names": None
        if class_names is None
        else [list(c) if isinstance(c, (list, tuple)) else c for c in class_names],
        "preprocessing": preprocessing or spec.preprocessing,
        "source": source,
        "alexnet_keras_version": __version__,
        "protocol": protocol,
    }


def _check_suffix(path, suffix):
    path = pathlib.Path(path)
    if not path.name.endswith(suffix):
        raise ValueError(f"The output must end in `{suffix}`. Received: path={str(path)!r}")
    return path


def atomic_write(path, write, suffix=".weights.h5", needed=None):
    """Calls `write(tmp_path)` and renames the result to `path`; never leaves a partial file.

    The temporary file lives in the destination folder, so the rename is atomic.
    A full disk, a quota or a read-only folder is one `OSError` naming `path`
    and the space `needed` (`files.write_error`); the temporary file is removed.
    """
    path = _check_suffix(path, suffix)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    except OSError as e:
        raise (write_error(path, e, needed) or e) from None
    os.close(fd)
    try:
        write(tmp)
        apply_umask(tmp)  # mkstemp's 0600 would stay: the file gets the user's umask
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:  # h5py reports a failed write as RuntimeError
        failure = write_error(path, e, needed)
        if failure is None:
            raise
        raise failure from None
    finally:
        try:
            os.remove(tmp)
        except OSError:  # renamed, or the folder cannot be written: nothing to clean
            pass
    return path


# The group Keras 3 gives each layer class in a `.weights.h5`: the snake-case
# class name, numbered `_1`, `_2`... in `model.layers` order. A test checks
# this against `model.save_weights` for every variant and size.
_KERAS_GROUP = {
    "InputLayer": "input_layer",
    "ZeroPadding2D": "zero_padding2d",
    "Conv2D": "conv2d",
    "GroupedConv2D": "grouped_conv2d",
    "ReLU": "re_lu",
    "LocalResponseNormalization": "local_response_normalization",
    "SpatialResponseNormalization": "spatial_response_normalization",
    "MaxPooling2D": "max_pooling2d",
    "Flatten": "flatten",
    "Dense": "dense",
    "Dropout": "dropout",
    "Activation": "activation",
}


def write_arrays(
    path,
    arrays,
    *,
    variant,
    input_size=None,
    class_names=None,
    preprocessing=None,
    source=None,
    protocol="shorter-side",
):
    """Writes a full AlexNet weights file from arrays, without building the model.

    The file is byte-for-byte the layout of `model.save_weights` (so
    `keras.Model.load_weights` reads it too) plus the metadata. Converting
    without TensorFlow keeps a 233 MB conversion to seconds and well under
    a gigabyte of memory.

    Args:
        path: destination; must end in `.weights.h5`.
        arrays: `{layer_name: [kernel, bias]}` in Keras layout for every
            weighted layer; shapes must match the plan exactly.
        variant: the variant name.
        input_size: recorded in the metadata; defaults to the variant's.
        class_names, preprocessing, source, protocol: metadata, as in
            `save_weights`.

    Returns:
        The path written, as a `pathlib.Path`.

    Example:

    >>> import os, tempfile, numpy as np
    >>> from alexnet_keras.geometry import layer_plan
    >>> from alexnet_keras.weights import write_arrays, read_metadata
    >>> arrays = {p.name: [np.zeros(s, np.float32) for s in p.weight_shapes]
    ...           for p in layer_plan("bvlc", classes=10) if p.weight_shapes}
    >>> path = write_arrays(os.path.join(tempfile.mkdtemp(), "z.weights.h5"), arrays,
    ...                     variant="bvlc")
    >>> read_metadata(path)["classes"]
    10
    """
    from alexnet_keras.geometry import layer_plan
    from alexnet_keras.variants import get_variant

    spec = get_variant(variant)
    input_size = input_size or spec.default_size
    classes = int(arrays["fc8"][1].shape[0])
    plan = layer_plan(spec, input_size, classes)
    for layer in plan:
        got = tuple(a.shape for a in arrays.get(layer.name, ()))
        if got != layer.weight_shapes:
            raise ValueError(
                f"{path}: layer '{layer.name}' expects shapes {layer.weight_shapes}. "
                f"Received: {got}"
            )
    meta = _metadata(spec, input_size, classes, class_names, preprocessing, source, protocol)

    def write(tmp):
        counts = {}
        with _h5py().File(tmp, "w") as f:
            f.attrs[METADATA_KEY] = json.dumps(meta)
            layers = f.create_group("layers")
            for layer in plan:
                key = _KERAS_GROUP[layer.keras_class]
                n = counts.get(key, 0)
                counts[key] = n + 1
                group = layers.create_group(key if n == 0 else f"{key}_{n}")
                vars_ = group.create_group("vars")
                vars_.attrs["name"] = layer.name
                for i, a in enumerate(arrays.get(layer.name, ())):
                    vars_.create_dataset(str(i), data=np.asarray(a, np.float32))
            f.create_group("vars").attrs["name"] = f"alexnet_{spec.name}"

    needed = sum(4 * np.prod(a.shape, dtype=np.int64) for v in arrays.values() for a in v)
    return atomic_write(path, write, needed=int(needed))


def save_weights(model, path, *, variant, class_names=None, preprocessing=None, source=None,
                 protocol="shorter-side"):  # fmt: skip
    """Writes `model`'s weights with metadata, atomically.

    Args:
        model: an `AlexNet` model with its classifier.
        path: destination; must end in `.weights.h5`.
        variant: the model's variant name.
        class_names: optional list of class names (or `[id, name]` pairs).
        preprocessing: optional dict (`color_order`, `mean`); defaults to the
            variant's.
        source: optional provenance dict (`path`, `format`, `sha256`, ...).
        protocol: how the source's accuracy is measured: `"shorter-side"`
            (what training here uses) or `"bvlc"` (a 256x256 warp, Caffe's).

    Returns:
        The path written, as a `pathlib.Path`.
    """
    from alexnet_keras.variants import get_variant

    spec = get_variant(variant)
    _check_suffix(path, ".weights.h5")
    meta = _metadata(
        spec,
        model.input_shape[1],
        model.get_layer("fc8").units,
        class_names,
        preprocessing,
        source,
        protocol,
    )

    return write_model_weights(model, path, meta)


def write_model_weights(model, path, meta):
    """`model.save_weights` plus the `alexnet_keras` metadata attribute, atomically."""

    def write(tmp):
        model.save_weights(tmp, overwrite=True)
        with _h5py().File(tmp, "a") as f:
            f.attrs[METADATA_KEY] = json.dumps(meta)

    needed = sum(int(np.prod(w.shape)) * np.dtype(w.dtype).itemsize for w in model.weights)
    return atomic_write(path, write, needed=needed)

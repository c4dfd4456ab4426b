"""Nearest neighbours in a layer's feature space, and the per-split feature cache they read.

The features of a dataset split are extracted once, with `extract_features`,
into `<cache>/features/<weights sha256[:8]>-<dataset>-<split>-<layer>.h5`
(`<cache>` is `registry.cache_dir()`, `$ALEXNET_KERAS_HOME` if set), and
read from there while the file is complete and was made from the same
weights, dataset, split and layer. A stopped extraction resumes.
"""

import hashlib
import os
import re

import numpy as np

from alexnet_keras.features.extract import extract_features
from alexnet_keras.features.store import read_features

__all__ = ["cache_path", "dataset_name", "nearest", "split_features"]

# Distances are computed against this many base rows at a time: 8192 x 4096 float64
# is 256 MB, a bound whatever the split's size.
_CHUNK = 8192


def dataset_name(spec):
    """A dataset spec as `data.open_dataset` names it: a folder by its absolute path.

    Example:

    >>> import os
    >>> from alexnet_keras.features.neighbours import dataset_name
    >>> dataset_name("folder:data/x") == "folder:" + os.path.abspath("data/x")
    True
    """
    for prefix in ("folder:", "imagenet-val:"):
        if spec.startswith(prefix):
            return prefix + os.path.abspath(spec[len(prefix) :])
    return spec


def cache_path(weights_sha256, dataset, split, layer):
    """Where the features of a split are cached (see the module docstring).

    A folder dataset is named by its last folder and a digest of its full
    path, so two folders of one name do not share a file.

    Example:

    >>> from alexnet_keras.features.neighbours import cache_path
    >>> cache_path("ab12cd34ef", "cifar10", "train", "relu7").name
    'ab12cd34-cifar10-train-relu7.h5'
    """
    from alexnet_keras.registry import cache_dir

    name = dataset_name(dataset)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", os.path.basename(name.rstrip("/"))).strip("_")
    if ":" in name:
        slug = f"{slug or 'folder'}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    return cache_dir() / "features" / f"{weights_sha256[:8]}-{slug}-{split}-{layer}.h5"


def _matches(path, weights_sha256, dataset, split, layer):
    """The cached file's contents if it is complete and made from these inputs, else None."""
    try:
        cached = read_features(path)
    except ValueError:
        return None
    want = {"weights_sha256": weights_sha256, "dataset": dataset_name(dataset), "split": split,
            "layer": layer, "ten_crop": False, "source": "dataset"}  # fmt: skip
    return cached if all(cached["attrs"].get(k) == v for k, v in want.items()) else None


def split_features(weights, dataset, split, layer, *, data_dir=None, batch_size=32,
                   progress=None):  # fmt: skip
    """The features of a dataset split (centre crops), from the cache or extracted into it.

    Args:
        weights: a `.weights.h5` or a release name.
        dataset: a TFDS name or `folder:PATH` (see `data.open_dataset`).
        split: `"train"` or `"eval"`.
        layer: a layer name of the model.
        data_dir: the TFDS data dir.
        batch_size: images per forward pass, when extracting.
        progress: a stream for the extraction's progress line; `None` for silence.

    Returns:
        `features.store.read_features`' dict of the cached file, `path` added.

    Example:

    >>> import os, tempfile, alexnet_keras
    >>> from unittest import mock
    >>> from alexnet_keras.features.neighbours import split_features
    >>> home, mini = tempfile.mkdtemp(), "folder:../shared/data/cifar10-mini"
    >>> with mock.patch.dict(os.environ, {"ALEXNET_KERAS_HOME": home}):
    ...     path = alexnet_keras.weights.save_weights(
    ...         alexnet_keras.AlexNet(classes=10), f"{home}/m.weights.h5", variant="bvlc")
    ...     feats = split_features(path, mini, "eval", "pool5")  # extracted into the cache
    ...     again = split_features(path, mini, "eval", "pool5")  # read from it
    >>> feats["features"].shape, again["path"] == feats["path"], feats["path"].parent.name
    ((100, 6, 6, 256), True, 'features')
    """
    from alexnet_keras.pretrained import resolve
    from alexnet_keras.registry import file_digests

    path = resolve(weights)
    sha = file_digests(path)["sha256"]
    target = cache_path(sha, dataset, split, layer)
    cached = _matches(target, sha, dataset, split, layer)
    if cached is None:
        target.parent.mkdir(parents=True, exist_ok=True)
        # A complete file of other inputs is replaced; a partial one of these is resumed.
        extract_features(path, layer, target, dataset=dataset, data_dir=data_dir, split=split,
                         batch_size=batch_size, overwrite=True, progress=progress)  # fmt: skip
        cached = read_features(target)
    return {**cached, "path": target}


def nearest(queries, base, k=6):
    """The `k` rows of `base` nearest each query in Euclidean distance, nearest first.

    Distances are computed in float64, `_CHUNK` rows of `base` at a time
    (`base` may be an h5py dataset). Ties go to the lower row.

    Returns:
        `(rows, distances)`: int64 and float64 arrays `(len(queries), k)`.

    Example:

    >>> import numpy as np
    >>> from alexnet_keras.features.neighbours import nearest
    >>> rows, dist = nearest(np.array([[0.0, 0.0]]), np.array([[3.0, 4.0], [1.0, 0.0], [0, 2]]), 2)
    >>> rows.tolist(), dist.tolist()
    ([[1, 2]], [[1.0, 2.0]])
    """
    q = np.asarray(queries, np.float64).reshape(len(queries), -1)
    rows = np.zeros((len(q), 0), np.int64)
    squared = np.zeros((len(q), 0), np.float64)
    for start in range(0, len(base), _CHUNK):
        b = np.asarray(base[start : start + _CHUNK], np.float64).reshape(-1, q.shape[1])
        d = (q * q).sum(1)[:, None] - 2 * q @ b.T + (b * b).sum(1)[None, :]
        rows = np.concatenate([rows, np.broadcast_to(np.arange(start, start + len(b)), d.shape)], 1)
        squared = np.concatenate([squared, d], 1)
        # Stable: of equal distances the earlier (lower) row stays first.
        order = np.argsort(squared, axis=1, kind="stable")[:, :k]
        rows = np.take_along_axis(rows, order, 1)
        squared = np.take_along_axis(squared, order, 1)
    return rows, np.sqrt(np.maximum(squared, 0))

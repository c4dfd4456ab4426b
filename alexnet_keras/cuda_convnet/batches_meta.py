"""cuda-convnet's `batches.meta`: the data provider's mean image and label names, read safely.

It is a Python 2 pickle of a dict (`data_mean`, `label_names`, `num_vis`,
...), read through `safe_pickle` as the checkpoints are
(`docs/formats.md` §2).
"""

import math
import pathlib

import numpy as np

from alexnet_keras.cuda_convnet.checkpoint_io import key_list, kind, load_file, plain
from alexnet_keras.files import existing_file
from alexnet_keras.safe_pickle import brief

__all__ = ["read_batches_meta"]


def read_batches_meta(path, *, channels=3):
    """Reads a cuda-convnet data provider's `batches.meta` safely.

    Args:
        path: the `batches.meta` file, or the data directory holding it.
        channels: the image channels the mean is made of (RGB: 3).

    Returns:
        The meta dict with `mean`: `data_mean` (stored CHW-flattened, e.g.
        `(3*256*256, 1)`) as a float32 `(channels, size, size)` array, or
        None when the file has none (CIFAR-10's own `batches.meta`);
        `label_names` as a list of str; `source`; and every other key as
        stored (`num_vis`, `num_cases_per_batch`, ...).

    Raises:
        ValueError: naming the file: missing, empty, corrupt or unsafe
            (`safe_pickle.UnsafePickleError`), not a dict, a mean that is not
            `channels` square planes or disagrees with `num_vis`, label names
            that are not strings.

    Example:

    >>> import os, pickle, tempfile, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "batches.meta")
    >>> mean = np.arange(3 * 32 * 32, dtype=np.float32).reshape(-1, 1)
    >>> with open(path, "wb") as f:
    ...     pickle.dump({"data_mean": mean, "label_names": ["airplane", "bird"]}, f, protocol=2)
    >>> from alexnet_keras.cuda_convnet.batches_meta import read_batches_meta
    >>> meta = read_batches_meta(path)
    >>> meta["mean"].shape, meta["mean"][1, 0, 2], meta["label_names"]
    ((3, 32, 32), np.float32(1026.0), ['airplane', 'bird'])
    """
    path = pathlib.Path(path)
    if path.is_dir():
        path = path / "batches.meta"
    what = "a cuda-convnet batches.meta"
    file = existing_file(path, what)
    obj, _ = load_file(file, what)
    if not isinstance(obj, dict):
        raise ValueError(f"{file}: expects a dict ({what}). Received: {kind(obj, pickled=True)}")
    meta = plain(obj, str(file))
    if "data_mean" not in meta and "label_names" not in meta:
        raise ValueError(
            f"{file}: has neither 'data_mean' nor 'label_names' ({what}). "
            f"Received: keys {key_list(meta)}"
        )
    labels = meta.pop("label_names", [])
    if not isinstance(labels, (list, tuple)) or not all(isinstance(x, str) for x in labels):
        raise ValueError(f"{file}: label_names must be a list of str. Received: {brief(labels)}")
    out = {"mean": _mean(file, meta.pop("data_mean", None), meta.get("num_vis"), channels)}
    return {**out, "label_names": list(labels), "source": str(file), **meta}


def _mean(file, mean, num_vis, channels):
    if mean is None:
        return None
    if not isinstance(mean, np.ndarray) or mean.dtype.kind not in "fiu":
        got = mean.dtype if isinstance(mean, np.ndarray) else type(mean).__name__
        raise ValueError(f"{file}: data_mean must be a numeric array. Received: {got}")
    if num_vis is not None and num_vis != mean.size:
        raise ValueError(
            f"{file}: data_mean has {mean.size} values but num_vis says {num_vis}. "
            f"Received: data_mean {mean.shape}"
        )
    flat = mean.ndim <= 1 or (mean.ndim == 2 and 1 in mean.shape)
    planes = mean.ndim == 3 and mean.shape[0] == channels and mean.shape[1] == mean.shape[2]
    side = math.isqrt(mean.size // channels)
    if not (flat or planes) or channels * side * side != mean.size:
        raise ValueError(
            f"{file}: data_mean is not {channels} square CHW planes. Received: shape {mean.shape}"
        )
    # The logical order is C, H, W whatever the memory order of the (N, 1) matrix.
    return np.asarray(mean, dtype=np.float32).reshape(channels, side, side)

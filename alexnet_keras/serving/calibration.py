"""`--calibration DIR|dataset[:split]`: real images as the exported model receives them.

A quantized export needs two sets of real images: a few hundred that calibrate
the int8 ranges, and a held-out set on which the agreement gate compares the
quantized model with fp32 (`serving.agreement`). Both come from one source,
opened with `data.open_dataset`: an image folder (`<class>/` subfolders, or
`train/` and `test/`), `folder:PATH`, or a dataset name (`cifar10`). The split
named after the colon (default `train`) calibrates; the other one (`eval`:
the test split, or the seeded hold-out of a flat folder) is the held-out set.

Each image is prepared exactly as serving prepares it: decoded to RGB, resized
by the weights' protocol (`preprocessing.resize_image`, shorter side or BVLC's
warp to 256), float32 0..255, uncropped: the crop, colour order and mean are in
the exported graph.
"""

import dataclasses
import math
import os

__all__ = ["ImageSet", "MAX_CALIBRATION", "MAX_HELD_OUT", "open_images"]

MAX_CALIBRATION = 300  # "a few hundred": ORT's min/max ranges settle well before that
MAX_HELD_OUT = 500
_SPLITS = ("train", "eval")


@dataclasses.dataclass
class ImageSet:
    """Images of one split, spread over the whole split.

    Attributes:
        images: float32 `(H, W, 3)` RGB 0..255 arrays, resized by the protocol.
        labels: the dataset's label of each image.
        class_names: the dataset's class names (index = label).
        name: what was opened, for the report.
    """

    images: list
    labels: list
    class_names: list
    name: str


def _spec(source):
    if os.path.isdir(source):
        return f"folder:{source}", "train"
    if source.startswith(("folder:", "imagenet-val:")):
        return source, "train"
    name, _, split = source.partition(":")
    split = split or "train"
    if split not in _SPLITS:
        raise ValueError(
            f"--calibration {source}: the split must be one of {', '.join(_SPLITS)}. "
            f"Received: {split!r}"
        )
    return name, split


def _spread(split, limit):
    """At most `limit` images, every `step`-th: a folder's order is sorted by class."""
    from alexnet_keras.data.split import Split

    step = max(1, math.ceil(split.size / limit))
    references = split.references.shard(step, 0)
    return Split(references, math.ceil(split.size / step), split.is_path, None, split.decode)


def _prepared(split, protocol):
    import tensorflow as tf

    from alexnet_keras.image_header import RESIZE
    from alexnet_keras.preprocessing import resize_image

    images, labels = [], []
    for image, label in split:
        images.append(resize_image(tf.cast(image, tf.float32), RESIZE, protocol).numpy())
        labels.append(int(label))
    return images, labels


def open_images(source, protocol, *, held_out=False, limit=None):
    """The calibration images of `source`, or its held-out images.

    Args:
        source: a folder, `folder:PATH`, or `NAME[:train|eval]` for a dataset.
        protocol: the weights' resize protocol (`"shorter-side"` or `"bvlc"`).
        held_out: the other split, for the agreement gate.
        limit: at most this many images, spread over the split; defaults to
            `MAX_CALIBRATION` or `MAX_HELD_OUT`.

    Returns:
        An `ImageSet`.

    Raises:
        ValueError: a source that does not open, or a split without images.

    Example:

    >>> from alexnet_keras.serving.calibration import open_images
    >>> s = open_images("../shared/data/cifar10-mini", "shorter-side", limit=4)
    >>> len(s.images), s.images[0].shape, s.class_names[0]
    (4, (256, 256, 3), 'airplane')
    """
    from alexnet_keras.data.sources import open_dataset

    spec, split = _spec(source)
    if held_out:
        split = _SPLITS[1 - _SPLITS.index(split)]
    limit = limit or (MAX_HELD_OUT if held_out else MAX_CALIBRATION)
    try:
        splits, info = open_dataset(spec)
    except ValueError as e:
        raise ValueError(f"--calibration {source}: {e}") from None
    images, labels = _prepared(_spread(splits[split], limit), protocol)
    if not images:
        raise ValueError(f"--calibration {source}: its {split} split has no readable images")
    return ImageSet(images, labels, list(info.class_names), f"{source} ({split})")

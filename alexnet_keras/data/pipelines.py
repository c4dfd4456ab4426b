"""tf.data input pipelines for training and evaluation, and the datasets they read.

`train_pipeline` is AlexNet's training augmentation: shorter side resized to
256, a random `input_size` crop, a random horizontal flip and the paper's PCA
lighting noise, then the weights' preprocessing. Every random choice is a pure
function of `(seed, epoch, element index)`, so a resumed epoch
(`skip_batches=n`) yields exactly the batches an uninterrupted run would.

`eval_pipeline` is Caffe's test phase: shorter side 256, the centre crop at
Caffe's offset, or ten crops.

The dataset API of `data_sources` (`open_dataset`, `DatasetInfo`,
`dataset_summary`) is re-exported here, so a trainer needs one import.
"""

import collections.abc

import numpy as np
import tensorflow as tf

from alexnet_keras.data.sources import (
    DatasetInfo,
    dataset_summary,
    decode_image,
    open_dataset,
    raw_source,
)
from alexnet_keras.data.image_folder import seeded_permutation
from alexnet_keras.variants import get_variant

__all__ = [
    "IMAGENET_PCA_EIGVAL",
    "IMAGENET_PCA_EIGVEC",
    "DatasetInfo",
    "center_crop_tensor",
    "dataset_summary",
    "eval_pipeline",
    "open_dataset",
    "preprocess_fn",
    "resize_shorter",
    "train_pipeline",
]

# AlexNet's PCA colour augmentation (Krizhevsky et al. 2012, §4.1): the
# eigenvalues and eigenvectors of the RGB pixel covariance of ImageNet, as
# published in fb.resnet.torch `datasets/imagenet.lua` (`pca`, used by
# `datasets/transforms.lua` `Lighting`) and copied by most ports since. They
# are for pixels in 0..1; the pipeline works in 0..255 and scales the noise by
# 255. Rows are R, G, B; column j is eigenvector j.
IMAGENET_PCA_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_PCA_EIGVEC = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)


def _check_sizes(input_size, batch_size, resize):
    if not (isinstance(input_size, int) and 0 < input_size <= resize):
        raise ValueError(
            "The crop must fit in the resized image. Expected 0 < input_size <= resize. "
            f"Received: input_size={input_size}, resize={resize}"
        )
    if not (isinstance(batch_size, int) and batch_size > 0):
        raise ValueError(f"Expected a positive batch_size. Received: batch_size={batch_size}")


def preprocess_fn(preprocessing, input_size):
    """The weights' preprocessing as a tensor function (`preprocess_input` semantics).

    Args:
        preprocessing: the weights' metadata `{"color_order", "mean"}`, a
            variant name, or `None` (identity).
        input_size: the crop size; a per-pixel mean must be that size.

    Returns:
        A function of float32 RGB 0..255 crops, `(..., S, S, 3)`.
    """
    if preprocessing is None:
        return lambda x: x
    if isinstance(preprocessing, str):
        spec = get_variant(preprocessing)
        preprocessing = {"color_order": spec.color_order, "mean": spec.mean}
    if not isinstance(preprocessing, collections.abc.Mapping):
        raise ValueError(
            "Expected preprocessing to be a dict {'color_order', 'mean'}, a variant name or "
            f"None. Received: preprocessing={preprocessing!r}"
        )
    order = preprocessing.get("color_order")
    if order not in ("BGR", "RGB"):
        raise ValueError(f"Expected color_order 'BGR' or 'RGB'. Received: color_order={order!r}")
    if list(preprocessing.get("pixel_range", [0, 255])) != [0, 255]:
        raise ValueError(
            "Expected pixel_range [0, 255] (the pipeline does not rescale). Received: "
            f"pixel_range={preprocessing['pixel_range']}"
        )
    mean = np.asarray(preprocessing.get("mean", (0.0, 0.0, 0.0)), np.float32)
    if mean.shape not in ((3,), (input_size, input_size, 3)):
        raise ValueError(
            f"Expected a mean of shape (3,) or ({input_size}, {input_size}, 3). "
            f"Received: mean.shape={mean.shape}"
        )

    def preprocess(x):
        if order == "BGR":
            x = tf.reverse(x, axis=[-1])
        return x - mean

    return preprocess


def resize_shorter(image, size):
    """Shorter side to `size`, as `preprocessing.load_image` does (same rounding).

    Args:
        image: float `(H, W, C)` or a batch `(N, H, W, C)`.
        size: the shorter side after resizing (bilinear, antialiased).

    Returns:
        The resized image or batch.
    """
    shape = tf.shape(image)
    h, w = tf.cast(shape[-3], tf.float64), tf.cast(shape[-2], tf.float64)
    scale = size / tf.minimum(h, w)
    new = tf.maximum(size, tf.cast(tf.round(tf.stack([h, w]) * scale), tf.int32))
    # At scale 1 the antialiased bilinear kernel weighs each pixel 1 and its
    # neighbours 0, so skipping the resize changes no bit (tested); images
    # already at 256, as Caffe-era clients send them, then cost nothing here.
    return tf.cond(
        tf.reduce_all(new == shape[-3:-1]),
        lambda: tf.cast(image, tf.float32),
        lambda: tf.image.resize(image, new, method="bilinear", antialias=True),
    )


def center_crop_tensor(image, size):
    """The centre `size` crop of `(H, W, C)` or `(N, H, W, C)`, at Caffe's offset.

    The tensor twin of `preprocessing.center_crop`: offsets `(H - size) // 2`
    and `(W - size) // 2`.
    """
    shape = tf.shape(image)
    top, left = (shape[-3] - size) // 2, (shape[-2] - size) // 2
    crop = image[..., top : top + size, left : left + size, :]
    static = crop.shape.as_list()
    static[-3:-1] = [size, size]
    crop.set_shape(static)
    return crop


def _elements(ds):
    """`ds` as `(image, label)` pairs; TFDS-style dicts are accepted too."""
    if isinstance(ds.element_spec, collections.abc.Mapping):
        return ds.map(lambda ex: (ex["image"], ex["label"]))
    return ds


def train_pipeline(
    ds,
    *,
    input_size,
    batch_size,
    preprocessing,
    seed=0,
    epoch=0,
    skip_batches=0,
    flip=True,
    pca_std=0.1,
    shuffle_buffer=10_000,
    resize=256,
    num_parallel=tf.data.AUTOTUNE,
    drop_remainder=True,
):
    """One epoch of AlexNet training batches, reproducible from `(seed, epoch)`.

    Each image: shorter side resized to `resize` (bilinear, antialiased; small
    images such as CIFAR's are upsampled), a random `input_size` square crop,
    a random horizontal flip, PCA lighting noise (`alpha ~ N(0, pca_std)` per
    eigenvector, per image; added to every pixel and not clipped, as in the
    paper and fb.resnet.torch), then `preprocessing`.

    The order is a seeded permutation of the dataset, exact for datasets from
    `open_dataset` whose references fit in memory (image folders, TFDS sets up
    to `data_sources.MATERIALIZE_MAX_BYTES`); they are shuffled before they
    are decoded. Any other dataset goes through a `shuffle_buffer` shuffle
    seeded from `(seed, epoch)` (its order then also depends on TensorFlow's
    global seed, if one is set). Every random augmentation uses stateless ops
    seeded from `(seed, epoch, index)`, where `index` is the element's
    position in `ds`, so it does not depend on the order, the parallelism or
    where the epoch was resumed.

    Args:
        ds: a dataset of `(image, label)`: uint8 `(H, W, 3)` images of any size
            and integer labels, in a fixed order (as from `open_dataset`).
        input_size: the crop size (224 or 227 for AlexNet).
        batch_size: images per batch.
        preprocessing: the weights' metadata `{"color_order": "BGR" | "RGB",
            "mean": [3 floats] in that order}` (channels are reordered and the
            mean subtracted, 0..255 pixels, as `preprocess_input` does); a
            variant name (`"bvlc"`); or `None` for RGB 0..255.
        seed: the run's seed (`None` means 0: the order is always reproducible).
        epoch: the epoch; each epoch has its own order and augmentations.
        skip_batches: start at this batch of the epoch (to resume it).
        flip: random horizontal flips.
        pca_std: the standard deviation of the lighting noise (0 disables it).
        shuffle_buffer: the buffer size when the order cannot be a permutation.
        resize: the shorter side before cropping.
        num_parallel: parallel calls of the per-image map.
        drop_remainder: drop the last, smaller batch.

    Returns:
        A dataset of `(x, y)`: float32 `(B, input_size, input_size, 3)` and int32
        `(B,)`. One pass is one epoch (call again with `epoch + 1`).

    Files that fail to decode are dropped (`ignore_errors`). The skip of
    `skip_batches` happens before decoding, so such a file before the resume
    point would shift a resumed epoch by one image; `open_dataset` skips the
    files its check finds, which leaves only files that decode partly.

    Example:

    >>> from alexnet_keras.data.pipelines import open_dataset, train_pipeline
    >>> splits, info = open_dataset("folder:../shared/data/cifar10-mini")
    >>> batches = train_pipeline(splits["train"], input_size=227, batch_size=4,
    ...                          preprocessing={"color_order": "BGR", "mean": [104, 117, 123]})
    >>> x, y = next(iter(batches))
    >>> x.shape, x.dtype.name, y.shape, y.dtype.name
    (TensorShape([4, 227, 227, 3]), 'float32', TensorShape([4]), 'int32')
    """
    _check_sizes(input_size, batch_size, resize)
    if skip_batches < 0:
        raise ValueError(f"Expected skip_batches >= 0. Received: skip_batches={skip_batches}")
    preprocess = preprocess_fn(preprocessing, input_size)
    seed, epoch = (0 if seed is None else int(seed)), int(epoch)
    base_seed = tf.constant([seed, epoch], tf.int64)
    eigvec = tf.constant(IMAGENET_PCA_EIGVEC, tf.float32) * 255.0
    eigval = tf.constant(IMAGENET_PCA_EIGVAL, tf.float32)

    def augment(index, image):
        seeds = tf.random.experimental.stateless_split(
            tf.random.experimental.stateless_fold_in(base_seed, index), 3
        )
        x = resize_shorter(tf.cast(image, tf.float32), resize)
        x = tf.image.stateless_random_crop(x, [input_size, input_size, 3], seed=seeds[0])
        if flip:
            x = tf.image.stateless_random_flip_left_right(x, seed=seeds[1])
        if pca_std:
            alpha = tf.random.stateless_normal([3], seed=seeds[2], stddev=pca_std)
            x = x + tf.linalg.matvec(eigvec, alpha * eigval)
        return preprocess(x)

    skip = skip_batches * batch_size
    source = raw_source(ds)
    arrays = source.arrays() if source is not None else None
    if arrays is not None:
        raw, labels = arrays
        order = seeded_permutation(len(raw), seed, epoch)[skip:]
        elements = tf.data.Dataset.from_tensor_slices(
            (order.astype(np.int64), tf.constant(raw[order], tf.string), labels[order])
        )
    else:
        stream = source.stream if source is not None else _elements(ds)
        elements = stream.enumerate().map(lambda i, el: (i, el[0], el[1]))
        elements = elements.shuffle(
            shuffle_buffer,
            seed=(seed * 1_000_003 + epoch) % (1 << 63),
            reshuffle_each_iteration=False,
        ).skip(skip)
    if source is not None:
        decode = lambda raw: decode_image(raw, source.is_path)
    else:
        decode = lambda image: image
    out = elements.map(
        lambda i, raw, label: (augment(i, decode(raw)), tf.cast(label, tf.int32)),
        num_parallel_calls=num_parallel,
        deterministic=True,
    )
    if source is not None and source.is_path:
        out = out.ignore_errors(log_warning=True)
    out = out.batch(
        batch_size,
        drop_remainder=drop_remainder,
        num_parallel_calls=num_parallel,
        deterministic=True,
    )
    return out.prefetch(tf.data.AUTOTUNE)


def eval_pipeline(
    ds,
    *,
    input_size,
    batch_size,
    preprocessing,
    ten_crop=False,
    resize=256,
    num_parallel=tf.data.AUTOTUNE,
):
    """Evaluation batches: Caffe's test-phase centre crop, or its ten crops.

    Each image's shorter side is resized to `resize` (as
    `preprocessing.load_image`), then cropped as `preprocessing.center_crop`
    (offset `(256 - 227) // 2 = 14` at 227) or `preprocessing.ten_crop`
    (4 corners, centre, then the same 5 mirrored), then preprocessed. Every
    example is kept, in order; the last batch may be smaller.

    Args:
        ds: a dataset of `(image, label)`, as from `open_dataset`.
        input_size: the crop size.
        batch_size: images per batch.
        preprocessing: as for `train_pipeline`.
        ten_crop: return 10 views per image.
        resize: the shorter side before cropping.
        num_parallel: parallel calls of the per-image map.

    Returns:
        A dataset of `(x, y)`: float32 `(B, S, S, 3)`, or `(B, 10, S, S, 3)` with
        `ten_crop`, and int32 `(B,)`.

    Example:

    >>> from alexnet_keras.data.pipelines import eval_pipeline, open_dataset
    >>> splits, info = open_dataset("folder:../shared/data/cifar10-mini")
    >>> batches = eval_pipeline(splits["eval"], input_size=227, batch_size=8,
    ...                         preprocessing="bvlc", ten_crop=True)
    >>> [tuple(x.shape) for x, y in batches][-1]
    (4, 10, 227, 227, 3)
    """
    _check_sizes(input_size, batch_size, resize)
    preprocess = preprocess_fn(preprocessing, input_size)
    size = input_size

    def views(image, label):
        x = resize_shorter(tf.cast(image, tf.float32), resize)
        if ten_crop:
            h, w = tf.shape(x)[0], tf.shape(x)[1]
            crop = lambda y, x0: tf.slice(x, [y, x0, 0], [size, size, 3])
            crops = [crop(0, 0), crop(0, w - size), crop(h - size, 0)]
            crops += [crop(h - size, w - size), center_crop_tensor(x, size)]
            x = tf.stack(crops + [tf.reverse(c, axis=[1]) for c in crops])
        else:
            x = center_crop_tensor(x, size)
        return preprocess(x), tf.cast(label, tf.int32)

    out = _elements(ds).map(views, num_parallel_calls=num_parallel, deterministic=True)
    out = out.batch(batch_size, num_parallel_calls=num_parallel, deterministic=True)
    return out.prefetch(tf.data.AUTOTUNE)

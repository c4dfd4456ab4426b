"""tf.data input pipelines for training and evaluation, and the datasets they read.

`train_pipeline` is AlexNet's training augmentation: shorter side resized to
256, a random `input_size` crop, a random horizontal flip and the paper's PCA
lighting noise, then the weights' preprocessing. Every random choice is a pure
function of `(seed, epoch, element index)`, so a resumed epoch
(`skip_batches=n`) yields exactly the batches an uninterrupted run would.

`eval_pipeline` is Caffe's test phase: a resize to 256 by the evaluation
protocol (`"bvlc"`: a 256x256 warp; `"shorter-side"`), the centre crop at
Caffe's offset, or ten crops. The preprocessing itself (`preprocess_fn`,
`resize_shorter`, the crops) is `alexnet_keras.preprocessing`'s. A trainer
imports all of it, and `open_dataset`, from `alexnet_keras.data`.
"""

import collections.abc

import numpy as np
import tensorflow as tf

from alexnet_keras.data.image_folder import seeded_permutation
from alexnet_keras.data.prefetch import prefetched
from alexnet_keras.data.split import Split, drop_bad_records
from alexnet_keras.preprocessing import (
    PROTOCOLS,
    center_crop_tensor,
    preprocess_fn,
    resize_image,
    resize_shorter,
    ten_crop_tensor,
)

__all__ = [
    "IMAGENET_PCA_EIGVAL",
    "IMAGENET_PCA_EIGVEC",
    "average_crops",
    "eval_pipeline",
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


def _elements(ds):
    """Decoded `(image, label)` pairs of a `Split` or a dataset (TFDS-style dicts too)."""
    if isinstance(ds, Split):
        return ds.dataset()
    if isinstance(ds.element_spec, collections.abc.Mapping):
        return ds.map(lambda ex: (ex["image"], ex["label"]))
    return ds


def _epoch_order(ds, seed, epoch, skip, shuffle_buffer):
    """`(index, raw, label)` in the epoch's order from `skip` on, and the decoder of `raw`.

    A `Split` whose references fit in memory is permuted exactly; any other
    input streams through a seeded shuffle buffer. A `Split` is shuffled as
    references and decoded afterwards, each image once. Encoded records that
    fail their check (`split.record_ok`) are left out before the skip, so a
    resumed epoch is exactly the uninterrupted one.
    """
    checked = isinstance(ds, Split) and not ds.is_path
    if isinstance(ds, Split) and ds.arrays() is not None:
        raw, labels = ds.arrays()
        order = seeded_permutation(len(raw), seed, epoch)
        elements = tf.data.Dataset.from_tensor_slices(
            (order.astype(np.int64), tf.constant(raw[order], tf.string), labels[order])
        )
        if checked:
            return drop_bad_records(elements).skip(skip), ds.decode_checked()
        return elements.skip(skip), ds.decode
    if isinstance(ds, Split):
        stream, decode = ds.references, ds.decode
    else:
        stream, decode = _elements(ds), (lambda image: image)
    elements = stream.enumerate().map(lambda i, el: (i, el[0], el[1]))
    elements = elements.shuffle(
        shuffle_buffer,
        seed=(seed * 1_000_003 + epoch) % (1 << 63),
        reshuffle_each_iteration=False,
    )
    if checked:
        elements, decode = drop_bad_records(elements), ds.decode_checked()
    return elements.skip(skip), decode


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
    fused_crop=True,
):
    """One epoch of AlexNet training batches, reproducible from `(seed, epoch)`.

    Each image: shorter side resized to `resize` (bilinear, antialiased; small
    images such as CIFAR's are upsampled), a random `input_size` square crop,
    a random horizontal flip, PCA lighting noise (`alpha ~ N(0, pca_std)` per
    eigenvector, per image; added to every pixel and not clipped, as in the
    paper and fb.resnet.torch), then `preprocessing`.

    The order is a seeded permutation of the dataset, exact for a `Split`
    whose references fit in memory (image folders, TFDS sets up to
    `data.sources.MATERIALIZE_MAX_BYTES`, and `split.take(n)` of those). A
    `Split` is shuffled as references and each image is decoded once, after
    the shuffle. Any other dataset goes through a `shuffle_buffer` shuffle
    seeded from `(seed, epoch)` (its order then also depends on TensorFlow's
    global seed, if one is set). Every random augmentation uses stateless ops
    seeded from `(seed, epoch, index)`, where `index` is the element's
    position in `ds`, so it does not depend on the order, the parallelism or
    where the epoch was resumed.

    Args:
        ds: a `Split` from `open_dataset`, or a dataset of `(image, label)`:
            uint8 `(H, W, 3)` images of any size and integer labels, in a
            fixed order.
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
        fused_crop: for a `Split` of encoded images, decode and resize only
            the crop's window (`data.crop_decode`): the same crop offsets, the
            pixels equal within float rounding (<= 0.004 of 255 measured), a
            fraction of the work. `False` decodes and resizes whole images.

    Returns:
        A dataset of `(x, y)`: float32 `(B, input_size, input_size, 3)` and int32
        `(B,)`. One pass is one epoch (call again with `epoch + 1`).

    Encoded records (TFDS) whose bytes, header or size fail their check
    (`split.record_ok`, the bounds of `limits`) are left out, with one warning
    line each, before the skip of `skip_batches`: a resumed epoch stays the
    uninterrupted one. Images that still fail to decode are dropped
    (`ignore_errors`) after that skip, so such an image before the resume
    point would shift a resumed epoch by one image; `open_dataset` skips the
    files its check finds, which leaves files that changed since, or that
    decode partly.

    Example:

    >>> from alexnet_keras.data import open_dataset, train_pipeline
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

    elements, decode = _epoch_order(ds, seed, epoch, skip_batches * batch_size, shuffle_buffer)
    crop_decode = None
    if fused_crop and isinstance(ds, Split):
        crop_decode = ds.crop_decoder(checked=decode is not ds.decode)

    def augment(index, raw):
        seeds = tf.random.experimental.stateless_split(
            tf.random.experimental.stateless_fold_in(base_seed, index), 3
        )
        if crop_decode is not None:
            x = crop_decode(raw, size=input_size, resize=resize, seed=seeds[0])
        else:
            x = resize_shorter(tf.cast(decode(raw), tf.float32), resize)
            x = tf.image.stateless_random_crop(x, [input_size, input_size, 3], seed=seeds[0])
        if flip:
            x = tf.image.stateless_random_flip_left_right(x, seed=seeds[1])
        if pca_std:
            alpha = tf.random.stateless_normal([3], seed=seeds[2], stddev=pca_std)
            x = x + tf.linalg.matvec(eigvec, alpha * eigval)
        return preprocess(x)

    out = elements.map(
        lambda i, raw, label: (augment(i, raw), tf.cast(label, tf.int32)),
        num_parallel_calls=num_parallel,
        deterministic=True,
    )
    if isinstance(ds, Split):
        out = out.ignore_errors(log_warning=True)
    out = out.batch(
        batch_size,
        drop_remainder=drop_remainder,
        num_parallel_calls=num_parallel,
        deterministic=True,
    )
    return prefetched(out)


def eval_pipeline(
    ds,
    *,
    input_size,
    batch_size,
    preprocessing,
    ten_crop=False,
    resize=256,
    num_parallel=tf.data.AUTOTUNE,
    protocol="shorter-side",
):
    """Evaluation batches: Caffe's test-phase centre crop, or its ten crops.

    Each image is resized by `protocol` (`preprocessing.resize_image`, as
    `preprocessing.load_image`): its shorter side to `resize`, or with
    `"bvlc"` warped to `resize` x `resize`, as BVLC's published accuracy
    was measured. Then it is cropped as `preprocessing.center_crop`
    (offset `(256 - 227) // 2 = 14` at 227) or `preprocessing.ten_crop`
    (4 corners, centre, then the same 5 mirrored), then preprocessed. Every
    example is kept, in order; the last batch may be smaller.

    Args:
        ds: a `Split` from `open_dataset`, or a dataset of `(image, label)`.
        input_size: the crop size.
        batch_size: images per batch.
        preprocessing: as for `train_pipeline`.
        ten_crop: return 10 views per image.
        resize: the shorter side before cropping.
        num_parallel: parallel calls of the per-image map.
        protocol: `"shorter-side"` or `"bvlc"` (`preprocessing.PROTOCOLS`).

    Returns:
        A dataset of `(x, y)`: float32 `(B, S, S, 3)`, or `(B, 10, S, S, 3)` with
        `ten_crop`, and int32 `(B,)`.

    Example:

    >>> from alexnet_keras.data import eval_pipeline, open_dataset
    >>> splits, info = open_dataset("folder:../shared/data/cifar10-mini")
    >>> batches = eval_pipeline(splits["eval"], input_size=227, batch_size=8,
    ...                         preprocessing="bvlc", ten_crop=True)
    >>> [tuple(x.shape) for x, y in batches][-1]
    (4, 10, 227, 227, 3)
    """
    _check_sizes(input_size, batch_size, resize)
    preprocess = preprocess_fn(preprocessing, input_size)
    size = input_size
    if protocol not in PROTOCOLS:
        raise ValueError(f"Expected a protocol in {list(PROTOCOLS)}. Received: {protocol!r}")

    def views(image, label):
        x = resize_image(tf.cast(image, tf.float32), resize, protocol)
        x = ten_crop_tensor(x, size) if ten_crop else center_crop_tensor(x, size)
        return preprocess(x), tf.cast(label, tf.int32)

    out = _elements(ds).map(views, num_parallel_calls=num_parallel, deterministic=True)
    out = out.batch(batch_size, num_parallel_calls=num_parallel, deterministic=True)
    return prefetched(out)


def average_crops(fn, crops):
    """`fn` applied to every view, then averaged over the views (Caffe's oversample).

    The one ten-crop averaging: training, `evaluate` and `predict` call it on
    `eval_pipeline(..., ten_crop=True)` batches or `preprocessing.ten_crop` views.

    Args:
        fn: a function of a batch `(M, ...)`, e.g. a model returning `(M, classes)`.
        crops: a tensor `(N, V, ...)`: `V` views of each of `N` images.

    Returns:
        `(N, ...)`: the mean over the `V` views of `fn`'s output.

    Example:

    >>> import numpy as np
    >>> from alexnet_keras.data import average_crops
    >>> crops = np.arange(12, dtype=np.float32).reshape(2, 3, 2)
    >>> average_crops(lambda x: x * 2, crops).numpy().tolist()
    [[4.0, 6.0], [16.0, 18.0]]
    """
    crops = tf.convert_to_tensor(crops)
    shape = tf.shape(crops)
    flat = tf.reshape(crops, tf.concat([[-1], shape[2:]], 0))
    flat.set_shape([None, *crops.shape[2:]])
    out = fn(flat)
    views = tf.reshape(out, tf.concat([shape[:2], tf.shape(out)[1:]], 0))
    return tf.reduce_mean(views, axis=1)

"""cuda-convnet's in-memory CIFAR provider, for training cfg nets on small-image datasets.

cuda-convnet's `CIFARDataProvider` (`convdata.py`) hands the net the raw
0..255 pixels minus `batches.meta`'s `data_mean`, the per-pixel mean of the
training images, with no crop, no flip and no scaling. `MemoryProvider` does
the same for any dataset from `data.open_dataset` whose images all have the
net's size: it decodes the whole split once into memory (CIFAR-10's 50,000
training images are 150 MB), computes the per-pixel mean of the training
images, and serves batches of `image - mean` in NHWC.

The order of each epoch is a seeded permutation, a pure function of
`(seed, epoch)`, so a resumed epoch (`skip_batches=n`) yields exactly the
batches an uninterrupted run would. (cuda-convnet walks its pre-shuffled
batch files in a fixed order instead.)
"""

import numpy as np

from alexnet_keras.data.image_folder import seeded_permutation

__all__ = ["MemoryProvider", "batches", "load_split"]


def load_split(ds, name, size, channels=3):
    """One split of `open_dataset` as uint8 `(N, size, size, channels)` images and int32 labels.

    `ds` is a `data.Split` (decoded once, here) or a dataset of `(image, label)`.

    Raises:
        ValueError: naming `name`: images of another size (no crop is made),
            or no images.
    """
    import tensorflow as tf

    from alexnet_keras.data.prefetch import prefetched
    from alexnet_keras.data.split import Split

    if isinstance(ds, Split):
        ds = ds.dataset()
    want = (size, size, channels)

    def fail(shape):
        shown = "x".join(map(str, shape))
        raise ValueError(
            f"{name}: images are {shown}; this net reads {size}x{size}x{channels} images with "
            "no crop (cuda-convnet's CIFAR provider)"
        )

    def checked(x, y):
        # A batch of mixed sizes fails inside TF: batch placeholders, report the first size.
        shape = tf.shape(x)
        ok = tf.reduce_all(tf.equal(shape, want))
        x = tf.cond(ok, lambda: tf.reshape(x, want), lambda: tf.zeros(want, x.dtype))
        return x, y, shape

    images, labels = [], []
    for x, y, shapes in prefetched(ds.map(checked).batch(4096)).as_numpy_iterator():
        bad = np.flatnonzero((shapes != want).any(axis=1))
        if len(bad):
            fail(shapes[bad[0]])
        images.append(x.astype(np.uint8))
        labels.append(y.astype(np.int32))
    if not images:
        raise ValueError(f"{name}: no images")
    return np.concatenate(images), np.concatenate(labels)


def batches(arrays, mean, order, batch_size, drop_remainder=False):
    """Batches `(images[order] - mean, labels[order])`, float32 NHWC and int32.

    `arrays` are numpy arrays or tensors; pass tensors to reuse them across epochs.
    """
    import tensorflow as tf

    from alexnet_keras.data.prefetch import prefetched

    images, labels = (tf.convert_to_tensor(a) for a in arrays)
    mean = tf.constant(np.asarray(mean, np.float32))

    def gather(index):
        x = tf.cast(tf.gather(images, index), tf.float32) - mean
        return x, tf.gather(labels, index)

    ds = tf.data.Dataset.from_tensor_slices(np.asarray(order, np.int64))
    ds = ds.batch(batch_size, drop_remainder=drop_remainder).map(gather)
    return prefetched(ds)


class MemoryProvider:
    """Training and evaluation batches of `image - per-pixel training mean`, in memory.

    Args:
        splits: `{"train": split, "eval": split}` from `data.open_dataset`.
        name: the dataset's name, for messages.
        image_size: the net's input side; every image must have it.
        channels: the net's input channels.
        batch_size: images per batch.
        seed: the run's seed (`None` means 0).
        mean: a `(size, size, channels)` mean image to use instead of the
            training images' (a checkpoint's `batches.meta`).
        arrays: `((train images, labels), (eval images, labels))` already
            loaded (`load_split`), instead of `splits`' (e.g. chosen batches).

    Attributes:
        mean: float32 `(size, size, channels)`, the subtracted mean image.
        num_train, num_eval: the split sizes.

    Example:

    >>> from alexnet_keras.data import open_dataset
    >>> from alexnet_keras.cuda_convnet.cifar_provider import MemoryProvider
    >>> splits, info = open_dataset("folder:../shared/data/cifar10-mini")
    >>> provider = MemoryProvider(splits, "cifar10-mini", image_size=32, batch_size=50)
    >>> x, y = next(iter(provider.train(epoch=0)))
    >>> x.shape, provider.mean.shape, provider.num_train // 50
    (TensorShape([50, 32, 32, 3]), (32, 32, 3), 4)
    """

    def __init__(self, splits, name, *, image_size, channels=3, batch_size=128, seed=0,
                 mean=None, arrays=None):  # fmt: skip
        import tensorflow as tf

        self.batch_size, self.seed = batch_size, 0 if seed is None else int(seed)
        if arrays is None:
            arrays = [load_split(splits[k], name, image_size, channels) for k in ("train", "eval")]
        train, evaluation = arrays
        if mean is None:
            # float64 accumulation: a float32 sum of 50,000 uint8 images loses digits.
            mean = train[0].mean(axis=0, dtype=np.float64)
        self.mean = np.asarray(mean, np.float32)
        self.num_train, self.num_eval = len(train[1]), len(evaluation[1])
        # Tensors once, not a 150 MB constant per epoch.
        self._train = tuple(tf.constant(a) for a in train)
        self._eval = tuple(tf.constant(a) for a in evaluation)

    def steps_per_epoch(self):
        """Full batches per epoch (the last, smaller one is dropped)."""
        return self.num_train // self.batch_size

    def train(self, epoch, skip_batches=0):
        """One epoch of `(x, y)` batches, the order seeded by `(seed, epoch)`."""
        order = seeded_permutation(self.num_train, self.seed, int(epoch), 10)
        order = order[skip_batches * self.batch_size :]
        return batches(self._train, self.mean, order, self.batch_size, drop_remainder=True)

    def eval(self):
        """Every eval image once, in order; the last batch may be smaller."""
        return batches(self._eval, self.mean, np.arange(self.num_eval), self.batch_size)

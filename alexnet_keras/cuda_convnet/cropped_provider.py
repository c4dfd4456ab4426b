"""cuda-convnet's cropped CIFAR provider: random 24x24 crops with mirroring, multiview testing.

What cuda-convnet 1 does (github dnouri/cuda-convnet, the public SVN trunk;
`convdata.py` `CroppedCIFARDataProvider`, l.59-122 at HEAD 504490c):

- The crop is `32 - 2*border` pixels, `border` being `--crop-border`
  (default 4, `convnet.py` l.180): 24x24 (l.63-64).
- Training (l.115-122): for each image a start row and a start column,
  each uniform in `0..2*border` (9 positions per axis), and with
  probability 1/2 a mirror of the crop's columns (left-right).
- The mean (l.77, l.85): `batches.meta`'s 32x32 `data_mean`, cut to its
  **centre** 24x24 window, is subtracted from every crop, wherever the
  crop was taken and whether or not it was mirrored (the crop is mirrored
  before the mean is subtracted). No scaling.
- Testing without `--multiview-test`: the centre crop (l.112-114).
- Testing with `--multiview-test=1`: several views of each image. Their
  softmax outputs are **averaged** (probabilities, not logits: `src/worker.cu`
  `MultiviewTestWorker::run`, l.142-174, sums the softmax layer's
  activations over the views and scales by `1/numViews`, l.152-162), and the
  logreg cost reads that average: the error is whether its largest class is
  the label, the nll `-log` of its label's probability
  (`src/layer_kernels.cu` `kLogregCost`, l.41-74). The views changed:
  - the 2011 code (`convdata.py` l.66 and l.103-110 at 7f28479, 2011-12-21,
    the code behind the 13 % of Methodology.wiki): 9 views, the crops
    starting at every `(y, x)` in `{0, border, 2*border}^2` (corners, side
    midpoints, centre), no mirror. TrainingNet.wiki said "9 patches" until
    2012-01-20.
  - from a2a6af8 (2012-03-13, with the 11pct files): 10 views (HEAD
    l.66 and l.103-111): the crops at `(0, 0)`, `(0, 2b)`, `(b, b)`,
    `(2b, 0)`, `(2b, 2b)` (`(row, column)`), then the same five mirrored.

`CroppedProvider` serves these from memory, NHWC. Its random choices are
SplitMix64 keys (`data.image_folder.seeded_integers`) of `(seed, epoch)`,
indexed by the position in the epoch's seeded order, so a resumed epoch
(`skip_batches`) yields exactly the batches an uninterrupted run would.

Methodology's batches: CIFAR-10's `data_batch_1..5` are batches 1-5 and the
test batch is 6 (Data.wiki l.11-27). TFDS `cifar10` numbers its training
examples `train_00000..train_49999` in `data_batch_1..5` order
(`tensorflow_datasets/image_classification/cifar.py`, `_generate_examples`:
one running index over the five files), so batch `b` is ids
`(b-1)*10000 .. b*10000-1`. `select_batches` picks them. A copy prepared
another way may number them otherwise: the archive's `data_batch_1` starts
with the labels 6 9 9 4 1 1 2 7 8 3 (every loader of the original files,
e.g. `keras.datasets.cifar10`, reads them so), and `follows_archive` checks
that ids `train_00000..09` carry them.
"""

import numpy as np

from alexnet_keras.cuda_convnet.cifar_provider import MemoryProvider
from alexnet_keras.data.image_folder import seeded_integers, seeded_permutation

__all__ = ["BORDER", "CroppedProvider", "VIEWS", "follows_archive", "parse_range", "select_batches",
           "view_offsets"]  # fmt: skip

BORDER = 4  # `--crop-border`'s default, `convnet.py` l.180
VIEWS = {"2011": 9, "2012": 10}  # multiview views by code era (see the module docstring)
CIFAR_BATCH = 10000  # images per data_batch_N file
TEST_BATCH = 6  # the test set, as cuda-convnet's CIFAR-10 folder numbers it
ARCHIVE_FIRST_LABELS = (6, 9, 9, 4, 1, 1, 2, 7, 8, 3)  # data_batch_1's first ten


def view_offsets(border, era="2012"):
    """The multiview views: `[(row start, column start, mirrored)]` in cuda-convnet's order.

    Example:

    >>> view_offsets(4)[:3], len(view_offsets(4)), len(view_offsets(4, "2011"))
    ([(0, 0, False), (0, 8, False), (4, 4, False)], 10, 9)
    """
    b = border
    if era == "2011":
        return [(y, x, False) for y in (0, b, 2 * b) for x in (0, b, 2 * b)]
    if era != "2012":
        raise ValueError(f"era must be 2011 or 2012. Received: {era!r}")
    five = [(0, 0), (0, 2 * b), (b, b), (2 * b, 0), (2 * b, 2 * b)]
    return [(y, x, False) for y, x in five] + [(y, x, True) for y, x in five]


def parse_range(text, flag):
    """cuda-convnet's batch range, `"N"` or `"N-M"` with `1 <= N <= M <= 6`, as a tuple.

    Example:

    >>> parse_range("1-4", "--train-range"), parse_range("6", "--test-range")
    ((1, 2, 3, 4), (6,))
    """
    parts = str(text).split("-")
    ok = 1 <= len(parts) <= 2 and all(p.strip().isdigit() for p in parts)
    first, last = (int(parts[0]), int(parts[-1])) if ok else (0, 0)
    if not (ok and 1 <= first <= last <= TEST_BATCH):
        raise ValueError(
            f"{flag} {text}: expected N or N-M within 1-6 (CIFAR-10's data_batch_1..5; 6 is "
            "the test batch)"
        )
    return tuple(range(first, last + 1))


def select_batches(batches, train, test, train_ids):
    """The images and labels of cuda-convnet CIFAR-10 `batches`, in batch order.

    Args:
        batches: batch numbers, 1-5 from the training split, 6 the test split.
        train, test: `(images, labels)` of the TFDS splits, in stored order.
        train_ids: the training split's `id`s (`"train_01234"`), in the same order.

    Example:

    >>> ids = np.array(["train_10001", "train_00002", "train_20000"])
    >>> train = (np.array([7, 8, 9]), np.array([0, 1, 2]))
    >>> [a.tolist() for a in select_batches((3, 1), train, None, ids)]
    [[9, 8], [2, 1]]
    """
    index = np.array([int(str(i).rsplit("_", 1)[-1]) for i in train_ids], np.int64)
    order = np.argsort(index, kind="stable")
    parts = []
    for b in batches:
        if b == TEST_BATCH:
            parts.append(test)
            continue
        rows = order[(index[order] >= (b - 1) * CIFAR_BATCH) & (index[order] < b * CIFAR_BATCH)]
        parts.append(tuple(a[rows] for a in train))
    return tuple(np.concatenate([p[k] for p in parts]) for k in range(2))


def follows_archive(labels, ids):
    """Whether `ids` `train_00000..09` carry `data_batch_1`'s first labels (`ARCHIVE_FIRST_LABELS`).

    Example:

    >>> ids = np.array([f"train_{i:05d}" for i in range(10)])[::-1]
    >>> follows_archive(np.array(ARCHIVE_FIRST_LABELS[::-1]), ids)
    True
    """
    first = {f"train_{i:05d}": None for i in range(len(ARCHIVE_FIRST_LABELS))}
    for i, label in zip(ids, labels, strict=True):
        if str(i) in first:
            first[str(i)] = int(label)
    return tuple(first.values()) == ARCHIVE_FIRST_LABELS


def _crop(images, rows, cols):
    """`images[i][rows[i]][:, cols[i]]` for a batch: per-image row and column indices."""
    import tensorflow as tf

    out = tf.gather(images, rows, axis=1, batch_dims=1)
    return tf.gather(out, cols, axis=2, batch_dims=1)


class CroppedProvider(MemoryProvider):
    """`MemoryProvider` with cuda-convnet's crops: random mirrored crops to train, views to test.

    Args:
        splits, name, channels, batch_size, seed, arrays: as `MemoryProvider`.
        image_size: the dataset's side (32).
        crop: the net's side (24); `image_size - crop` must be even.
        mean: a full `(image_size, image_size, channels)` mean, or None (the
            training images'); its centre `crop` window is subtracted.
        multiview: `eval()` yields `(N, views, crop, crop, C)` (see `view_offsets`).
        era: "2011" (9 views) or "2012" (10 views).

    Example:

    >>> from alexnet_keras.data import open_dataset
    >>> splits, info = open_dataset("folder:../shared/data/cifar10-mini")
    >>> p = CroppedProvider(splits, "mini", image_size=32, crop=24, batch_size=50, multiview=True)
    >>> x, y = next(iter(p.train(epoch=0)))
    >>> v, _ = next(iter(p.eval()))
    >>> x.shape, v.shape, p.crop_mean.shape
    (TensorShape([50, 24, 24, 3]), TensorShape([50, 10, 24, 24, 3]), (24, 24, 3))
    """

    def __init__(self, splits, name, *, image_size, crop, channels=3, batch_size=128, seed=0,
                 mean=None, multiview=False, era="2012", arrays=None):  # fmt: skip
        border, odd = divmod(image_size - crop, 2)
        if crop < 1 or border < 1 or odd:
            raise ValueError(
                f"{name}: a {crop}x{crop} crop of {image_size}x{image_size} images needs an "
                "even border of at least 1 pixel"
            )
        super().__init__(splits, name, image_size=image_size, channels=channels,
                         batch_size=batch_size, seed=seed, mean=mean, arrays=arrays)  # fmt: skip
        self.border, self.crop = border, crop
        self.views = view_offsets(border, era) if multiview else [(border, border, False)]
        self.multiview, self.era = multiview, era
        self.crop_mean = self.mean[border : border + crop, border : border + crop]

    def choices(self, epoch):
        """Per position of the epoch: `(row start, column start, mirrored)` arrays."""
        span = 2 * self.border + 1
        pick = seeded_integers(self.num_train, span * span * 2, self.seed, int(epoch), 24)
        return pick // (2 * span), pick // 2 % span, pick % 2 == 1

    def _batches(self, arrays, order, starts, drop_remainder):
        """Batches of `(crops - centre mean, labels)`; `starts` are per image `(y, x, flip)`
        arrays of shape `(N,)` or `(N, V)` (views)."""
        import tensorflow as tf

        from alexnet_keras.data.prefetch import prefetched

        images, labels = arrays
        mean = tf.constant(self.crop_mean)
        span = tf.range(self.crop, dtype=tf.int64)

        def gather(index, y, x, flip):
            rows = y[..., None] + span
            cols = tf.where(
                flip[..., None], x[..., None] + self.crop - 1 - span, x[..., None] + span
            )
            pics = tf.gather(images, index)
            if rows.shape.rank == 3:  # views: (B, V, crop) -> crops of (B*V) repeated images
                v = tf.shape(rows)[1]
                pics = tf.repeat(pics, v, axis=0)
                out = _crop(
                    pics, tf.reshape(rows, [-1, self.crop]), tf.reshape(cols, [-1, self.crop])
                )
                out = tf.reshape(out, [-1, v, self.crop, self.crop, out.shape[-1]])
            else:
                out = _crop(pics, rows, cols)
            return tf.cast(out, tf.float32) - mean, tf.gather(labels, index)

        columns = (np.asarray(order, np.int64), *(np.asarray(s) for s in starts))
        ds = tf.data.Dataset.from_tensor_slices(columns)
        ds = ds.batch(self.batch_size, drop_remainder=drop_remainder).map(gather)
        return prefetched(ds)

    def train(self, epoch, skip_batches=0):
        """One epoch of random mirrored crops, order and crops seeded by `(seed, epoch)`."""
        skip = skip_batches * self.batch_size
        order = seeded_permutation(self.num_train, self.seed, int(epoch), 10)[skip:]
        y, x, flip = (a[skip:] for a in self.choices(epoch))
        return self._batches(self._train, order, (y, x, flip), drop_remainder=True)

    def eval(self):
        """Every eval image once, in order: its centre crop, or `(N, V, ...)` views."""
        n = self.num_eval
        y, x, flip = (np.array([v[k] for v in self.views]) for k in range(3))
        if not self.multiview:
            starts = (np.full(n, y[0]), np.full(n, x[0]), np.zeros(n, bool))
        else:
            starts = tuple(np.tile(a, (n, 1)) for a in (y, x, flip))
        return self._batches(self._eval, np.arange(n), starts, drop_remainder=False)

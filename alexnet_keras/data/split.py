"""A dataset split as references and their decoder: the unit the pipelines read.

`open_dataset` (in `data.sources`) returns one `Split` per split. It holds
cheap references to the images (file paths or encoded TFDS records) and the
function that decodes one, never decoded pixels and never a side table, so a
pipeline can shuffle the references and decode each image once, after the
shuffle.

Every image is checked before it is decoded (`image_graph.image_problem`:
byte length, header, the size it claims, the bounds of `limits`), as served
images are. A bad encoded record (a TFDS example) is skipped with one warning
line naming its index, before the pipelines' resume skip, so a resumed epoch
is still the uninterrupted one; a file that changed after the folder listing
checked it fails its decode and is dropped (`ignore_errors`).
"""

import dataclasses
import functools
import sys

import numpy as np
import tensorflow as tf

from alexnet_keras.data.crop_decode import random_crop
from alexnet_keras.data.image_graph import check, check_size, image_problem
from alexnet_keras.data.prefetch import prefetched

__all__ = ["Split", "decode_image", "decode_random_crop", "drop_bad_records", "read_all",
           "record_ok"]  # fmt: skip


def decode_image(raw, is_path=False, checked=False):
    """Checks, then decodes a JPEG, PNG, BMP, GIF (first frame) or WebP to uint8 `(H, W, 3)`.

    Args:
        raw: a scalar string tensor: the encoded bytes, or a path if `is_path`.
        is_path: read the file named by `raw` first.
        checked: these very bytes passed `record_ok` already; the header is not
            read again (the decoded size still is checked).

    Returns:
        uint8 tensor of shape `(H, W, 3)`; grey images are repeated to RGB, an
        alpha channel is dropped.

    Raises:
        tf.errors.InvalidArgumentError: (when run) the bytes are not an image
            or break a bound of `limits` (`image_graph.image_problem`), before
            anything is allocated for the pixels; the message names the file,
            if `is_path`, and the problem.

    Example:

    >>> import tensorflow as tf
    >>> from alexnet_keras.data.split import decode_image
    >>> decode_image(tf.io.encode_png(tf.zeros((20, 30, 1), tf.uint8))).shape
    TensorShape([20, 30, 3])
    """
    data, what = _checked_bytes(raw, is_path, checked)
    image = tf.io.decode_image(data, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    # The decoded size too: the bound holds even where a decoder read a header otherwise.
    with tf.control_dependencies([check_size(tf.shape(image), what)]):
        return tf.identity(image)


def _checked_bytes(raw, is_path, checked):
    """`(bytes, what)`: the encoded image, released only after its check passed."""
    data = tf.io.read_file(raw) if is_path else raw
    what = tf.strings.join([raw, ": "]) if is_path else tf.constant("")
    problem = tf.constant("") if checked and not is_path else image_problem(data)
    with tf.control_dependencies([check(tf.equal(problem, ""), tf.strings.join([what, problem]))]):
        return tf.identity(data), what


def decode_random_crop(raw, *, size, resize, seed, is_path=False, checked=False):
    """`decode_image`'s checks, then only the training crop's window (`crop_decode.random_crop`).

    Returns:
        float32 `(size, size, 3)`: the crop of the image resized to a shorter
        side of `resize`, at the offset `seed` draws.

    Example:

    >>> import tensorflow as tf
    >>> from alexnet_keras.data.split import decode_random_crop
    >>> data = tf.io.encode_jpeg(tf.zeros((300, 400, 3), tf.uint8))
    >>> decode_random_crop(data, size=227, resize=256, seed=tf.constant([0, 1])).shape
    TensorShape([227, 227, 3])
    """
    data, what = _checked_bytes(raw, is_path, checked)

    def checked_size(shape):
        with tf.control_dependencies([check_size(shape, what)]):
            return tf.identity(shape)

    return random_crop(data, size=size, resize=resize, seed=seed, checked_size=checked_size)


def record_ok(index, raw):
    """Whether encoded image bytes may be decoded; if not, prints one warning line.

    The filter of encoded records (`Split.dataset`, the training order): a
    pure function of the bytes, so skipping a record is deterministic.

    Args:
        index: the record's position in its split (named in the warning).
        raw: a scalar string tensor, the encoded image.

    Returns:
        A scalar bool tensor.

    Example:

    >>> import tensorflow as tf
    >>> from alexnet_keras.data.split import record_ok
    >>> bool(record_ok(0, tf.io.encode_png(tf.zeros((40, 50, 3), tf.uint8))))
    True
    """
    problem = image_problem(raw)
    ok = tf.equal(problem, "")

    def warn():
        message = tf.strings.join(
            ["Warning: dataset record ", tf.strings.as_string(index), " skipped: ", problem]
        )
        tf.print(message, output_stream=sys.stderr)
        return ok

    return tf.cond(ok, lambda: ok, warn)


def drop_bad_records(elements):
    """A dataset of `(index, raw, ...)` without the records `record_ok` refuses.

    The checks run as a parallel, deterministic map (a `filter` predicate
    would run one at a time); the order is kept.
    """
    checked = elements.map(
        lambda i, raw, *rest: (record_ok(i, raw), (i, raw, *rest)),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    # Named functions: AutoGraph cannot tell two lambdas on one line apart, and says so.
    return checked.filter(_passed).map(_element)


def _passed(ok, element):
    return ok


def _element(ok, element):
    return element


@dataclasses.dataclass(eq=False)
class Split:
    """One split of a dataset: the references to its images, and their decoder.

    A split holds cheap references (file paths or encoded records), not
    pixels, so `data.train_pipeline` can permute the references and decode
    each image once, after the shuffle. Iterating a split decodes it in order.

    Attributes:
        references: a dataset of `(raw, label)` in the split's fixed order;
            `raw` is a file path if `is_path`, else encoded image bytes.
        size: the number of elements.
        is_path: whether `raw` is a path to read.
        load: `None`, or a function returning the references as `(raw,
            labels)` NumPy arrays (in the same order) that fit in memory; then
            the pipeline permutes them exactly. Its result is cached.
        decode: a function of one `raw` string tensor to a uint8 `(H, W, 3)`
            image tensor; default `decode_image`.

    Example:

    >>> from alexnet_keras.data.sources import open_dataset
    >>> splits, info = open_dataset("folder:../shared/data/cifar10-mini")
    >>> first = splits["train"].take(3)
    >>> len(first), first.arrays()[1].tolist(), [int(y) for _, y in first]
    (3, [0, 0, 0], [0, 0, 0])
    """

    references: tf.data.Dataset
    size: int
    is_path: bool
    load: object = None
    decode: object = None
    _arrays: tuple = dataclasses.field(default=None, repr=False)

    def __post_init__(self):
        if self.decode is None:
            self.decode = functools.partial(decode_image, is_path=self.is_path)

    def __len__(self):
        return self.size

    def decode_checked(self):
        """The decoder of references that passed `record_ok`: it does not check them again."""
        if isinstance(self.decode, functools.partial) and self.decode.func is decode_image:
            return functools.partial(decode_image, is_path=self.is_path, checked=True)
        return self.decode

    def crop_decoder(self, checked=False):
        """`decode_random_crop` for these references, or None for a custom `decode`.

        Args:
            checked: the references passed `record_ok` (see `decode_checked`).
        """
        if not (isinstance(self.decode, functools.partial) and self.decode.func is decode_image):
            return None
        return functools.partial(decode_random_crop, is_path=self.is_path, checked=checked)

    def arrays(self):
        """`(raw, labels)` NumPy arrays, or `None` if the split is too big."""
        if self.load is None:
            return None
        if self._arrays is None:
            self._arrays = self.load()
        return self._arrays

    def dataset(self):
        """The decoded `tf.data.Dataset` of `(image, label)`, in the split's order."""
        ds, decode = self.references, self.decode
        if not self.is_path:  # files were checked when the folder was listed
            ds = drop_bad_records(ds.enumerate().map(lambda i, el: (i, *el)))
            ds = ds.map(lambda i, raw, label: (raw, label))
            decode = self.decode_checked()
        ds = ds.map(
            lambda raw, label: (decode(raw), label),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        # An image that passed its check may still fail to decode (a file changed
        # since the listing, a corrupt body): dropping it beats ending a run.
        return ds.ignore_errors(log_warning=True)

    def __iter__(self):
        return iter(self.dataset())

    def take(self, count):
        """The first `count` elements (all for a negative `count`), still a `Split`.

        The result keeps the in-memory references, so the pipelines treat it as
        they treat a split of that size.
        """
        count = self.size if count < 0 else min(int(count), self.size)
        references = self.references.take(count)

        def load():
            # The parent's arrays if it holds them; else read only the first `count`.
            if self._arrays is not None:
                return tuple(a[:count] for a in self._arrays)
            return read_all(references)

        return Split(references, count, self.is_path, load if self.load else None, self.decode)


def read_all(references):
    """Every `(raw, label)` of a references dataset, as NumPy arrays."""
    raws, labels = [], []
    for raw, label in prefetched(references.batch(4096)).as_numpy_iterator():
        raws.append(raw.astype(object))
        labels.append(label)
    return np.concatenate(raws), np.concatenate(labels)

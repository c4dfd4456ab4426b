"""Datasets by name: TensorFlow Datasets sets and image folders, opened offline.

`open_dataset("cifar10")` or `open_dataset("folder:PATH")` returns a train and an
eval `tf.data.Dataset` of `(image, label)` pairs: `image` a decoded uint8
`(H, W, 3)` tensor of any size, `label` an int32 scalar. Both are unbatched,
unshuffled and in a fixed order, so that `data.train_pipeline` can
derive every random choice from `(seed, epoch, index)`.

Each returned dataset remembers where its elements come from (file paths, or
encoded TFDS records). `data.train_pipeline` uses that to shuffle the
cheap references and decode afterwards, instead of holding decoded images in a
shuffle buffer; see `raw_source`.
"""

import dataclasses
import os
import weakref

import numpy as np
import tensorflow as tf

from alexnet_keras.data.image_folder import list_image_folder, seeded_permutation

__all__ = [
    "DatasetInfo",
    "RawSource",
    "dataset_summary",
    "decode_image",
    "open_dataset",
    "raw_source",
]

# The eval split of a TFDS set, in order of preference.
EVAL_SPLITS = ("validation", "test")
# A TFDS set up to this size on disk is read into memory (encoded) on the first
# `train_pipeline` call, which makes its shuffle an exact permutation. Larger
# sets stream through a seeded shuffle buffer. It also stays well below the
# 2 GB limit of a serialized graph, which distribution strategies may build.
MATERIALIZE_MAX_BYTES = 1 << 30


@dataclasses.dataclass
class DatasetInfo:
    """What `open_dataset` opened.

    Attributes:
        name: `"cifar10"`, `"folder:/abs/path"`, ...
        class_names: the class names; the index is the label.
        num_examples: `{"train": int, "eval": int}`, after any hold-out split
            and without the skipped files.
        source: `"tfds"` or `"folder"`.
        eval_split: where the eval examples come from: `"test"`, `"val"`,
            `"validation"` or `"holdout"` (a seeded part of the training data).
        skipped: `{"train": int, "eval": int}`, files skipped at listing time
            as empty or not images (folder source). Files that pass that check
            but fail to decode are dropped by the pipeline and not counted.
    """

    name: str
    class_names: list
    num_examples: dict
    source: str
    eval_split: str
    skipped: dict = dataclasses.field(default_factory=lambda: {"train": 0, "eval": 0})


@dataclasses.dataclass(eq=False)
class RawSource:
    """Where a dataset's elements come from, before decoding.

    Attributes:
        stream: a dataset of `(raw, label)` in the dataset's order; `raw` is a
            file path if `is_path`, else encoded image bytes.
        is_path: whether `raw` is a path to read.
        size: the number of elements.
        load: `None`, or a function returning `(raw, labels)` NumPy arrays (in
            the same order) that fit in memory; then the pipeline can permute
            them exactly. Its result is cached.
    """

    stream: tf.data.Dataset
    is_path: bool
    size: int
    load: object = None
    _arrays: tuple = dataclasses.field(default=None, repr=False)

    def arrays(self):
        """`(raw, labels)` NumPy arrays, or `None` if the source is too big."""
        if self.load is None:
            return None
        if self._arrays is None:
            self._arrays = self.load()
        return self._arrays


_SOURCES = weakref.WeakKeyDictionary()


def raw_source(ds):
    """The `RawSource` of a dataset returned by `open_dataset`, else `None`.

    Any transformation of the dataset (`take`, `map`, ...) returns a new
    dataset, which has no raw source.
    """
    return _SOURCES.get(ds)


def decode_image(raw, is_path=False):
    """Decodes a JPEG, PNG, BMP or GIF (first frame) to a uint8 `(H, W, 3)` tensor.

    Args:
        raw: a scalar string tensor: the encoded bytes, or a path if `is_path`.
        is_path: read the file named by `raw` first.

    Returns:
        uint8 tensor of shape `(H, W, 3)`; grey images are repeated to RGB, an
        alpha channel is dropped.

    Example:

    >>> import tensorflow as tf
    >>> from alexnet_keras.data.sources import decode_image
    >>> decode_image(tf.io.encode_png(tf.zeros((4, 5, 1), tf.uint8))).shape
    TensorShape([4, 5, 3])
    """
    data = tf.io.read_file(raw) if is_path else raw
    image = tf.io.decode_image(data, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def _decoded(source):
    ds = source.stream.map(
        lambda raw, label: (decode_image(raw, source.is_path), label),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    if source.is_path:
        # A file that passed the listing-time check may still fail to decode;
        # dropping it beats ending a training run.
        ds = ds.ignore_errors(log_warning=True)
    _SOURCES[ds] = source
    return ds


def _file_dataset(paths, labels):
    stream = tf.data.Dataset.from_tensor_slices(
        (tf.constant(paths.tolist(), tf.string), tf.constant(labels, tf.int32))
    )
    source = RawSource(stream, True, len(paths), load=lambda: (paths, labels))
    return _decoded(source)


def _open_folder(path, *, seed, strict, holdout):
    listing = list_image_folder(path, seed=seed, strict=strict, holdout=holdout)
    train, evals = listing.files["train"], listing.files["eval"]
    info = DatasetInfo(
        name=listing.name,
        class_names=listing.class_names,
        num_examples={"train": len(train[0]), "eval": len(evals[0])},
        source="folder",
        eval_split=listing.eval_split,
        skipped=listing.skipped,
    )
    return {"train": _file_dataset(*train), "eval": _file_dataset(*evals)}, info


# ---------------------------------------------------------------------------
# TensorFlow Datasets.


def _prepare_hint(name, data_dir):
    return (
        f"Prepare it (needs the network, or the archive in the manual dir) with: "
        f"python -c \"import tensorflow_datasets as tfds; tfds.builder('{name}', "
        f"data_dir='{data_dir}').download_and_prepare()\", or point --data-dir / "
        "TFDS_DATA_DIR at the folder where it is prepared"
    )


def _open_tfds(name, *, data_dir, seed, holdout):
    import tensorflow_datasets as tfds

    data_dir = os.path.abspath(
        os.path.expanduser(
            data_dir or os.environ.get("TFDS_DATA_DIR") or os.path.join("~", "tensorflow_datasets")
        )
    )
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.DatasetNotFoundError:
        hint = f" ({name} is a folder: use folder:{name})" if os.path.isdir(name) else ""
        raise ValueError(
            f"Unknown dataset {name!r}{hint}. Expected a TensorFlow Datasets name such as "
            f"'cifar10', 'cifar100' or 'imagenet2012', or folder:PATH. Received: {name!r}"
        ) from None
    if not os.path.isdir(data_dir):
        raise ValueError(
            f"TFDS data dir {data_dir} does not exist, so dataset {name!r} is not prepared "
            f"there. {_prepare_hint(name, data_dir)}"
        )
    if not builder.is_prepared():
        raise ValueError(
            f"Dataset {name!r} is not prepared in the TFDS data dir {data_dir} (expected "
            f"{builder.data_dir}); nothing is downloaded. {_prepare_hint(name, data_dir)}"
        )
    features = builder.info.features
    if not {"image", "label"} <= set(features.keys()) or not hasattr(features["label"], "names"):
        raise ValueError(
            f"Dataset {name!r} is not an image-classification set. Expected `image` and "
            f"`label` (ClassLabel) features. Received: {sorted(features.keys())}"
        )
    splits = builder.info.splits
    if "train" not in splits:
        raise ValueError(
            f"Dataset {name!r} has no train split. Expected 'train'. Received: {sorted(splits)}"
        )
    eval_split = next((s for s in EVAL_SPLITS if s in splits), None)
    small = int(builder.info.dataset_size) <= MATERIALIZE_MAX_BYTES

    def stream(split):
        ds = builder.as_dataset(
            split=split,
            shuffle_files=False,
            decoders={"image": tfds.decode.SkipDecoding()},
            read_config=tfds.ReadConfig(try_autocache=False),
        )
        return ds.map(
            lambda ex: (ex["image"], tf.cast(ex["label"], tf.int32)),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )

    def read_all(ds):
        raws, labels = [], []
        for raw, label in ds.batch(4096).as_numpy_iterator():
            raws.append(raw.astype(object))
            labels.append(label)
        return np.concatenate(raws), np.concatenate(labels)

    def source(ds, size, load):
        return RawSource(ds, False, size, load=load if small else None)

    num_train = splits["train"].num_examples
    if eval_split:
        num_eval = splits[eval_split].num_examples
        train_stream, eval_stream = stream("train"), stream(eval_split)
        train = source(train_stream, num_train, lambda: read_all(train_stream))
        evals = source(eval_stream, num_eval, lambda: read_all(eval_stream))
    else:
        if not 0 < holdout < 1:
            raise ValueError(
                f"Dataset {name!r} has no validation or test split, so a hold-out fraction "
                f"is needed. Expected 0 < holdout < 1. Received: holdout={holdout}"
            )
        # Without reading every label, the hold-out cannot be stratified: it is a
        # seeded random choice of examples.
        mask = np.zeros(num_train, bool)
        mask[seeded_permutation(num_train, seed, 3)[: round(holdout * num_train)]] = True
        lookup = tf.constant(mask)
        full = stream("train").enumerate()
        cached = {}

        def part(in_eval):
            ds = full.filter(lambda i, el: tf.equal(tf.gather(lookup, i), in_eval))
            ds = ds.map(lambda i, el: el)

            def load():
                if "all" not in cached:
                    cached["all"] = read_all(stream("train"))
                raw, labels = cached["all"]
                keep = mask if in_eval else ~mask
                return raw[keep], labels[keep]

            return ds, load

        (train_stream, train_load), (eval_stream, eval_load) = part(False), part(True)
        num_eval = int(mask.sum())
        num_train -= num_eval
        train = source(train_stream, num_train, train_load)
        evals = source(eval_stream, num_eval, eval_load)
        eval_split = "holdout"
    info = DatasetInfo(
        name=name,
        class_names=list(features["label"].names),
        num_examples={"train": num_train, "eval": num_eval},
        source="tfds",
        eval_split=eval_split,
    )
    return {"train": _decoded(train), "eval": _decoded(evals)}, info


def open_dataset(spec, *, data_dir=None, seed=0, strict=False, holdout=0.1):
    """Opens a dataset by name, offline: a TFDS set or an image folder.

    Args:
        spec: a TensorFlow Datasets name with `image` and `label` features
            (`"cifar10"`, `"cifar100"`, `"imagenet2012"`, ...), or
            `"folder:PATH"`. The folder holds `train/<class>/*` and
            `val/<class>/*` (or `validation/`, `test/`); the classes are the
            sorted subfolders of `train/`, and the eval classes must be among
            them. A folder with `<class>/` subfolders directly has no split:
            a seeded hold-out, stratified by class, makes the eval set.
            Images are `.jpg .jpeg .png .bmp .gif` files, in any case,
            searched recursively under each class folder.
        data_dir: the TFDS data dir; default `$TFDS_DATA_DIR`, then
            `~/tensorflow_datasets`. Nothing is ever downloaded.
        seed: the seed of the hold-out split (`None` means 0).
        strict: raise at the first file that is not an image, instead of
            skipping and counting it.
        holdout: the fraction of the training data held out for eval when
            there is no eval split (`None` means 0.1).

    Returns:
        `({"train": ds, "eval": ds}, info)`: each `ds` yields `(image, label)`,
        a uint8 `(H, W, 3)` tensor and an int32 scalar, unbatched, in a fixed
        order; `info` is a `DatasetInfo`.

    Raises:
        ValueError: an unknown dataset name, a TFDS data dir that does not
            exist or holds no prepared copy, a folder that does not exist,
            has no images, one class only, or eval classes not in train; with
            `strict=True`, the first file that is not an image.

    Files in a folder are checked when listed, by their first and last bytes
    (JPEG `FFD8FF` ... `FFD9`, PNG signature ... `IEND`, BMP `BM`, GIF `GIF8`;
    empty files fail). Those that fail are skipped, counted in
    `info.skipped` and reported in one warning on the `alexnet_keras` logger.
    A file that passes but still fails to decode is dropped when read
    (`Dataset.ignore_errors`); it is not counted.

    Example:

    >>> from alexnet_keras.data.sources import open_dataset
    >>> splits, info = open_dataset("folder:../shared/data/cifar10-mini")
    >>> info.num_examples, info.eval_split, info.class_names[:2]
    ({'train': 200, 'eval': 100}, 'test', ['airplane', 'automobile'])
    >>> image, label = next(iter(splits["train"]))
    >>> image.shape, image.dtype.name, label.dtype.name
    (TensorShape([32, 32, 3]), 'uint8', 'int32')
    """
    spec = str(spec)
    seed = 0 if seed is None else int(seed)
    holdout = 0.1 if holdout is None else holdout
    if spec.startswith("folder:"):
        return _open_folder(spec[len("folder:") :], seed=seed, strict=strict, holdout=holdout)
    return _open_tfds(spec, data_dir=data_dir, seed=seed, holdout=holdout)


def dataset_summary(info):
    """One line describing a `DatasetInfo`.

    Example:

    >>> from alexnet_keras.data.sources import DatasetInfo, dataset_summary
    >>> info = DatasetInfo("cifar10", ["a", "b"], {"train": 9, "eval": 1}, "tfds", "test")
    >>> dataset_summary(info)
    'cifar10 (tfds): 2 classes, train 9, eval 1 (test), skipped 0'
    """
    skipped = sum(info.skipped.values())
    detail = f" (train {info.skipped['train']}, eval {info.skipped['eval']})" if skipped else ""
    return (
        f"{info.name} ({info.source}): {len(info.class_names)} classes, "
        f"train {info.num_examples['train']}, eval {info.num_examples['eval']} "
        f"({info.eval_split}), skipped {skipped}{detail}"
    )

"""Datasets by name: TensorFlow Datasets sets (prepared on first use) and image folders.

`open_dataset("cifar10")` or `open_dataset("folder:PATH")` returns a train and an
eval `Split`. A split carries its images' references (file paths, or encoded
TFDS records) and their decoder, not decoded pixels, so `data.train_pipeline`
shuffles the cheap references and decodes each image once, after the shuffle.
Iterating a split (or `split.dataset()`) yields `(image, label)` pairs: `image`
a decoded uint8 `(H, W, 3)` tensor of any size, `label` an int32 scalar,
unbatched, unshuffled and in a fixed order, so that `data.train_pipeline` can
derive every random choice from `(seed, epoch, index)`.
"""

import dataclasses
import functools
import os

import numpy as np
import tensorflow as tf

from alexnet_keras.data.image_folder import list_image_folder, seeded_permutation
from alexnet_keras.data.imagenet_val import list_imagenet_val
from alexnet_keras.data.split import Split, read_all

__all__ = [
    "DatasetInfo",
    "dataset_summary",
    "open_dataset",
    "tfds_ids",
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
        source: `"tfds"`, `"folder"` or `"imagenet-val"`.
        eval_split: where the eval examples come from: `"test"`, `"val"`,
            `"validation"` or `"holdout"` (a seeded part of the training data).
        skipped: `{"train": int, "eval": int}`, files skipped at listing time
            as empty, not images or of a refused size, and symlinks the walk
            did not follow (folder source). Files that pass that check but
            fail to decode are dropped by the pipeline and not counted.
    """

    name: str
    class_names: list
    num_examples: dict
    source: str
    eval_split: str
    skipped: dict = dataclasses.field(default_factory=lambda: {"train": 0, "eval": 0})


def _file_split(paths, labels):
    references = tf.data.Dataset.from_tensor_slices(
        (tf.constant(paths.tolist(), tf.string), tf.constant(labels, tf.int32))
    )
    return Split(references, len(paths), True, load=lambda: (paths, labels))


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
    return {"train": _file_split(*train), "eval": _file_split(*evals)}, info


def _open_imagenet_val(path, labels):
    if labels is None:
        raise ValueError(
            f"imagenet-val:{path} needs its labels: --labels val.txt (Caffe), "
            "ILSVRC2012_validation_ground_truth.txt (devkit) or LOC_val_solution.csv (Kaggle); "
            "it is an eval set, for `evaluate`"
        )
    listing = list_imagenet_val(path, labels)
    info = DatasetInfo(
        name=f"imagenet-val:{os.path.abspath(path)}",
        class_names=listing.class_names,
        num_examples={"train": 0, "eval": len(listing.paths)},
        source="imagenet-val",
        eval_split="val",
        skipped={"train": 0, "eval": listing.skipped},
    )
    return {"eval": _file_split(listing.paths, listing.labels)}, info


# ---------------------------------------------------------------------------
# TensorFlow Datasets.


def _tfds_builder(name, data_dir):
    """The TFDS builder of `name`, prepared now if it was not (`data.preparation.prepare`)."""
    import tensorflow_datasets as tfds

    data_dir = os.path.abspath(
        os.path.expanduser(
            data_dir or os.environ.get("TFDS_DATA_DIR") or os.path.join("~", "tensorflow_datasets")
        )
    )
    from alexnet_keras.data.preparation import prepare, quiet_tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.DatasetNotFoundError:
        hint = f" ({name} is a folder: use folder:{name})" if os.path.isdir(name) else ""
        raise ValueError(
            f"Unknown dataset {name!r}{hint}. Expected a TensorFlow Datasets name such as "
            f"'cifar10', 'cifar100' or 'imagenet2012', or folder:PATH. Received: {name!r}"
        ) from None
    with quiet_tfds():  # is_prepared warns "Variant folder ... has no dataset_info.json"
        prepared = builder.is_prepared()
    if not prepared:  # download and prepare it, unless offline
        prepare(builder, name, data_dir)
    features = builder.info.features
    if not {"image", "label"} <= set(features.keys()) or not hasattr(features["label"], "names"):
        raise ValueError(
            f"Dataset {name!r} is not an image-classification set. Expected `image` and "
            f"`label` (ClassLabel) features. Received: {sorted(features.keys())}"
        )
    if "train" not in builder.info.splits:
        raise ValueError(
            f"Dataset {name!r} has no train split. Expected 'train'. "
            f"Received: {sorted(builder.info.splits)}"
        )
    return builder


def _tfds_records(builder, split):
    """The records of a TFDS split, images left encoded, in its stored order."""
    import tensorflow_datasets as tfds

    return builder.as_dataset(
        split=split,
        shuffle_files=False,
        decoders={"image": tfds.decode.SkipDecoding()},
        read_config=tfds.ReadConfig(try_autocache=False),
    )


def tfds_ids(name, split, *, data_dir=None):
    """The `id` feature of a TFDS split (`"train_01234"`), as str, in the order its `Split` yields.

    Raises:
        ValueError: naming the set: it has no `id` feature.
    """
    builder = _tfds_builder(name, data_dir)
    if "id" not in builder.info.features:
        raise ValueError(f"Dataset {name!r} has no `id` feature to tell its examples apart")
    ids = _tfds_records(builder, split).map(lambda ex: ex["id"]).batch(10000)
    return np.concatenate([b.astype(str) for b in ids.as_numpy_iterator()])


def _tfds_references(builder, split):
    """`(encoded image, int32 label)` of a TFDS split, in its stored order."""
    ds = _tfds_records(builder, split)
    return ds.map(
        lambda ex: (ex["image"], tf.cast(ex["label"], tf.int32)),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )


def _tfds_holdout(builder, name, seed, holdout, in_memory):
    """Train and eval `Split`s from a seeded hold-out of the train split."""
    if not 0 < holdout < 1:
        raise ValueError(
            f"Dataset {name!r} has no validation or test split, so a hold-out fraction "
            f"is needed. Expected 0 < holdout < 1. Received: holdout={holdout}"
        )
    num = builder.info.splits["train"].num_examples
    # Without reading every label, the hold-out cannot be stratified: it is a
    # seeded random choice of examples.
    mask = np.zeros(num, bool)
    mask[seeded_permutation(num, seed, 3)[: round(holdout * num)]] = True
    lookup = tf.constant(mask)
    full = _tfds_references(builder, "train").enumerate()
    everything = functools.cache(lambda: read_all(_tfds_references(builder, "train")))

    def part(in_eval):
        references = full.filter(lambda i, el: tf.equal(tf.gather(lookup, i), in_eval))
        keep = mask if in_eval else ~mask
        load = lambda: tuple(a[keep] for a in everything())
        size = int(keep.sum())
        return Split(references.map(lambda i, el: el), size, False, load if in_memory else None)

    return part(False), part(True)


def _open_tfds(name, *, data_dir, seed, holdout):
    builder = _tfds_builder(name, data_dir)
    splits = builder.info.splits
    eval_split = next((s for s in EVAL_SPLITS if s in splits), None)
    in_memory = int(builder.info.dataset_size) <= MATERIALIZE_MAX_BYTES

    def split(split_name):
        references = _tfds_references(builder, split_name)
        load = (lambda: read_all(references)) if in_memory else None
        return Split(references, splits[split_name].num_examples, False, load)

    if eval_split:
        train, evals = split("train"), split(eval_split)
    else:
        train, evals = _tfds_holdout(builder, name, seed, holdout, in_memory)
        eval_split = "holdout"
    info = DatasetInfo(
        name=name,
        class_names=list(builder.info.features["label"].names),
        num_examples={"train": train.size, "eval": evals.size},
        source="tfds",
        eval_split=eval_split,
    )
    return {"train": train, "eval": evals}, info


def open_dataset(spec, *, data_dir=None, seed=0, strict=False, holdout=0.1, labels=None):
    """Opens a dataset by name: a TFDS set (downloaded and prepared if needed) or an image folder.

    Args:
        spec: a TensorFlow Datasets name with `image` and `label` features
            (`"cifar10"`, `"cifar100"`, `"imagenet2012"`, ...), or
            `"folder:PATH"`, or `"imagenet-val:PATH"` (with `labels`). The
            folder holds `train/<class>/*` and `val/<class>/*` (or
            `validation/`, `test/`); the classes are the
            sorted subfolders of `train/`, and the eval classes must be among
            them. A folder with `<class>/` subfolders directly has no split:
            a seeded hold-out, stratified by class, makes the eval set.
            Images are `.jpg .jpeg .png .bmp .gif .webp` files, in any case,
            searched recursively under each class folder.
        data_dir: the TFDS data dir; default `$TFDS_DATA_DIR`, then
            `~/tensorflow_datasets`. A set not prepared there is downloaded
            and prepared (`data.preparation.prepare`) unless
            `registry.offline()`; with its archives in
            `<data_dir>/downloads/manual/` that needs no network.
        seed: the seed of the hold-out split (`None` means 0).
        strict: raise at the first file that is not an image, instead of
            skipping and counting it.
        holdout: the fraction of the training data held out for eval when
            there is no eval split (`None` means 0.1).
        labels: for `imagenet-val:PATH`, the flat folder of ILSVRC-2012
            `ILSVRC2012_val_*.JPEG` files: its label file (Caffe's
            `val.txt`, the devkit's ground truth, Kaggle's
            `LOC_val_solution.csv`), or `[ground truth, synset map]`
            (`data.imagenet_val`). It has an `"eval"` split only, of the
            1000 classes in sorted-wnid order.

    Returns:
        `({"train": split, "eval": split}, info)`: each `split` is a `Split`
        whose iteration yields `(image, label)`, a uint8 `(H, W, 3)` tensor
        and an int32 scalar, unbatched, in a fixed order; `info` is a
        `DatasetInfo`.

    Raises:
        registry.OfflineError: a TFDS set that is not prepared and cannot be
            downloaded now (offline, or no network); one line naming the
            archives and the folder to put them in.
        ValueError: an unknown dataset name, a TFDS set that needs a manual
            download, a folder that does not exist,
            has no images, one class only, or eval classes not in train; with
            `strict=True`, the first file that is not an image.

    Files in a folder are checked when listed, without decoding
    (`image_folder.check_image`): a regular file (a FIFO or a device named
    `x.jpg` is never opened) of at most `limits.MAX_IMAGE_BYTES`, a JPEG,
    PNG, BMP, GIF or WebP header whose size passes
    `image_header.size_problem` (sides, pixels, pixels after the resize to
    256, a GIF's frames), and the JPEG `FFD9` or PNG `IEND` end (a WebP: its
    RIFF length). The walk follows a symlink only within the dataset folder
    and never enters a folder twice. Files that fail, and what the walk left
    out, are skipped, counted in `info.skipped` and reported in one warning
    on the `alexnet_keras` logger. A file that passes but still fails to
    decode is dropped when read (`Dataset.ignore_errors`); it is not
    counted.

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
    if spec.startswith("imagenet-val:"):
        return _open_imagenet_val(spec[len("imagenet-val:") :], labels)
    if labels is not None:
        raise ValueError(f"--labels is for imagenet-val:PATH datasets. Received: dataset {spec!r}")
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

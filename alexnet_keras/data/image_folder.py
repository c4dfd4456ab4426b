"""Image-folder datasets: listing, a cheap check of every file, and a seeded hold-out.

Pure Python and NumPy (no TensorFlow), so listing a folder costs no import.
`data.sources.open_dataset("folder:PATH")` turns the listing into splits.

Layout: `PATH/train/<class>/*` with `PATH/val/<class>/*` (or `validation/`,
`test/`), or `PATH/<class>/*` alone, split by a seeded hold-out. Images are
`.jpg .jpeg .png .bmp .gif` files (any case), searched recursively under each
class folder; hidden files and folders are ignored.
"""

import concurrent.futures
import dataclasses
import logging
import os

import numpy as np

__all__ = [
    "EVAL_FOLDERS",
    "IMAGE_EXTENSIONS",
    "IMAGE_SIGNATURES",
    "TAIL_BYTES",
    "FolderListing",
    "check_image",
    "holdout_mask",
    "image_files",
    "list_image_folder",
    "seeded_permutation",
]

log = logging.getLogger("alexnet_keras")

# The one suffix set of image files: datasets, `predict`, verification.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
# How each of those formats starts; `check_image` and the serving graph's
# request check read these (the serving graph also accepts WebP).
IMAGE_SIGNATURES = {"JPEG": b"\xff\xd8\xff", "PNG": b"\x89PNG\r\n\x1a\n", "GIF": b"GIF8",
                    "BMP": b"BM"}  # fmt: skip
# The end-of-image marker is looked for in this many final bytes: encoders and
# cameras may pad or append after it, and decoders accept such files.
TAIL_BYTES = 1024
# The eval folder, in order of preference.
EVAL_FOLDERS = ("val", "validation", "test")


@dataclasses.dataclass
class FolderListing:
    """The files of an image-folder dataset, split, in a fixed (sorted) order.

    Attributes:
        name: `"folder:/abs/path"`.
        class_names: the sorted class folders of `train/`; the index is the label.
        eval_split: `"val"`, `"validation"`, `"test"` or `"holdout"`.
        files: `{"train": (paths, labels), "eval": (paths, labels)}`; paths are
            `os.fsencode`d bytes (an object array), labels int32.
        skipped: `{"train": int, "eval": int}` files that failed `check_image`.
    """

    name: str
    class_names: list
    eval_split: str
    files: dict
    skipped: dict


# ---------------------------------------------------------------------------
# Seeded choices that depend on nothing but the seed (no library RNG streams,
# which may change between NumPy or TensorFlow versions).


def _splitmix64(x):
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _keys(n, *words):
    """`n` pseudo-random uint64 keys, a pure function of `words` (ints)."""
    state = np.zeros(1, np.uint64)
    for word in words:
        state = _splitmix64(state ^ np.uint64(word % (1 << 64)))
    return _splitmix64(state ^ np.arange(n, dtype=np.uint64))


def seeded_permutation(n, *words):
    """A permutation of `range(n)` that is a pure function of `n` and `words`.

    It uses SplitMix64 keys, so it does not change with NumPy or TensorFlow.

    Example:

    >>> from alexnet_keras.data.image_folder import seeded_permutation
    >>> p = seeded_permutation(5, 0, 1)
    >>> sorted(p.tolist()), (p == seeded_permutation(5, 0, 1)).all()
    ([0, 1, 2, 3, 4], np.True_)
    """
    return np.argsort(_keys(n, *words), kind="stable")


def holdout_mask(labels, num_classes, fraction, seed):
    """Which examples go to eval: `round(fraction * n)`, stratified by class.

    Each class gives `floor(fraction * count)`; the remaining examples come
    from the classes with the largest remainders (ties broken by the seed). A
    class with 2 or more images always keeps one for training. A class with a
    single image cannot be split: it competes for the remaining places like the
    others, so with one image per class (imagenet-sample) the hold-out is a
    seeded random choice of classes, whose images then appear only in eval.

    Args:
        labels: int array, one label per example.
        num_classes: the number of classes.
        fraction: the share of examples to hold out, `0 < fraction < 1`.
        seed: the seed; the choice is a pure function of it and `labels`.

    Returns:
        A boolean array, `True` for the examples held out.

    Example:

    >>> import numpy as np
    >>> from alexnet_keras.data.image_folder import holdout_mask
    >>> labels = np.repeat([0, 1, 2], 10)
    >>> np.bincount(labels[holdout_mask(labels, 3, 0.2, seed=0)]).tolist()
    [2, 2, 2]
    """
    n = len(labels)
    target = min(max(1, round(fraction * n)), n - 1)
    counts = np.bincount(labels, minlength=num_classes)
    quota = fraction * counts
    cap = np.where(counts >= 2, counts - 1, counts)
    take = np.minimum(np.floor(quota).astype(np.int64), cap)
    remaining = target - int(take.sum())
    if remaining > 0:
        order = np.lexsort((_keys(num_classes, seed, 1), -(quota - take)))
        order = order[take[order] < cap[order]][:remaining]
        take[order] += 1
    mask = np.zeros(n, bool)
    rank = np.empty(n, np.int64)
    # Within a class, the examples with the smallest seeded keys go to eval.
    by_key = np.lexsort((_keys(n, seed, 2), labels))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank[by_key] = np.arange(n) - np.repeat(starts, counts)
    mask[rank < take[labels]] = True
    return mask


# ---------------------------------------------------------------------------
# Image folders.


def check_image(path):
    """`None` if the file looks like a whole image, else why not.

    A cheap check of the first and last bytes: JPEG `FFD8FF` with `FFD9` in
    the last KiB, PNG signature with `IEND` in the last KiB, BMP `BM`, GIF
    `GIF8`. Empty and unreadable files fail.

    Example:

    >>> from alexnet_keras.data.image_folder import check_image
    >>> check_image("../shared/data/cifar10-mini/train/cat/0000.jpg") is None
    True
    """
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if not head:
                return "empty file"
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - TAIL_BYTES))
            tail = f.read()
    except OSError as e:
        return f"unreadable ({e.strerror})"
    if head.startswith(IMAGE_SIGNATURES["JPEG"]):
        return None if b"\xff\xd9" in tail else "truncated JPEG (no end-of-image marker FFD9)"
    if head == IMAGE_SIGNATURES["PNG"]:
        return None if b"IEND" in tail else "truncated PNG (no IEND chunk)"
    if head.startswith((IMAGE_SIGNATURES["BMP"], IMAGE_SIGNATURES["GIF"])):
        return None
    return f"not a JPEG, PNG, BMP or GIF file (it starts with {head[:4]!r})"


def _subfolders(path):
    with os.scandir(path) as entries:
        return sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))


def image_files(folder):
    """The image files under `folder`, recursively, in sorted order: the one lister.

    Files with a suffix of `IMAGE_EXTENSIONS`, in any case; hidden files and
    folders are skipped. The content is not checked (see `check_image`).

    Example:

    >>> from alexnet_keras.data.image_folder import image_files
    >>> [f.rsplit("/", 1)[1] for f in image_files("../shared/data/cifar10-mini/test/cat")][:2]
    ['0000.jpg', '0001.jpg']
    """
    files = []
    for top, dirs, names in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        files += [
            os.path.join(top, name)
            for name in sorted(names)
            if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)
        ]
    return files


def _list_folder(root, class_names, strict):
    """`(paths, labels, skipped)` for `root/<class>/...`; labels index `class_names`."""
    paths, labels = [], []
    for label, name in enumerate(class_names):
        class_dir = os.path.join(root, name)
        if os.path.isdir(class_dir):
            files = image_files(class_dir)
            paths += files
            labels += [label] * len(files)
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        problems = list(pool.map(check_image, paths, chunksize=64))
    bad = [i for i, problem in enumerate(problems) if problem]
    if bad and strict:
        i = bad[0]
        raise ValueError(
            f"{paths[i]}: not a valid image: {problems[i]}. Expected a JPEG, PNG, BMP or "
            "GIF file; remove it, or open the dataset with strict=False to skip such files."
        )
    keep = np.ones(len(paths), bool)
    keep[bad] = False
    paths = np.array([os.fsencode(p) for p in paths], dtype=object)[keep]
    return paths, np.asarray(labels, np.int32)[keep], len(bad)


def _layout(root, name, path):
    """`(train_root, eval_root or None, eval_split, class_names)` of a dataset folder."""
    if not os.path.isdir(root):
        raise ValueError(
            f"{name}: no such folder. Expected a folder with <class>/ subfolders, or "
            f"train/<class>/ and val/<class>/ (or test/). Received: {path!r}"
        )
    subfolders = _subfolders(root)
    eval_split = next((s for s in EVAL_FOLDERS if s in subfolders), None)
    if "train" in subfolders:
        train_root = os.path.join(root, "train")
    elif eval_split:
        raise ValueError(
            f"{name}: has {eval_split}/ but no train/ folder. Expected train/<class>/ next "
            f"to {eval_split}/<class>/. Received subfolders: {subfolders}"
        )
    else:
        train_root, eval_split = root, None
    class_names = _subfolders(train_root)
    if not class_names:
        raise ValueError(
            f"{train_root}: no class subfolders. Expected <class>/<image> files under it. "
            f"Received: {len(os.listdir(train_root))} entries and no subfolder"
        )
    if len(class_names) == 1:
        raise ValueError(
            f"{train_root}: only one class folder, {class_names[0]!r}; a classifier needs at "
            "least 2. Expected 2 or more <class>/ subfolders. Received: 1"
        )
    eval_root = os.path.join(root, eval_split) if eval_split else None
    if eval_root:
        extra = sorted(set(_subfolders(eval_root)) - set(class_names))
        if extra:
            raise ValueError(
                f"{eval_root}: class folders that are not in {train_root}: {extra[:5]}"
                f"{' ...' if len(extra) > 5 else ''}. Expected a subset of the "
                f"{len(class_names)} train classes. Received: {len(extra)} unknown classes"
            )
    return train_root, eval_root, eval_split, class_names


def list_image_folder(path, *, seed=0, strict=False, holdout=0.1):
    """Lists and checks an image-folder dataset; see `data.sources.open_dataset`.

    Args:
        path: the dataset folder.
        seed: the seed of the hold-out split.
        strict: raise at the first bad file instead of skipping it.
        holdout: the fraction held out when there is no eval folder.

    Returns:
        A `FolderListing`.

    Raises:
        ValueError: a folder that does not exist, has no images, one class
            only, eval classes not in train; with `strict`, a bad file.

    Example:

    >>> from alexnet_keras.data.image_folder import list_image_folder
    >>> listing = list_image_folder("../shared/data/cifar10-mini")
    >>> listing.eval_split, len(listing.files["train"][0]), listing.skipped
    ('test', 200, {'train': 0, 'eval': 0})
    """
    root = os.path.abspath(os.path.expanduser(path))
    name = f"folder:{root}"
    train_root, eval_root, eval_split, class_names = _layout(root, name, path)
    train = _list_folder(train_root, class_names, strict)
    if not len(train[0]):
        raise ValueError(
            f"{train_root}: no images in its {len(class_names)} class folders. Expected "
            f"{'/'.join(IMAGE_EXTENSIONS)} files. Received: 0 images"
            + (f" ({train[2]} files skipped as not images)" if train[2] else "")
        )
    if eval_root:
        evals = _list_folder(eval_root, class_names, strict)
        if not len(evals[0]):
            raise ValueError(
                f"{eval_root}: no images. Expected {'/'.join(IMAGE_EXTENSIONS)} files under "
                "its <class>/ subfolders. Received: 0 images"
            )
    else:
        if not 0 < holdout < 1:
            raise ValueError(
                f"{name}: has no val/ or test/ folder, so a hold-out fraction is needed. "
                f"Expected 0 < holdout < 1. Received: holdout={holdout}"
            )
        paths, labels, skipped = train
        mask = holdout_mask(labels, len(class_names), holdout, seed)
        train = paths[~mask], labels[~mask], skipped
        evals = paths[mask], labels[mask], 0
        eval_split = "holdout"
    skipped = {"train": train[2], "eval": evals[2]}
    if train[2] or evals[2]:
        log.warning(
            "%s: skipped %d files that are empty or not images (train %d, eval %d); "
            "open it with strict=True to stop at the first one",
            name, train[2] + evals[2], train[2], evals[2],
        )  # fmt: skip
    return FolderListing(
        name=name,
        class_names=list(class_names),
        eval_split=eval_split,
        files={"train": train[:2], "eval": evals[:2]},
        skipped=skipped,
    )

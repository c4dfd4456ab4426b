"""Image-folder datasets: listing, a cheap check of every file, and a seeded hold-out.

Pure Python and NumPy (no TensorFlow), so listing a folder costs no import.
`data.sources.open_dataset("folder:PATH")` turns the listing into splits.

Layout: `PATH/train/<class>/*` with `PATH/val/<class>/*` (or `validation/`,
`test/`), or `PATH/<class>/*` alone, split by a seeded hold-out. Images are
`.jpg .jpeg .png .bmp .gif .webp` files (any case), searched recursively under each
class folder; hidden files and folders are ignored.
"""

import concurrent.futures
import dataclasses
import logging
import os

import numpy as np

from alexnet_keras.image_header import read_image_size, size_problem
from alexnet_keras.limits import MAX_WALK_DEPTH

__all__ = [
    "EVAL_FOLDERS",
    "IMAGE_EXTENSIONS",
    "TAIL_BYTES",
    "FolderListing",
    "check_image",
    "holdout_mask",
    "image_files",
    "list_image_folder",
    "seeded_permutation",
    "walk_images",
]

log = logging.getLogger("alexnet_keras")

# The one suffix set of image files: datasets, `predict`, verification.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
# Their formats (`image_header` reads the size of each), as the serving graph takes them.
FOLDER_FORMATS = ("JPEG", "PNG", "BMP", "GIF", "WebP")
# The end markers are looked for in this many final bytes: encoders and cameras
# may pad or append after them, and decoders accept such files.
TAIL_BYTES = 1024
_ENDS = {"JPEG": (b"\xff\xd9", "truncated JPEG (no end-of-image marker FFD9)"),
         "PNG": (b"IEND", "truncated PNG (no IEND chunk)")}  # fmt: skip
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
        skipped: `{"train": int, "eval": int}` files that failed `check_image`,
            and symlinks or folders the walk did not follow.
    """

    name: str
    class_names: list
    eval_split: str
    files: dict
    skipped: dict


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


def seeded_integers(n, high, *words):
    """`n` ints in `0..high-1`, a pure function of its arguments, as `seeded_permutation` is."""
    return (_keys(n, *words) % np.uint64(high)).astype(np.int64)


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


def check_image(path):
    """`None` if the file looks like a whole image of an accepted size, else why not.

    Nothing is decoded: `stat` first (a FIFO or a device is never opened), the
    header (`image_header.read_image_size`, `size_problem`), then the end of a
    JPEG (`FFD9` in the last KiB) or a PNG (`IEND` in the last KiB).

    Example:

    >>> from alexnet_keras.data.image_folder import check_image
    >>> check_image("../shared/data/cifar10-mini/train/cat/0000.jpg") is None
    True
    >>> check_image("/dev/zero")
    'is a device, expected an image file'
    """
    try:
        kind, width, height, tail = read_image_size(path, formats=FOLDER_FORMATS, tail=TAIL_BYTES)
    except ValueError as e:
        return str(e).removeprefix(f"{path}: ")
    except OSError as e:
        return f"unreadable ({e.strerror})"
    end, truncated = _ENDS.get(kind, (b"", None))
    return size_problem(width, height) or (None if end in tail else truncated)


def _subfolders(path):
    with os.scandir(path) as entries:
        return sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))


def _inside(path, root):
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def walk_images(folder, root=None):
    """`(files, not_followed)`: the image files under `folder`, and what the walk left out.

    It reads no file. It follows a symlink only if its resolved target stays
    in `root` (default `folder`), enters each folder once (by `(st_dev,
    st_ino)`: `a -> .` loops end), at most `MAX_WALK_DEPTH` deep. `files`:
    every entry with an image suffix, sorted, a folder's files before its
    subfolders; a FIFO named `x.jpg` is listed, for `check_image` to refuse.
    """
    root = os.path.realpath(root if root is not None else folder)
    files, seen, not_followed = [], set(), 0

    def visit(directory, depth):
        nonlocal not_followed
        try:
            info = os.stat(directory)
            if (info.st_dev, info.st_ino) in seen or depth > MAX_WALK_DEPTH:
                not_followed += 1
                return
            seen.add((info.st_dev, info.st_ino))
            with os.scandir(directory) as scan:
                entries = sorted(scan, key=lambda e: e.name)
        except OSError:
            not_followed += 1
            return
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_symlink() and not _inside(os.path.realpath(entry.path), root):
                not_followed += entry.name.lower().endswith(IMAGE_EXTENSIONS) or _is_dir(entry)
            elif _is_dir(entry):
                subfolders.append(entry.path)
            elif entry.name.lower().endswith(IMAGE_EXTENSIONS):
                files.append(entry.path)
        for subfolder in subfolders:
            visit(subfolder, depth + 1)

    outside = not _inside(os.path.realpath(folder), root)  # then it is left out, as too deep
    visit(os.fspath(folder), MAX_WALK_DEPTH + 1 if outside else 0)
    return files, not_followed


def _is_dir(entry):
    try:
        return entry.is_dir()
    except OSError:  # a symlink to itself
        return False


def image_files(folder, root=None):
    """The image files under `folder`, recursively, in sorted order: the one lister.

    Files with a suffix of `IMAGE_EXTENSIONS`, in any case, by `walk_images`
    (what it leaves out is logged once); hidden files and folders are
    skipped. The content is not checked (see `check_image`).

    Example:

    >>> from alexnet_keras.data.image_folder import image_files
    >>> [f.rsplit("/", 1)[1] for f in image_files("../shared/data/cifar10-mini/test/cat")][:2]
    ['0000.jpg', '0001.jpg']
    """
    files, not_followed = walk_images(folder, root)
    if not_followed:
        log.warning("%s: left out %d symlinks or folders that lead out of it, into a loop or "
                    "deeper than %d folders", folder, not_followed, MAX_WALK_DEPTH)  # fmt: skip
    return files


def _list_folder(root, class_names, strict, dataset_root):
    """`(paths, labels, skipped)` for `root/<class>/...`; labels index `class_names`.

    `skipped` counts the files `check_image` refuses and what `walk_images` left out.
    """
    paths, labels, not_followed = [], [], 0
    for label, name in enumerate(class_names):
        class_dir = os.path.join(root, name)
        if os.path.isdir(class_dir):
            files, left_out = walk_images(class_dir, dataset_root)
            paths += files
            labels += [label] * len(files)
            not_followed += left_out
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        problems = list(pool.map(check_image, paths, chunksize=64))
    bad = [i for i, problem in enumerate(problems) if problem]
    if bad and strict:
        i = bad[0]
        raise ValueError(
            f"{paths[i]}: not a valid image: {problems[i]}. Expected a JPEG, PNG, BMP, GIF or "
            "WebP file; remove it, or open the dataset with strict=False to skip such files"
        )
    keep = np.ones(len(paths), bool)
    keep[bad] = False
    paths = np.array([os.fsencode(p) for p in paths], dtype=object)[keep]
    return paths, np.asarray(labels, np.int32)[keep], len(bad) + not_followed


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
    train = _list_folder(train_root, class_names, strict, root)
    if not len(train[0]):
        raise ValueError(
            f"{train_root}: no images in its {len(class_names)} class folders. Expected "
            f"{'/'.join(IMAGE_EXTENSIONS)} files. Received: 0 images"
            + (f" ({train[2]} files skipped as not images)" if train[2] else "")
        )
    if eval_root:
        evals = _list_folder(eval_root, class_names, strict, root)
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
            "%s: skipped %d files that are empty or not images, or symlinks and folders "
            "leading out of it or into a loop (train %d, eval %d); open it with strict=True "
            "to stop at the first bad file",
            name, train[2] + evals[2], train[2], evals[2],
        )  # fmt: skip
    return FolderListing(
        name=name,
        class_names=list(class_names),
        eval_split=eval_split,
        files={"train": train[:2], "eval": evals[:2]},
        skipped=skipped,
    )

"""ILSVRC-2012 validation: the flat folder of `ILSVRC2012_val_*.JPEG` and its labels.

`open_dataset("imagenet-val:DIR", labels=FILE)` reads it as an eval split of
the 1000 classes in sorted-wnid order (Caffe's, and BVLC's weights'). The
labels come in any of the forms users hold, told apart by their content:

- Caffe's `val.txt` (`data/ilsvrc12/get_ilsvrc_aux.sh`): lines
  `ILSVRC2012_val_00000001.JPEG 65`, the index in sorted-wnid order.
- The devkit's `ILSVRC2012_validation_ground_truth.txt`: one ILSVRC2012_ID
  (1..1000) per line, line `i` for image `i`. The IDs follow the devkit's
  own class order, so it needs its synset map: the devkit's `meta.mat` or
  a `map_clsloc.txt` (`n02119789 1 kit_fox` lines, ILSVRC devkit 2014), given
  as a second labels file or found beside the ground truth.
- Kaggle's `LOC_val_solution.csv`: `ImageId,PredictionString`, the wnid first.

Every image of the folder must be labelled once, and every label must name
an image of the folder, a class in range: anything else is one error line.
Pure Python (no TensorFlow); files are read within `limits`, never run.
"""

import concurrent.futures
import csv
import dataclasses
import logging
import os
import re

import numpy as np

from alexnet_keras.data.image_folder import check_image
from alexnet_keras.files import read_bounded
from alexnet_keras.limits import MAX_LABEL_FILE_BYTES, MAX_VAL_IMAGES
from alexnet_keras.variants import imagenet_classes

__all__ = ["ValListing", "list_imagenet_val", "read_id_map", "read_val_labels"]

log = logging.getLogger("alexnet_keras")

_IMAGE = re.compile(r"ILSVRC2012_val_\d{8}\.JPEG")
_ID_MAPS = ("meta.mat", "map_clsloc.txt")
_FORMS = (
    "Caffe's val.txt (`ILSVRC2012_val_00000001.JPEG 65` lines), the devkit's "
    "ILSVRC2012_validation_ground_truth.txt (one ILSVRC2012_ID per line) or Kaggle's "
    "LOC_val_solution.csv (`ImageId,PredictionString`)"
)


@dataclasses.dataclass
class ValListing:
    """The labelled images of a val folder, in file-name order.

    Attributes:
        paths: file system paths (bytes), a NumPy object array.
        labels: int32 class indices in sorted-wnid order.
        class_names: the 1000 `[wnid, name]` pairs.
        form: the label file's form: `"caffe"`, `"devkit"` or `"kaggle"`.
        skipped: images that failed `image_folder.check_image` (left out).
    """

    paths: list
    labels: list
    class_names: list
    form: str
    skipped: int = 0


def _text(path, what):
    data = read_bounded(path, what, MAX_LABEL_FILE_BYTES)
    if b"\0" in data:
        raise ValueError(f"{path}: holds binary data, expected {what}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(f"{path}: is not UTF-8 text, expected {what}") from None


def _lines(text, path):
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise ValueError(f"{path}: is empty, expected {_FORMS}")
    if len(lines) > MAX_VAL_IMAGES:
        raise ValueError(f"{path}: {len(lines):,} lines; at most {MAX_VAL_IMAGES:,} are read")
    return lines


def _short(line):
    return repr(line if len(line) <= 60 else line[:57] + "...")


def _add(labels, path, n, name, index):
    if name in labels:
        raise ValueError(f"{path} line {n}: {name} is labelled twice")
    labels[name] = index


def _caffe(lines, path, classes):
    labels = {}
    for n, line in lines:
        parts = line.split()
        if len(parts) != 2 or not _IMAGE.fullmatch(parts[0]) or not parts[1].isdigit():
            raise ValueError(f"{path} line {n}: expected `ILSVRC2012_val_00000001.JPEG 65` "
                             f"(Caffe's val.txt). Received: {_short(line)}")  # fmt: skip
        if int(parts[1]) >= classes:
            raise ValueError(f"{path} line {n}: class {parts[1]} is out of range 0..{classes - 1}")
        _add(labels, path, n, parts[0], int(parts[1]))
    return labels


def _kaggle(text, path, index_of):
    labels = {}
    rows = csv.reader(text.splitlines())
    for n, row in enumerate(rows, 1):
        if n == 1 or not row or not "".join(row).strip():
            continue  # the header, checked by the caller; blank lines
        image = row[0].strip()
        wnid = row[1].split()[0] if len(row) == 2 and row[1].split() else None
        if not _IMAGE.fullmatch(image + ".JPEG") or wnid is None:
            raise ValueError(
                f"{path} line {n}: expected `ILSVRC2012_val_00000001,n01751748 ...` "
                f"(LOC_val_solution.csv). Received: {_short(','.join(row))}"
            )
        if wnid not in index_of:
            raise ValueError(f"{path} line {n}: {_short(wnid)} is not an ILSVRC-2012 class wnid")
        _add(labels, path, n, image + ".JPEG", index_of[wnid])
        if len(labels) > MAX_VAL_IMAGES:
            raise ValueError(f"{path}: more than {MAX_VAL_IMAGES:,} rows")
    return labels


def read_id_map(path, index_of):
    """`{ILSVRC2012_ID: class index}` from the devkit's `meta.mat` or a `map_clsloc.txt`."""
    if str(path).endswith(".mat"):
        from alexnet_keras.data.matlab import read_synsets

        pairs = read_synsets(path)
    else:
        pairs = []
        for n, line in _lines(_text(path, "a synset map"), path):
            parts = line.split()
            if len(parts) < 2 or not parts[1].isdigit():
                raise ValueError(
                    f"{path} line {n}: expected `n02119789 1 kit_fox` (wnid, ILSVRC2012_ID: "
                    "map_clsloc.txt) or the devkit's meta.mat; synset_words.txt and "
                    "LOC_synset_mapping.txt list the classes in sorted order, not by ID. "
                    f"Received: {_short(line)}"
                )
            pairs.append((int(parts[1]), parts[0]))
    out = {}
    for ilsvrc_id, wnid in pairs:
        if wnid not in index_of:
            raise ValueError(f"{path}: ILSVRC2012_ID {ilsvrc_id} is {_short(wnid)}, not a class")
        if ilsvrc_id in out:
            raise ValueError(f"{path}: ILSVRC2012_ID {ilsvrc_id} is listed twice")
        out[ilsvrc_id] = index_of[wnid]
    if sorted(out) != list(range(1, len(index_of) + 1)):
        raise ValueError(f"{path}: maps {len(out)} ILSVRC2012_IDs; expected 1..{len(index_of)}")
    return out


def _ground_truth(lines, path, id_map, map_path):
    labels = {}
    for n, line in lines:
        if not line.isdigit() or int(line) not in id_map:
            raise ValueError(f"{path} line {n}: expected an ILSVRC2012_ID 1..{len(id_map)} "
                             f"(the devkit's ground truth). Received: {_short(line)}")  # fmt: skip
        labels[f"ILSVRC2012_val_{n:08d}.JPEG"] = id_map[int(line)]
    if lines[-1][0] != len(lines):
        raise ValueError(f"{path}: has blank lines; line i labels image i, so none may be blank")
    return labels


def _id_map_path(path, given):
    if given is not None:
        return given
    folder = os.path.dirname(os.path.abspath(path))
    found = [os.path.join(folder, m) for m in _ID_MAPS if os.path.isfile(os.path.join(folder, m))]
    if not found:
        raise ValueError(
            f"{path}: devkit ground truth (ILSVRC2012_IDs) needs its synset map: give the "
            f"devkit's meta.mat or a map_clsloc.txt as a second labels file, or put one of "
            f"{', '.join(_ID_MAPS)} beside it"
        )
    return found[0]


def read_val_labels(path, synset_map=None):
    """`(form, {file name: class index})` of a val label file, its form read from its content.

    Args:
        path: Caffe's `val.txt`, the devkit's ground truth or
            `LOC_val_solution.csv` (see the module docstring).
        synset_map: for the ground truth: `meta.mat` or `map_clsloc.txt`;
            default: one of those beside `path`.

    Returns:
        `form` is `"caffe"`, `"devkit"` or `"kaggle"`; indices are in
        sorted-wnid order.

    Raises:
        ValueError: one line naming the file (and line) and the problem.

    Example:

    >>> import os, tempfile
    >>> from alexnet_keras.data.imagenet_val import read_val_labels
    >>> path = os.path.join(tempfile.mkdtemp(), "val.txt")
    >>> _ = open(path, "w").write("ILSVRC2012_val_00000001.JPEG 65\\n")
    >>> read_val_labels(path)
    ('caffe', {'ILSVRC2012_val_00000001.JPEG': 65})
    """
    index_of = {wnid: i for i, (wnid, _) in enumerate(imagenet_classes())}
    text = _text(path, "a val label file")
    lines = _lines(text, path)
    first = lines[0][1]
    if first.replace(" ", "").startswith("ImageId,PredictionString"):
        return "kaggle", _kaggle(text, path, index_of)
    if _IMAGE.fullmatch(first.split()[0]):
        return "caffe", _caffe(lines, path, len(index_of))
    if first.isdigit():
        map_path = _id_map_path(path, synset_map)
        return "devkit", _ground_truth(lines, path, read_id_map(map_path, index_of), map_path)
    raise ValueError(f"{path}: not a val label file; expected {_FORMS}. Received line "
                     f"{lines[0][0]}: {_short(first)}")  # fmt: skip


def _list_folder(folder):
    try:
        with os.scandir(folder) as entries:
            names = []
            for entry in entries:
                if _IMAGE.fullmatch(entry.name):
                    names.append(entry.name)
                    if len(names) > MAX_VAL_IMAGES:
                        raise ValueError(f"{folder}: more than {MAX_VAL_IMAGES:,} val images")
    except (FileNotFoundError, NotADirectoryError):
        raise ValueError(
            f"{folder}: no such folder (expected ILSVRC2012_val_*.JPEG files)"
        ) from None
    if not names:
        raise ValueError(f"{folder}: holds no ILSVRC2012_val_*.JPEG files")
    return sorted(names)


def _mismatch(folder, label_path, unlabelled, missing):
    parts = []
    if unlabelled:
        parts.append(f"{len(unlabelled)} images have no label in {label_path} "
                     f"(first: {unlabelled[0]})")  # fmt: skip
    if missing:
        parts.append(f"{len(missing)} labelled images are not in the folder (first: {missing[0]})")
    return f"{folder}: " + "; ".join(parts)


def list_imagenet_val(folder, labels):
    """The labelled images of a flat ILSVRC-2012 val folder.

    Args:
        folder: the folder of `ILSVRC2012_val_XXXXXXXX.JPEG` files.
        labels: a label file, or `[ground truth, synset map]` (`read_val_labels`).

    Returns:
        A `ValListing`; `class_names` are the `[wnid, name]` pairs in sorted-wnid order.

    Raises:
        ValueError: a missing folder, a bad label file, an image without a
            label or a label without its image (one line, with the counts).

    Example:

    >>> import os, shutil, tempfile
    >>> from alexnet_keras.data.imagenet_val import list_imagenet_val
    >>> folder = tempfile.mkdtemp()
    >>> shutil.copy("../shared/data/imagenet-sample/n01440764/n01440764_tench.JPEG",
    ...             os.path.join(folder, "ILSVRC2012_val_00000001.JPEG"))  # doctest: +ELLIPSIS
    '...'
    >>> with open(os.path.join(folder, "val.txt"), "w") as f:
    ...     _ = f.write("ILSVRC2012_val_00000001.JPEG 0\\n")
    >>> listing = list_imagenet_val(folder, os.path.join(folder, "val.txt"))
    >>> listing.form, listing.labels.tolist(), listing.class_names[0]
    ('caffe', [0], ['n01440764', 'tench'])
    """
    paths = [labels] if isinstance(labels, (str, os.PathLike)) else list(labels)
    if not 1 <= len(paths) <= 2:
        raise ValueError(f"Expected one labels file, or ground truth and synset map. Received: "
                         f"{len(paths)} files")  # fmt: skip
    folder = os.path.abspath(os.path.expanduser(os.fspath(folder)))
    names = _list_folder(folder)
    form, table = read_val_labels(paths[0], paths[1] if len(paths) == 2 else None)
    present = set(names)
    unlabelled = [n for n in names if n not in table]
    missing = sorted(n for n in table if n not in present)
    if unlabelled or missing:
        raise ValueError(_mismatch(folder, paths[0], unlabelled, missing))
    classes = [list(pair) for pair in imagenet_classes()]
    paths = [os.path.join(folder, n) for n in names]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        problems = list(pool.map(check_image, paths, chunksize=64))
    keep = np.array([problem is None for problem in problems], bool)
    if not keep.all():
        first = int(np.argmin(keep))
        log.warning("%s: skipped %d images that are not whole images of an accepted size "
                    "(first: %s: %s)", folder, int((~keep).sum()), names[first],
                    problems[first])  # fmt: skip
    paths = np.array([os.fsencode(p) for p in paths], dtype=object)[keep]
    labels = np.asarray([table[n] for n in names], np.int32)[keep]
    return ValListing(paths, labels, classes, form, int((~keep).sum()))

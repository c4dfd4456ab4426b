"""The features file: a layer's outputs in HDF5, with what it takes to know how they were made.

Datasets:

- `features`: float32 `(N, ...)`, one row per image;
- `paths` (image files: strings, UTF-8 but for a name that is not, kept as
  its bytes) or `indices` (a dataset: int64, the row's position in its split);
- `labels`: int32 `(N,)`, the class index, or -1 where unknown;
- `class_names`: UTF-8 strings, indexed by `labels`;
- `mean`: the per-pixel mean image, only when the weights subtract one
  (else the `mean` attribute holds the three channel means).

Attributes: `format` (`"alexnet-keras features"`), `format_version`, `layer`,
`weights`, `weights_sha256`, `variant`, `input_size`, `protocol`,
`color_order`, `mean`, `ten_crop`, `source` (`"files"` or `"dataset"`),
`dataset`, `split`, `alexnet_keras_version`, `total` (images to do),
`count` (images done) and `complete`.

A file is written as `<output>.partial`, and `count` is raised only after a
batch's rows are flushed, so a run that is stopped (Ctrl-C, kill) resumes at
the next batch when started again with the same arguments; only a complete
file is renamed to its name.
"""

import os
import pathlib

import numpy as np

from alexnet_keras.files import write_error

__all__ = ["FORMAT", "PartialFile", "check_output", "partial_path", "read_features"]

FORMAT = "alexnet-keras features"
FORMAT_VERSION = 1
# What the rows depend on: a partial file started with other values is not resumed.
_IDENTITY = ("layer", "weights_sha256", "ten_crop", "protocol", "source", "dataset", "split",
             "images_sha256", "total")  # fmt: skip
_CANNOT_WRITE = {"EACCES", "EPERM", "EROFS", "ENOENT", "ENOTDIR", "EISDIR"}


def partial_path(output):
    """Where `output` is written until it is complete: `<output>.partial`.

    Example:

    >>> from alexnet_keras.features.store import partial_path
    >>> str(partial_path("out/feats.h5"))
    'out/feats.h5.partial'
    """
    output = pathlib.Path(output)
    return output.with_name(output.name + ".partial")


def _h5py():
    import h5py

    return h5py


def check_output(output, overwrite=False):
    """Refuses, before any work, an output that exists (without `overwrite`) or has no folder.

    Example:

    >>> from alexnet_keras.features.store import check_output
    >>> check_output("no/such/folder/f.h5")
    Traceback (most recent call last):
    ...
    ValueError: no/such/folder/f.h5: its folder no/such/folder does not exist
    """
    output = pathlib.Path(output)
    if output.is_dir():
        raise ValueError(f"{output}: is a folder; give -o a file name such as feats.h5")
    if output.exists() and not overwrite:
        raise ValueError(f"{output}: exists; pass --overwrite to replace it")
    if not output.parent.is_dir():
        raise ValueError(f"{output}: its folder {output.parent} does not exist")


def _probe(partial, output):
    """Creates and removes `partial` with plain `open`: its OSError says why a folder cannot
    take it, before the model is built."""
    import errno

    try:
        with open(partial, "xb"):
            pass
        os.unlink(partial)
    except OSError as e:
        if errno.errorcode.get(e.errno) in _CANNOT_WRITE:
            raise ValueError(f"{output}: cannot be written: {e.strerror.lower()}") from None
        raise


def _mismatch(attrs, header):
    """The first identity attribute whose value differs, as text, or None."""
    for key in _IDENTITY:
        theirs, ours = attrs.get(key), header.get(key)
        theirs = theirs.item() if isinstance(theirs, np.generic) else theirs
        if theirs != ours:
            return f"{key}={theirs!r}, this run has {ours!r}"
    return None


class PartialFile:
    """The `<output>.partial` a run writes into: resumed, appended to, then renamed.

    Args:
        output: the final path.
        header: the attributes (see the module docstring), `mean` and
            `class_names` included; the keys of `_IDENTITY` decide whether a
            partial file may be resumed.
        keys: `"paths"` or `"indices"`.
        overwrite: replace an existing `output`, and start over where a
            partial file from other arguments (or an unreadable one) is left.
        warn: where the line saying that a partial file is discarded goes.

    Raises:
        ValueError: `output` exists (without `overwrite`), its folder is
            missing or cannot be written, or a partial file is left from
            other arguments or cannot be read (without `overwrite`).

    Example:

    >>> import os, tempfile, numpy as np
    >>> from alexnet_keras.features.store import PartialFile, read_features
    >>> out = os.path.join(tempfile.mkdtemp(), "f.h5")
    >>> part = PartialFile(out, {"layer": "fc7", "total": 2, "class_names": ["a"]}, "paths")
    >>> part.start((3,))
    0
    >>> part.append(0, np.ones((2, 3)), (["x.jpg", "y.jpg"], [0, -1]))
    >>> read_features(part.finish())["labels"].tolist()
    [0, -1]
    """

    def __init__(self, output, header, keys, *, overwrite=False, warn=None):
        self.output = pathlib.Path(output)
        self.path = partial_path(self.output)
        # HDF5 attributes hold no None: "" stands for it, here as in the file.
        self.header = {k: "" if v is None else v for k, v in header.items()}
        self.keys = keys
        check_output(self.output, overwrite)
        self.file = self._resume(overwrite, warn) if self.path.exists() else None
        if self.file is None:
            _probe(self.path, self.output)
        self.done = 0 if self.file is None else int(self.file.attrs["count"])

    def start(self, row_shape):
        """Creates the file, unless a resumed one is open; returns the images done.

        Args:
            row_shape: the shape of one image's features.
        """
        if self.file is None:
            self.file = self._create(row_shape)
        return self.done

    def next_index(self):
        """The dataset index after the last row written (0 for a new file)."""
        return int(self.file["indices"][self.done - 1]) + 1 if self.done else 0

    def _resume(self, overwrite, warn):
        h5py = _h5py()
        why = None
        try:
            f = h5py.File(self.path, "r+")
            attrs = dict(f.attrs)
            if attrs.get("format") != FORMAT or not {"features", "labels", self.keys} <= set(f):
                why = "not a features file in progress"
            elif mismatch := _mismatch(attrs, self.header):
                why = f"a partial file of other arguments: {mismatch}"
            elif not 0 <= int(attrs["count"]) <= len(f["features"]):
                why = f"a partial file with a bad count {attrs['count']}"
            if why is None:
                return f
            f.close()
        except (OSError, KeyError, ValueError, TypeError) as e:
            why = f"unreadable ({' '.join(str(e).split())[:160]})"
        if not overwrite:
            raise ValueError(f"{self.path}: {why}; delete it, or pass --overwrite to start over")
        if warn is not None:
            print(f"Warning: {self.path}: {why}; starting over", file=warn)
        self.path.unlink()
        return None

    def _create(self, row_shape):
        h5py = _h5py()
        header, total = dict(self.header), int(self.header["total"])
        f = h5py.File(self.path, "w")
        chunk = max(1, min(total, (1 << 20) // max(1, 4 * int(np.prod(row_shape)))))
        f.create_dataset("features", (total, *row_shape), np.float32, maxshape=(None, *row_shape),
                         chunks=(chunk, *row_shape))  # fmt: skip
        f.create_dataset("labels", (total,), np.int32, maxshape=(None,))
        if self.keys == "paths":
            f.create_dataset("paths", (total,), h5py.string_dtype(), maxshape=(None,))
        else:
            f.create_dataset("indices", (total,), np.int64, maxshape=(None,))
        names = [str(n) for n in header.pop("class_names", None) or []]
        f.create_dataset("class_names", data=np.array(names, dtype=object),
                         dtype=h5py.string_dtype())  # fmt: skip
        mean = np.asarray(header.pop("mean", ()), np.float32)
        if mean.ndim > 1:  # a per-pixel mean is too big for an attribute
            f.create_dataset("mean", data=mean)
            header["mean"] = "the `mean` dataset (per pixel)"
        else:
            header["mean"] = mean
        for key, value in {**header, "format": FORMAT, "format_version": FORMAT_VERSION,
                           "count": 0, "complete": False}.items():  # fmt: skip
            f.attrs[key] = "" if value is None else value
        f.flush()
        return f

    def append(self, start, rows, extra):
        """Writes the rows of images `start..`; `extra` is `(paths or indices, labels)`."""
        keys, labels = extra
        rows = np.asarray(rows, np.float32)
        end = start + len(rows)
        if self.keys == "paths":  # the file system's bytes: a name that is not UTF-8 is kept
            keys = [os.fsencode(k) for k in keys]
        try:
            self.file["features"][start:end] = rows
            self.file[self.keys][start:end] = keys
            self.file["labels"][start:end] = labels
            self.file.flush()
            # Only now is the batch counted: a run killed before this line redoes it.
            self.file.attrs["count"] = end
            self.file.flush()
        except (OSError, RuntimeError) as e:  # h5py says "errno = 28" for a full disk
            raise (write_error(self.path, e, rows.nbytes) or e) from None
        self.done = end

    def finish(self):
        """Marks the file complete, trims unused rows, renames it to `output`; returns that."""
        f = self.file
        for name in ("features", "labels", self.keys):
            f[name].resize(self.done, axis=0)
        f.attrs["complete"] = True
        f.close()
        os.replace(self.path, self.output)
        return self.output

    def close(self):
        """Closes the partial file (kept for the next run)."""
        if self.file is not None and self.file.id.valid:
            self.file.close()


def read_features(path):
    """A features file as a dict: its arrays (`features`, `labels`, `class_names`, `paths`
    or `indices`, `mean` if stored) and its attributes under `attrs`.

    Raises:
        ValueError: the file is not a complete features file.

    Example:

    >>> from alexnet_keras.features.store import read_features
    >>> read_features("missing.h5")
    Traceback (most recent call last):
    ...
    ValueError: missing.h5: not a features file (no such file)
    """
    h5py = _h5py()
    if not os.path.isfile(path):
        raise ValueError(f"{path}: not a features file (no such file)")
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
            if attrs.get("format") != FORMAT or not attrs.get("complete"):
                raise ValueError("not a complete features file")
            out = {k: f[k][()] for k in f}
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise ValueError(f"{path}: not a features file ({' '.join(str(e).split())})") from None
    for key in ("paths", "class_names"):
        if key in out:
            out[key] = [v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else str(v)
                        for v in out[key]]  # fmt: skip
    return {**out, "attrs": attrs}

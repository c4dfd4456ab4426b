"""The one resolver: a release name or a legacy file becomes a weights file.

Every entry point resolves `weights` here: `AlexNet(weights=...)`,
`finetune`/`train`/`evaluate`/`predict`/`export --weights` and
`convert NAME`. So a name behaves the same everywhere: the converted file in
the cache; else a verified source file already in `<cache>/downloads`; else a
verified download; then the conversion into the cache
(`<cache>/<release>-<sha256[:8]>.weights.h5`). Offline, the error is
`registry.OfflineError`, which says what to fetch and where to put it (the
CLI exits 1); a missing file or an unknown name is a ValueError (exit 2).

TensorFlow is never imported here.
"""

import os
import pathlib

from alexnet_keras import registry
from alexnet_keras.files import existing_file

__all__ = ["LEGACY_SUFFIXES", "release_source", "resolve"]

# Files in these formats are converted through the cache before loading.
LEGACY_SUFFIXES = (".npy", ".caffemodel")


def resolve(weights, *, fmt=None, progress=True):
    """Returns the weights file that `weights` names, converting it if needed.

    Args:
        weights: None; the path of a `.weights.h5` (returned as is); the path
            of a legacy file (`bvlc_alexnet.npy`, a `.caffemodel`), converted
            through the cache; or a release name (`"bvlc_alexnet"`).
        fmt: for a release, the source format to use (`"caffemodel"`,
            `"npy"`); default: the caffemodel, or whichever verified source is
            already downloaded.
        progress: draw a download progress line on stderr.

    Returns:
        A `pathlib.Path`, or None for None.

    Raises:
        ValueError: a bad type, or a path that is neither a file nor a
            known release (one line naming it); a legacy file that does not
            convert.
        registry.OfflineError: a release that is not cached and cannot be
            downloaded; the message says what to fetch and where to put it.

    Example:

    >>> from alexnet_keras import pretrained
    >>> pretrained.resolve(None) is None
    True
    >>> pretrained.resolve("alexnet_v9")
    Traceback (most recent call last):
    ...
    ValueError: alexnet_v9: no such weights file or known release (known: bvlc_alexnet, ...)
    """
    if weights is None:
        return None
    if not isinstance(weights, (str, bytes)) and not hasattr(weights, "__fspath__"):
        raise ValueError(
            "`weights` must be None, a release name or the path of a .weights.h5 file. "
            f"Received: weights={weights!r}"
        )
    path = pathlib.Path(os.fsdecode(weights))
    if path.exists():
        return _converted(path) if path.suffix.lower() in LEGACY_SUFFIXES else path
    if isinstance(weights, str) and weights in registry.release_names():
        cached = registry.converted_path(weights)
        if cached is not None:
            return cached
        return _converted(release_source(weights, fmt, progress=progress))
    raise ValueError(
        f"{path}: no such weights file or known release "
        f"(known: {', '.join(registry.release_names())})"
    )


def release_source(name, fmt=None, *, progress=True):
    """Returns a verified source file of release `name`: downloaded before, or now.

    Raises:
        ValueError: an unknown release, or a download that fails its checks.
        registry.OfflineError: the file is not there and cannot be downloaded.

    Example (needs the network, or the file in `<cache>/downloads`):

    >>> pretrained.release_source("bvlc_alexnet").name  # doctest: +SKIP
    'bvlc_alexnet.caffemodel'
    """
    found = registry.downloaded(name, fmt)
    return found or registry.download(name, fmt, progress=progress)


def _converted(source):
    """The cached conversion of a legacy file, written by `convert_file` unless it exists."""
    from alexnet_keras.caffe.convert import convert_file, default_output

    source = existing_file(source, "a weights file")
    digests = registry.file_digests(source)  # once: for the cache name and the metadata
    output = default_output(source, digests)
    if output.is_file():
        return output
    return pathlib.Path(convert_file(source, output, digests=digests).output)

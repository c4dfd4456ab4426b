"""The one resolver: a release name or a legacy file becomes a weights file.

Every entry point resolves `weights` here: `AlexNet(weights=...)`,
`finetune`/`train`/`evaluate`/`predict`/`export --weights` and
`convert NAME`. So a name behaves the same everywhere: the converted file in
the cache; else a verified source file already in `<cache>/downloads`; else a
verified download; then the conversion into the cache
(`<cache>/<release>-<sha256[:8]>.weights.h5`). `"imagenet"`, the name
`keras.applications` users pass, means `bvlc_alexnet`. A legacy file
(`bvlc_alexnet.npy`, a `.caffemodel`, a cuda-convnet checkpoint file or
folder) is converted once into the cache and found there the next time.
Offline, the error is `registry.OfflineError`, which says what to fetch and
where to put it (the CLI exits 1); a missing file or an unknown name is a
ValueError (exit 2).

TensorFlow is never imported here.
"""

import os
import pathlib

from alexnet_keras import registry
from alexnet_keras.files import existing_file

__all__ = ["ALIASES", "LEGACY_SUFFIXES", "release_source", "resolve"]

# Files in these formats are converted through the cache before loading.
LEGACY_SUFFIXES = (".npy", ".caffemodel")
# Other names for a release: keras.applications users pass weights="imagenet".
ALIASES = {"imagenet": "bvlc_alexnet"}
# The first bytes of a cuda-convnet checkpoint file: a zip (`--zip-save`), a
# gzip, or a protocol-2 pickle.
_CHECKPOINT_MAGIC = (b"PK\x03\x04", b"\x1f\x8b", b"\x80\x02")


def resolve(weights, *, fmt=None, progress=True):
    """Returns the weights file that `weights` names, converting it if needed.

    Args:
        weights: None; the path of a `.weights.h5` (returned as is); the path
            of a legacy file (`bvlc_alexnet.npy`, a `.caffemodel`, or a
            cuda-convnet checkpoint folder or file, whose layers-145 net
            becomes chm2012 weights), converted through the cache; a release
            name (`"bvlc_alexnet"`); or `"imagenet"`, which means
            `"bvlc_alexnet"`.
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

    `"imagenet"` resolves as `"bvlc_alexnet"` (needs the network or the cache):

    >>> pretrained.resolve("imagenet").name  # doctest: +SKIP
    'bvlc_alexnet-4bff209a.weights.h5'
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
        if path.suffix.lower() in LEGACY_SUFFIXES:
            return _converted(path)
        return _converted_checkpoint(path) if _is_checkpoint(path) else path
    name = ALIASES.get(weights, weights) if isinstance(weights, str) else None
    if name in registry.release_names():
        cached = registry.converted_path(name)
        if cached is not None:
            return cached
        try:
            return _converted(release_source(name, fmt, progress=progress))
        except registry.OfflineError as e:
            raise registry.OfflineError(f"{e}{_unverified_hint(name)}") from None
    raise ValueError(
        f"{path}: no such weights file or known release "
        f'(known: {", ".join(registry.release_names())}; "imagenet" means bvlc_alexnet)'
    )


def _unverified_hint(name):
    """Names an unverified conversion of `name` in the cache (a converted `bvlc_alexnet.npy`)."""
    found = registry.converted_path(f"{name}-unverified")
    if found is None:
        return ""
    return (
        f" An unverified conversion (no published checksum, e.g. from {name}.npy) is in the "
        f"cache: pass --weights {found} to use it."
    )


def _is_checkpoint(path):
    """A cuda-convnet checkpoint: a folder, or a zip, gzip or pickle file (not a Keras file)."""
    if path.is_dir():
        return True
    if path.suffix.lower() in (".keras", ".h5"):  # a .keras file is a zip too
        return False
    with open(path, "rb") as f:
        return f.read(4).startswith(_CHECKPOINT_MAGIC)


def _converted_checkpoint(path):
    """The cached conversion of a cuda-convnet checkpoint (chm2012 weights for layers-145)."""
    from alexnet_keras.cuda_convnet.checkpoint_io import checkpoint_file
    from alexnet_keras.cuda_convnet.convert import convert_checkpoint, default_output

    # Hashed once, as `_converted` does: for the cache name and the metadata.
    digests = registry.file_digests(checkpoint_file(path, []))
    output = default_output(path, digests)
    if output.is_file():
        return output
    return pathlib.Path(convert_checkpoint(path, output, digests=digests).output)


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

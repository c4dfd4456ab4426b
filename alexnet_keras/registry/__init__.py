"""The known weight releases, the local cache, and verified downloads.

The releases are data: `alexnet_keras/resources/manifest.json` (a copy of the
repository's `weights/manifest.json`) lists each release's files with their
URL, size and checksums, the variant, the preprocessing and the published
accuracy. The cache is `$ALEXNET_KERAS_HOME`, else `$KERAS_HOME/models/alexnet_keras`,
else `~/.keras/models/alexnet_keras`: converted weights live at
`<cache>/<release>-<sha256[:8]>.weights.h5`, source files at
`<cache>/downloads/<filename>`.

Downloads are written to a temporary file in the target folder and renamed
only once their size and checksum verify, so a failed or tampered transfer
never leaves a file under the final name. Set `ALEXNET_KERAS_MIRROR` to a base
URL to fetch `<mirror>/<filename>` instead of the published URL. With
`ALEXNET_KERAS_OFFLINE=1` (the CLI's `--offline`) nothing touches the network:
a missing file is an `OfflineError` at once. Online, a host that accepts no
connection within `limits.CONNECT_TIMEOUT_SECONDS` (5 s) is an `OfflineError`
too, never a hang; a server that stops sending for
`limits.READ_TIMEOUT_SECONDS` (30 s) is a failed transfer.

This module imports neither Keras nor TensorFlow.
"""

import functools
import hashlib
import http.client
import importlib.resources
import json
import os
import pathlib
import re
import tempfile
import urllib.error
import urllib.request
import warnings

from alexnet_keras import limits
from alexnet_keras.files import apply_umask
from alexnet_keras.registry.network import connect_problem, stream

__all__ = [
    "OfflineError",
    "UnverifiedDownloadWarning",
    "cache_dir",
    "connect_problem",
    "converted_name",
    "converted_path",
    "download",
    "downloaded",
    "file_digests",
    "get_release",
    "identify",
    "manifest",
    "offline",
    "release_names",
]

_CHUNK = 1 << 20


class OfflineError(ValueError):
    """A file is not cached and could not be fetched now: offline, unreachable, or cut off.

    A network failure, not bad input: the CLI exits 1. The message says
    what to fetch and where to put it, or what broke.
    """


class UnverifiedDownloadWarning(UserWarning):
    """A file was accepted without a checksum: none has been published for it."""


def cache_dir() -> pathlib.Path:
    """Returns the cache folder.

    `$ALEXNET_KERAS_HOME` if set; else `$KERAS_HOME/models/alexnet_keras`,
    beside the files `keras.utils.get_file` caches there; else
    `~/.keras/models/alexnet_keras`.

    Example:

    >>> import os
    >>> from unittest import mock
    >>> from alexnet_keras import registry
    >>> env = {k: v for k, v in os.environ.items() if k != "ALEXNET_KERAS_HOME"}
    >>> with mock.patch.dict(os.environ, {**env, "KERAS_HOME": "/data/keras"}, clear=True):
    ...     print(registry.cache_dir())
    /data/keras/models/alexnet_keras
    """
    home = os.environ.get("ALEXNET_KERAS_HOME")
    if home:
        return pathlib.Path(home).expanduser()
    keras_home = os.environ.get("KERAS_HOME")
    if keras_home:
        return pathlib.Path(keras_home).expanduser() / "models" / "alexnet_keras"
    return pathlib.Path.home() / ".keras" / "models" / "alexnet_keras"


def offline() -> bool:
    """True when `ALEXNET_KERAS_OFFLINE` is `1`, `true` or `yes` (any case): no network use.

    The CLI's `--offline` sets it. Downloads then raise `OfflineError` at
    once, naming the file to fetch and where to put it.

    Example:

    >>> import os
    >>> from unittest import mock
    >>> from alexnet_keras import registry
    >>> with mock.patch.dict(os.environ, {"ALEXNET_KERAS_OFFLINE": "yes"}):
    ...     registry.offline()
    True
    >>> with mock.patch.dict(os.environ, {"ALEXNET_KERAS_OFFLINE": "0"}):
    ...     registry.offline()
    False
    """
    value = os.environ.get("ALEXNET_KERAS_OFFLINE", "")
    return value.strip().lower() in ("1", "true", "yes")


@functools.cache
def manifest() -> dict:
    """Returns the parsed package manifest (`{"format_version": 1, "releases": {...}}`).

    The dict is shared between calls: do not modify it.
    """
    text = (
        importlib.resources.files("alexnet_keras")
        .joinpath("resources/manifest.json")
        .read_text("utf-8")
    )
    return json.loads(text)


def release_names() -> list:
    """Returns the names of the known releases, sorted.

    Example:

    >>> from alexnet_keras import registry
    >>> registry.release_names()
    ['bvlc_alexnet', 'bvlc_reference_caffenet']
    """
    return sorted(manifest()["releases"])


def get_release(name: str) -> dict:
    """Returns the manifest entry of release `name`.

    Raises:
        ValueError: if `name` is not a known release.

    Example:

    >>> from alexnet_keras import registry
    >>> entry = registry.get_release("bvlc_alexnet")
    >>> entry["variant"], entry["accuracy"]["top1"], entry["files"][0]["format"]
    ('bvlc', 57.1, 'caffemodel')
    """
    releases = manifest()["releases"]
    if name not in releases:
        known = ", ".join(sorted(releases))
        raise ValueError(f"Unknown weights release; known: {known}. Received: name={name!r}")
    return releases[name]


def file_digests(path) -> dict:
    """Returns `{"sha1", "sha256", "size"}` of a file, read once in 1 MiB chunks.

    Example:

    >>> import os, tempfile
    >>> from alexnet_keras import registry
    >>> path = os.path.join(tempfile.mkdtemp(), "abc.bin")
    >>> with open(path, "wb") as f:
    ...     _ = f.write(b"abc")
    >>> d = registry.file_digests(path)
    >>> d["size"], d["sha1"][:8], d["sha256"][:8]
    (3, 'a9993e36', 'ba7816bf')
    """
    sha1, sha256, size = hashlib.sha1(), hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            sha1.update(chunk)
            sha256.update(chunk)
            size += len(chunk)
    return {"sha1": sha1.hexdigest(), "sha256": sha256.hexdigest(), "size": size}


def _check_key(file_entry):
    """The digest a file is verified by: sha256 when published, else sha1, else None."""
    for key in ("sha256", "sha1"):
        if file_entry.get(key):
            return key
    return None


def identify(digests: dict):
    """Returns `(release_name, file_entry)` of the known file with these digests, or None.

    Files are compared by sha256 where the manifest has one, else by sha1.

    Example:

    >>> from alexnet_keras import registry
    >>> name, f = registry.identify({"sha1": "9116a64c0fbe4459d18f4bb6b56d647b63920377"})
    >>> name, f["filename"]
    ('bvlc_alexnet', 'bvlc_alexnet.caffemodel')
    >>> registry.identify({"sha1": "0" * 40, "sha256": "0" * 64}) is None
    True
    """
    for name, entry in manifest()["releases"].items():
        for file_entry in entry["files"]:
            # The strongest digest both sides have: sha256 where published, else sha1.
            key = next(
                (k for k in ("sha256", "sha1") if file_entry.get(k) and digests.get(k)), None
            )
            if key and digests[key] == file_entry[key]:
                return name, file_entry
    return None


def converted_name(name: str, sha256: str) -> pathlib.Path:
    """Returns `<cache>/<name>-<sha256[:8]>.weights.h5`, where `convert` writes a release.

    Example:

    >>> from alexnet_keras import registry
    >>> registry.converted_name("bvlc_alexnet", "4bff209a9837298157915ef50a4831a5").name
    'bvlc_alexnet-4bff209a.weights.h5'
    """
    if not re.fullmatch(r"[0-9a-f]{8,}", sha256 or ""):
        raise ValueError(f"Expected a hex sha256 digest. Received: sha256={sha256!r}")
    return cache_dir() / f"{name}-{sha256[:8]}.weights.h5"


def converted_path(name: str):
    """Returns the newest `<cache>/<name>-<8 hex>.weights.h5`, or None if there is none."""
    pattern = re.compile(re.escape(name) + r"-[0-9a-f]{8}\.weights\.h5")
    folder = cache_dir()
    if not folder.is_dir():
        return None
    found = [p for p in folder.iterdir() if pattern.fullmatch(p.name) and p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime, default=None)


def _pick_file(name, entry, fmt):
    formats = [f["format"] for f in entry["files"]]
    # The caffemodel is the primary release: the file whose checksum BVLC published.
    want = fmt or ("caffemodel" if "caffemodel" in formats else formats[0])
    for file_entry in entry["files"]:
        if file_entry["format"] == want:
            return file_entry
    raise ValueError(
        f"Release {name} has no {want!r} file; it has {formats}. Received: fmt={fmt!r}"
    )


def _mismatch(file_entry, digests):
    """Returns what is wrong with `digests` for `file_entry`, or None if they verify."""
    size = file_entry.get("size")
    if size is not None and digests["size"] != size:
        kind = "truncated transfer" if digests["size"] < size else "size mismatch"
        return f"{kind}: expected {size} bytes. Received: {digests['size']} bytes"
    key = _check_key(file_entry)
    if key and digests[key] != file_entry[key]:
        return f"{key} mismatch: expected {file_entry[key]}. Received: {digests[key]}"
    return None


def _check_file(path, file_entry, digests=None):
    """Returns what is wrong with the file at `path`, or None (warning if it has no checksum)."""
    problem = _mismatch(file_entry, digests or file_digests(path))
    if problem is None and not _check_key(file_entry):
        warnings.warn(
            f"{path}: accepted without a checksum check (none is published for this file)",
            UnverifiedDownloadWarning,
            stacklevel=3,
        )
    return problem


def download(name: str, fmt=None, *, dest_dir=None, progress=True) -> pathlib.Path:
    """Returns the path of a verified source file of release `name`, downloading it if needed.

    Args:
        name: a release name, e.g. `"bvlc_alexnet"`.
        fmt: the file format (`"caffemodel"`, `"npy"`); default: the caffemodel.
        dest_dir: the folder; default `<cache>/downloads`.
        progress: draw a progress line on stderr.

    Returns:
        `dest_dir/<filename>`. A file already there is reused if it verifies.
        A file with no published checksum is accepted with an
        `UnverifiedDownloadWarning`.

    Raises:
        ValueError: on a truncated transfer or a size or checksum mismatch; the
            message names the URL, the expected and the received value.
        OfflineError: if the URL cannot be reached; the message says what to
            download and where to put it.

    Example (needs the network; ~233 MB):

    >>> registry.download("bvlc_alexnet")  # doctest: +SKIP
    PosixPath('/home/me/.keras/models/alexnet_keras/downloads/bvlc_alexnet.caffemodel')
    """
    file_entry = _pick_file(name, get_release(name), fmt)
    filename = file_entry["filename"]
    folder = pathlib.Path(dest_dir) if dest_dir is not None else cache_dir() / "downloads"
    target = folder / filename
    # None: there and verified; False: absent; a string: what is wrong with it.
    stale = target.is_file() and _check_file(target, file_entry)
    if stale is None:
        return target
    mirror = os.environ.get("ALEXNET_KERAS_MIRROR")
    url = f"{mirror.rstrip('/')}/{filename}" if mirror else file_entry["url"]
    if offline():
        raise _offline_error(name, file_entry, target, stale, "offline mode: ALEXNET_KERAS_OFFLINE")
    try:
        # The probe bounds the connect; urlopen's timeout then bounds each read.
        problem = connect_problem(url)
        if problem:
            raise OSError(problem)
        response = urllib.request.urlopen(url, timeout=limits.READ_TIMEOUT_SECONDS)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
        # HTTPError's str() carries the status code; its .reason does not.
        reason = e if isinstance(e, urllib.error.HTTPError) else getattr(e, "reason", e)
        raise _offline_error(name, file_entry, target, stale, f"{url}: {reason}") from None
    with response:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = tempfile.NamedTemporaryFile(
            dir=folder, prefix=f".{filename}.", suffix=".part", delete=False
        )
        try:
            with tmp:
                try:
                    digests, length = stream(response, url, tmp, filename, progress)
                except ValueError as e:  # the connection broke: a network failure (exit 1)
                    raise OfflineError(str(e)) from None
            if length is not None and digests["size"] < length:
                raise OfflineError(
                    f"{url}: truncated transfer: received {digests['size']} of {length} bytes; "
                    "the partial download was deleted"
                )
            problem = _check_file(target, file_entry, digests)
            if problem:
                raise ValueError(f"{url}: {problem}; the partial download was deleted")
            apply_umask(tmp.name)  # NamedTemporaryFile's 0600 would stay
            os.replace(tmp.name, target)
        except BaseException:
            pathlib.Path(tmp.name).unlink(missing_ok=True)
            raise
    return target


def _offline_error(name, file_entry, target, stale, why):
    """The one-line `OfflineError`: the file to fetch, its checksum and where to put it."""
    sha1 = file_entry.get("sha1")
    check = f"sha1 {sha1}" if sha1 else "no published checksum"
    there = f" (the file there now fails: {stale})" if stale else ""
    return OfflineError(
        f"{name} is not in the cache and could not be downloaded ({why}). "
        f"Download {file_entry['url']} ({check}) and run "
        f"`alexnet-keras convert {file_entry['filename']}`, or put it at {target}{there}."
    )


def downloaded(name: str, fmt=None):
    """Returns a verified source file of release `name` in `<cache>/downloads`, or None.

    Any listed format counts (the caffemodel first), or only `fmt`. A file
    with no published checksum is accepted with an `UnverifiedDownloadWarning`;
    one that fails its checksum is skipped (`download` replaces it).

    Example:

    >>> from alexnet_keras import registry
    >>> registry.downloaded("bvlc_alexnet", "h5") is None  # the release lists no .h5 file
    True
    """
    files = sorted(get_release(name)["files"], key=lambda f: f["format"] != "caffemodel")
    for file_entry in files:
        path = cache_dir() / "downloads" / file_entry["filename"]
        if fmt in (None, file_entry["format"]) and path.is_file():
            if not _check_file(path, file_entry):
                return path
    return None

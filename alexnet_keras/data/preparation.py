"""Preparing a TensorFlow Datasets set that is not prepared yet: `download_and_prepare`.

`open_dataset("cifar10")` on a fresh machine lands here. Online, TFDS
downloads the set's archives (its own progress bars on stderr), checks them
against the checksums TFDS registered, and writes the prepared set under
`<data_dir>/<name>/<version>/`; TFDS's INFO logs stay off stderr. Before
that, each archive host is probed with `registry.connect_problem`, so a
machine without a network learns it within `limits.CONNECT_TIMEOUT_SECONDS`
instead of after TFDS's retries; while TFDS downloads, every socket read
gives up after `limits.READ_TIMEOUT_SECONDS`.

Offline (`ALEXNET_KERAS_OFFLINE=1`, the CLI's `--offline`) or without a
network, the error is one `registry.OfflineError` line naming each archive
(URL, size, sha256) and the folder to put it in: TFDS's manual dir,
`<data_dir>/downloads/manual/`. With the archives there, the set is
prepared from them without the network, offline included; TFDS checks
their checksums.
"""

import contextlib
import os
import socket
import warnings

from alexnet_keras import limits, registry

__all__ = ["manual_dir", "prepare", "quiet_tfds"]


def manual_dir(data_dir):
    """TFDS's default manual dir of `data_dir`: where archives fetched by hand go.

    Example:

    >>> from alexnet_keras.data.preparation import manual_dir
    >>> manual_dir("/data/tfds")
    '/data/tfds/downloads/manual'
    """
    return os.path.join(data_dir, "downloads", "manual")


def _archives(builder):
    """`[(url, UrlInfo)]`: the archives TFDS registered for the set (none for some sets)."""
    infos = type(builder).url_infos or {}
    return sorted(infos.items())


def _describe(archives):
    return ", ".join(
        f"{url} ({int(info.size)} bytes, sha256 {info.checksum}) as {info.filename}"
        for url, info in archives
    )


def _missing(name, data_dir, archives, why):
    """The one-line OfflineError for a set that cannot be prepared now."""
    where = manual_dir(data_dir)
    if not archives:
        return registry.OfflineError(
            f"Dataset {name!r} is not prepared in {data_dir} and cannot be downloaded ({why}). "
            f"Prepare it where there is a network (tfds.builder({name!r}, data_dir=...)"
            f".download_and_prepare()) and copy that data dir to {data_dir}."
        )
    return registry.OfflineError(
        f"Dataset {name!r} is not prepared in {data_dir} and cannot be downloaded ({why}). "
        f"Download {_describe(archives)} into {where}/ and run again: it is prepared from "
        "there without the network."
    )


@contextlib.contextmanager
def quiet_tfds():
    """TFDS's absl INFO and WARNING lines and Python warnings off stderr, within the block.

    TFDS logs through absl (`Variant folder ... has no dataset_info.json`,
    `Downloading and preparing dataset ...`); errors still show.
    """
    from absl import logging as absl_logging

    verbosity = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        absl_logging.set_verbosity(verbosity)


@contextlib.contextmanager
def _bounded_reads():
    """requests (TFDS's downloader) passes no timeout: the socket default bounds each read."""
    timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(limits.READ_TIMEOUT_SECONDS)
    try:
        yield
    finally:
        socket.setdefaulttimeout(timeout)


def _check_reachable(name, data_dir, archives):
    """Raises the OfflineError unless every archive is in the manual dir or its host answers."""
    where = manual_dir(data_dir)
    fetch = [(url, info) for url, info in archives
             if not os.path.isfile(os.path.join(where, info.filename))]  # fmt: skip
    if fetch and registry.offline():
        raise _missing(name, data_dir, fetch, "offline mode: ALEXNET_KERAS_OFFLINE")
    for url, _ in fetch:
        problem = registry.connect_problem(url)
        if problem:
            raise _missing(name, data_dir, fetch, problem)


def prepare(builder, name, data_dir):
    """Prepares the TFDS `builder` of set `name` in `data_dir` with `download_and_prepare`.

    Args:
        builder: a `tfds.core.DatasetBuilder` whose set is not prepared.
        name: the set's name, for messages.
        data_dir: the TFDS data dir (created if needed).

    Raises:
        registry.OfflineError: offline, or an archive host cannot be
            reached, or a download broke; one line naming the archives and
            `<data_dir>/downloads/manual/`.
        ValueError: a set that needs a manual download, or an archive with
            the wrong checksum; one line.

    Example (needs the network, or the archive in the manual dir):

    >>> import tensorflow_datasets as tfds  # doctest: +SKIP
    >>> builder = tfds.builder("cifar10", data_dir="/tmp/tfds")  # doctest: +SKIP
    >>> prepare(builder, "cifar10", "/tmp/tfds")  # doctest: +SKIP
    """
    import requests
    import tensorflow_datasets as tfds

    where = manual_dir(data_dir)
    if getattr(builder, "MANUAL_DOWNLOAD_INSTRUCTIONS", None) and not (
        os.path.isdir(where) and os.listdir(where)
    ):
        raise ValueError(
            f"Dataset {name!r} is not prepared in {data_dir} and TFDS cannot download it: put "
            f"its archives in {where}/ (see https://www.tensorflow.org/datasets/catalog/{name}) "
            "and run again, or point --data-dir / TFDS_DATA_DIR at a folder where it is prepared"
        )
    archives = _archives(builder)
    if not getattr(builder, "MANUAL_DOWNLOAD_INSTRUCTIONS", None):
        _check_reachable(name, data_dir, archives)
    config = tfds.download.DownloadConfig(try_download_gcs=False)
    try:
        with quiet_tfds(), _bounded_reads():
            builder.download_and_prepare(
                download_dir=os.path.join(data_dir, "downloads"), download_config=config
            )
    except tfds.core.download.download_manager.NonMatchingChecksumError as e:
        raise ValueError(
            f"Dataset {name!r}: an archive has the wrong checksum, so nothing was prepared "
            f"({' '.join(str(e).split())})"
        ) from None
    except (requests.RequestException, TimeoutError, tfds.download.DownloadError) as e:
        # The host answered the probe but the transfer failed: still nothing prepared.
        reason = " ".join(str(e).split()) or type(e).__name__
        raise _missing(name, data_dir, archives, reason[:300]) from None

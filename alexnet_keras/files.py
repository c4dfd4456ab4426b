"""Checks on the files a user names, shared by every reader (Caffe, cuda-convnet, cfg, images).

A path is accepted only if `stat` says it is a regular file: a symlink to
`/dev/zero`, a FIFO or a socket named like a weights file would otherwise be
read until memory runs out, or block forever. Reads are bounded by the caller's
limit (`alexnet_keras.limits`), checked against the size before reading.
"""

import os
import pathlib
import stat

__all__ = ["existing_file", "read_bounded", "regular_file_size"]


def regular_file_size(path):
    """The size of `path` if it is a regular file (after symlinks), else None.

    Never opens the file, so a FIFO cannot block.

    Example:

    >>> from alexnet_keras.files import regular_file_size
    >>> regular_file_size("/dev/zero") is None, regular_file_size("missing") is None
    (True, True)
    """
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def _kind(mode):
    if stat.S_ISDIR(mode):
        return "is a directory"
    if stat.S_ISFIFO(mode):
        return "is a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device"
    if stat.S_ISSOCK(mode):
        return "is a socket"
    return "is not a regular file"


def existing_file(path, expected, max_bytes=None):
    """Returns `path` as a `Path` after checking it is a non-empty regular file.

    Args:
        path: the file the user named.
        expected: what it should be, for the message (`"a .caffemodel file"`).
        max_bytes: optional limit on the file's size.

    Raises:
        ValueError: `"{path}: no such file"`, `"{path}: is a directory,
            expected {expected}"` (or a FIFO, a device, a socket), `"{path}:
            the file is empty, expected {expected}"` or `"{path}: N bytes;
            at most M are read as {expected}"`.

    Example:

    >>> from alexnet_keras.files import existing_file
    >>> existing_file("missing.npy", "a .npy file")
    Traceback (most recent call last):
    ...
    ValueError: missing.npy: no such file
    >>> existing_file("/dev/zero", "a .npy file")
    Traceback (most recent call last):
    ...
    ValueError: /dev/zero: is a device, expected a .npy file
    """
    path = pathlib.Path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except OSError as e:  # a symlink loop, a name too long, no permission
        raise ValueError(f"{path}: cannot be read ({e.strerror or e})") from None
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"{path}: {_kind(info.st_mode)}, expected {expected}")
    if info.st_size == 0:
        raise ValueError(f"{path}: the file is empty, expected {expected}")
    if max_bytes is not None and info.st_size > max_bytes:
        raise ValueError(
            f"{path}: {info.st_size:,} bytes; at most {max_bytes:,} are read as {expected}"
        )
    return path


def read_bounded(path, expected, max_bytes):
    """The bytes of a regular file of at most `max_bytes`, read without following it past that.

    The size is checked before reading and the read stops at `max_bytes + 1`,
    so a file that grows while being read is refused too.

    Raises:
        ValueError: as `existing_file`, or when the file grew past the limit.

    Example:

    >>> import os, tempfile
    >>> from alexnet_keras.files import read_bounded
    >>> path = os.path.join(tempfile.mkdtemp(), "a.cfg")
    >>> _ = open(path, "w").write("[conv1]\\n")
    >>> read_bounded(path, "a layer cfg", 1024)
    b'[conv1]\\n'
    """
    path = existing_file(path, expected, max_bytes)
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"{path}: grew past {max_bytes:,} bytes while being read as {expected}")
    return data

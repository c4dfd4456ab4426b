"""Checks on the files a user names, shared by every reader (Caffe, cuda-convnet, cfg, images).

A path is accepted only if `stat` says it is a regular file: a symlink to
`/dev/zero`, a FIFO or a socket named like a weights file would otherwise be
read until memory runs out, or block forever. Reads are bounded by the caller's
limit (`alexnet_keras.limits`), checked against the size before reading.
"""

import errno
import os
import pathlib
import re
import shutil
import stat

__all__ = [
    "apply_umask",
    "existing_file",
    "read_bounded",
    "regular_file_size",
    "umask",
    "write_error",
]

# The write failures a user can fix (free space, a quota, permissions), and how
# to say them. Anything else is not a "cannot write here" and is not rephrased.
_WRITE_FAILURES = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EFBIG: "the file would exceed the size limit",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}
# h5py and TensorFlow carry the OS error in their message (a number or the C
# library's text), not in `errno`.
_ERRNO_IN_TEXT = re.compile(r"errno = (\d+)|\[Errno (\d+)\]|error code (\d+)")


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


def _megabytes(n):
    return f"{n / 1e6:,.0f} MB" if n >= 1e6 else f"{n:,} bytes"


def write_error(path, error, needed=None):
    """The one-line `OSError` for a failed write of `path`, or None if `error` is no such failure.

    Writers (weights files, `.npy`, checkpoints, exports) call this with what
    they caught: an `OSError`, or the `RuntimeError` / `tf.errors.OpError` that
    h5py and TensorFlow raise with the OS error in their message. A full disk,
    a quota, a size limit, a read-only file system or a permission becomes
    `{path}: cannot be written: the disk is full; it needs about N MB, M MB are
    free`; anything else returns None, for the caller to re-raise.

    Args:
        path: the file or folder being written.
        error: the exception caught.
        needed: bytes the write needs, if known.

    Example:

    >>> import errno
    >>> from alexnet_keras.files import write_error
    >>> e = write_error("/x/m.weights.h5", OSError(errno.ENOSPC, "No space left on device"), 2e8)
    >>> e.filename, e.strerror.split(";")[0]
    ('/x/m.weights.h5', 'cannot be written: the disk is full')
    >>> write_error("/x/m.weights.h5", OSError(errno.EIO, "I/O error")) is None
    True
    """
    code = getattr(error, "errno", None) if isinstance(error, OSError) else None
    if code is None:
        text = str(error)
        found = _ERRNO_IN_TEXT.search(text)
        code = int(next(g for g in found.groups() if g)) if found else None
        # TensorFlow's file system says only the C library's text ("File too large").
        code = code or next((c for c in _WRITE_FAILURES if os.strerror(c) in text), None)
    if code not in _WRITE_FAILURES:
        return None
    folder = pathlib.Path(path).parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free = f"{_megabytes(shutil.disk_usage(folder).free)} are free"
    except OSError:
        free = "the free space is unknown"
    space = f"; it needs about {_megabytes(int(needed))}, {free}" if needed else f"; {free}"
    return OSError(code, f"cannot be written: {_WRITE_FAILURES[code]}{space}", str(path))


def umask():
    """The process's umask, read from `/proc` where it can be (changing it races with threads).

    Example:

    >>> from alexnet_keras.files import umask
    >>> 0 <= umask() <= 0o777
    True
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def apply_umask(path):
    """Gives a temporary file or folder the mode a plain `open` or `mkdir` would have given it.

    `tempfile.mkstemp` makes files 0600 and `mkdtemp` folders 0700, whatever
    the umask; a file renamed into place from one would stay private. Writers
    call this before the rename: `0666 & ~umask` for a file, `0777 & ~umask`
    for a folder, as the user's umask asks.

    Example:

    >>> import os, stat, tempfile
    >>> from alexnet_keras.files import apply_umask, umask
    >>> fd, path = tempfile.mkstemp(); os.close(fd)
    >>> apply_umask(path)
    >>> stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~umask()
    True
    """
    base = 0o777 if os.path.isdir(path) else 0o666
    os.chmod(path, base & ~umask())

"""Checks on the files a user names, shared by every reader (Caffe, cuda-convnet, cfg)."""

import pathlib

__all__ = ["existing_file"]


def existing_file(path, expected):
    """Returns `path` as a `Path` after checking it is a non-empty file.

    Args:
        path: the file the user named.
        expected: what it should be, for the message (`"a .caffemodel file"`).

    Raises:
        ValueError: `"{path}: no such file"`, `"{path}: is a directory,
            expected {expected}"` or `"{path}: the file is empty, expected
            {expected}"`.

    Example:

    >>> from alexnet_keras.files import existing_file
    >>> existing_file("missing.npy", "a .npy file")
    Traceback (most recent call last):
    ...
    ValueError: missing.npy: no such file
    """
    path = pathlib.Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a directory, expected {expected}")
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: the file is empty, expected {expected}")
    return path

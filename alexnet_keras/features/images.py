"""Image files in, batches of views out: the one image lister of `predict` and `features`.

`collect_images` names and checks the files before any model is built, so a
bad file fails fast, by name; `view_batches` decodes them on a few threads,
in order, a batch at a time.
"""

import collections
import concurrent.futures
import pathlib

import numpy as np

from alexnet_keras.data.image_folder import IMAGE_EXTENSIONS, check_image, image_files

__all__ = ["collect_images", "view_batches"]

# Decoding a JPEG and resizing it releases the GIL; four threads keep one CPU
# forward pass fed without holding many decoded images at once.
_DECODE_THREADS = 4


def collect_images(paths):
    """The image files named by `paths`: files as given, folders searched recursively.

    Folders contribute files with an image extension (`.jpg`, `.jpeg`, `.png`,
    `.bmp`, `.gif`, `.webp`), in sorted order; hidden files and folders are skipped,
    and so are symlinks leading out of the folder or into a loop (counted in
    one warning). Every file is then checked without decoding it
    (`data.image_folder.check_image`: a regular file, its header, its size).

    Raises:
        ValueError: a path that does not exist, a folder without images, or
            the first file that is not a whole JPEG/PNG/BMP/GIF/WebP image of an
            accepted size (a FIFO, a device, a 1x100000 strip), by name.

    Example:

    >>> from alexnet_keras.features.images import collect_images
    >>> len(collect_images(["../shared/data/cifar10-mini/test/cat"]))
    10
    """
    files = []
    for path in map(pathlib.Path, paths):
        if path.is_dir():
            found = image_files(path)
            if not found:
                raise ValueError(f"{path}: a folder with no images ({', '.join(IMAGE_EXTENSIONS)})")
            files += map(pathlib.Path, found)
        elif path.exists() or path.is_symlink():
            files.append(path)
        else:
            raise ValueError(f"{path}: no such file or folder")
    for file in files:
        problem = check_image(file)
        if problem is not None:
            raise ValueError(f"{file}: {problem}")
    return files


def view_batches(files, views, batch_size, start=0):
    """Yields `views(file)` of `files[start:]`, stacked `batch_size` at a time, in order.

    Args:
        files: image paths (see `collect_images`).
        views: a function of one path to a NumPy array (a crop, or ten).
        batch_size: files per batch; the last batch may be smaller.
        start: the first file (a resumed run skips what it has done).

    Example:

    >>> from alexnet_keras.features.images import view_batches
    >>> [b.tolist() for b in view_batches(["a", "bb", "ccc"], len, 2)]
    [[1, 2], [3]]
    """
    files = files[start:]
    with concurrent.futures.ThreadPoolExecutor(_DECODE_THREADS) as pool:
        # At most two batches decode ahead: `pool.map` would hold every image of a long list.
        pending = collections.deque()
        for file in files:
            pending.append(pool.submit(views, file))
            if len(pending) == 2 * batch_size:
                yield np.stack([pending.popleft().result() for _ in range(batch_size)])
        while pending:
            count = min(batch_size, len(pending))
            yield np.stack([pending.popleft().result() for _ in range(count)])

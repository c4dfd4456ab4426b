"""Image files in, batches of views out: the one image lister of `predict` and `features`.

`collect_images` names and checks the files before any model is built, so a
bad file fails fast, by name; `true_index` reads a file's class from its
folder's name; `view_batches` decodes them on a few threads, in order, a
batch at a time.
"""

import collections
import concurrent.futures
import pathlib

import numpy as np

from alexnet_keras.data.image_folder import IMAGE_EXTENSIONS, check_image, image_files

__all__ = ["collect_images", "true_index", "view_batches"]

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


def _key(text):
    return " ".join(str(text).replace("_", " ").split()).casefold()


def true_index(path, names):
    """The class an image's folder names, or None.

    A folder named by a class id (an ImageNet WordNet id such as
    `n01440764`) or by a class name (`cat`, `golden_retriever`; case, spaces
    and underscores aside) gives that class. An ambiguous name (ImageNet has
    two `crane` classes) gives None: only an id tells them apart.

    Args:
        path: the image file.
        names: the weights' classes, strings or `(id, name)` pairs.

    Example:

    >>> from alexnet_keras.features.images import true_index
    >>> names = [("n01440764", "tench"), ("n01443537", "goldfish")]
    >>> true_index("imagenet-sample/n01443537/x.JPEG", names), true_index("cat/1.png", names)
    (1, None)
    """
    folder = _key(pathlib.Path(path).parent.name)
    found = set()
    for index, name in enumerate(names or ()):
        parts = name if isinstance(name, (list, tuple)) else (name,)
        if folder == _key(parts[0]) and len(parts) > 1:
            return index  # an id is unique
        if folder == _key(parts[-1]):
            found.add(index)
    return found.pop() if len(found) == 1 else None


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

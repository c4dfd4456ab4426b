"""Input preprocessing, crops and ImageNet class names.

The geometry follows Caffe's test phase: images are resized to 256 and the
227 crop starts at `(256 - 227) // 2 = 14` (`data_transformer.cpp`); the CHM
224 crop starts at 16. Ten-crop is the four corners and the centre, then the
same five mirrored (Caffe `classifier.oversample`, cuda-convnet multiview).
"""

import functools
import importlib.resources

import numpy as np

from alexnet_keras.variants import get_variant

__all__ = [
    "center_crop",
    "decode_predictions",
    "imagenet_classes",
    "load_image",
    "preprocess_input",
    "ten_crop",
]


@functools.lru_cache(maxsize=1)
def imagenet_classes():
    """The 1000 ILSVRC-2012 classes as `(wnid, name)` pairs, in sorted-wnid order.

    This is Caffe's class-index order (`synset_words.txt`), which BVLC's
    weights use.

    Example:

    >>> from alexnet_keras.preprocessing import imagenet_classes
    >>> imagenet_classes()[0]
    ('n01440764', 'tench')
    """
    text = importlib.resources.files("alexnet_keras").joinpath("resources/imagenet_classes.txt")
    pairs = [line.split(" ", 1) for line in text.read_text("utf-8").splitlines() if line]
    return tuple((wnid, name) for wnid, name in pairs)


def _is_numpy(x):
    return isinstance(x, (np.ndarray, np.generic, list, tuple))


def preprocess_input(x, variant="bvlc", mean=None):
    """Turns RGB 0..255 crops into what the variant's conv1 expects.

    `bvlc` and `caffenet` take BGR minus the BVLC ImageNet mean
    (B 104.00699, G 116.66877, R 122.67891). `chm2012` takes RGB minus a mean;
    its release subtracts a per-pixel mean image, which converted weights carry
    in their metadata and pass as `mean`. Without it the same ImageNet mean is
    used, in RGB order. There is no scaling: the values stay in 0..255 units.

    Args:
        x: RGB images, float 0..255, channels last (`(H, W, 3)` or
            `(N, H, W, 3)`), already cropped; a NumPy array or a tensor.
        variant: `"bvlc"`, `"caffenet"` or `"chm2012"`.
        mean: optional mean to subtract instead of the variant's, in the
            variant's colour order; shape `(3,)` or `(H, W, 3)`.

    Returns:
        float32 array (for NumPy input) or tensor, same shape as `x`.

    Example:

    >>> import numpy as np
    >>> from alexnet_keras import preprocess_input
    >>> preprocess_input(np.array([[[[255.0, 0.0, 0.0]]]]))[0, 0, 0]  # red, to BGR
    array([-104.00699, -116.66877,  132.32109], dtype=float32)
    """
    spec = get_variant(variant)
    mean = np.asarray(spec.mean if mean is None else mean, dtype=np.float32)
    if _is_numpy(x):
        x = np.asarray(x, dtype=np.float32)
        if x.shape[-1:] != (3,):
            raise ValueError(
                f"Expected RGB images with 3 channels last. Received: x.shape={x.shape}"
            )
        if spec.color_order == "BGR":
            x = x[..., ::-1]
        return x - mean
    import tensorflow as tf

    x = tf.cast(x, tf.float32)
    if x.shape[-1] != 3:
        raise ValueError(f"Expected RGB images with 3 channels last. Received: x.shape={x.shape}")
    if spec.color_order == "BGR":
        x = tf.reverse(x, axis=[-1])
    return x - mean


def decode_predictions(preds, top=5, class_names=None):
    """Turns a batch of class scores into readable labels.

    Args:
        preds: `(N, classes)` scores.
        top: how many labels to return per row.
        class_names: the class list, as names or `(id, name)` pairs; defaults
            to the 1000 ImageNet classes in sorted-wnid order.

    Returns:
        One list per row of `(id, name, score)` tuples, best first. For plain
        names, `id` is the class index as a string.

    Example:

    >>> import numpy as np
    >>> from alexnet_keras import decode_predictions
    >>> preds = np.zeros((1, 1000)); preds[0, 1] = 1.0
    >>> decode_predictions(preds, top=1)
    [[('n01443537', 'goldfish', 1.0)]]
    """
    preds = np.asarray(preds)
    if class_names is None:
        classes = imagenet_classes()
    else:
        classes = [
            tuple(c) if isinstance(c, (tuple, list)) else (str(i), str(c))
            for i, c in enumerate(class_names)
        ]
    if preds.ndim != 2 or preds.shape[1] != len(classes):
        raise ValueError(
            f"`decode_predictions` expects a batch of shape (N, {len(classes)}). "
            f"Received: preds.shape={preds.shape}"
        )
    results = []
    for row in preds:
        order = np.argsort(-row, kind="stable")[:top]
        results.append([(*classes[i], float(row[i])) for i in order])
    return results


def _crop_offsets(height, width, size):
    if height < size or width < size:
        raise ValueError(
            f"Images must be at least {size}x{size} to crop. Received: image size={height}x{width}"
        )
    return (height - size) // 2, (width - size) // 2


def center_crop(images, size=227):
    """The centre `size` x `size` crop, at Caffe's offset (`(256 - 227) // 2 = 14`).

    Args:
        images: `(H, W, C)` or `(N, H, W, C)`, NumPy array or tensor.
        size: crop size.

    Returns:
        The crop, of the input's type.

    Example:

    >>> import numpy as np
    >>> from alexnet_keras.preprocessing import center_crop
    >>> center_crop(np.zeros((256, 256, 3)), 227).shape
    (227, 227, 3)
    """
    h, w = images.shape[-3], images.shape[-2]
    top, left = _crop_offsets(h, w, size)
    return images[..., top : top + size, left : left + size, :]


def ten_crop(images, size=227):
    """Caffe's ten views: 4 corners and centre, then the same 5 mirrored.

    Args:
        images: `(H, W, C)` or `(N, H, W, C)`, NumPy array or tensor.
        size: crop size.

    Returns:
        `(10, size, size, C)` for one image, `(N, 10, size, size, C)` for a
        batch. Average the softmax over axis 0 (or 1), as Caffe and
        cuda-convnet do.

    Example:

    >>> import numpy as np
    >>> from alexnet_keras.preprocessing import ten_crop
    >>> ten_crop(np.zeros((256, 256, 3)), 227).shape
    (10, 227, 227, 3)
    """
    h, w = images.shape[-3], images.shape[-2]
    top, left = _crop_offsets(h, w, size)
    corners = [(0, 0), (0, w - size), (h - size, 0), (h - size, w - size), (top, left)]
    crops = [images[..., y : y + size, x : x + size, :] for y, x in corners]
    crops += [c[..., ::-1, :] for c in crops]
    if _is_numpy(images):
        return np.stack(crops, axis=-4)
    import tensorflow as tf

    return tf.stack(crops, axis=-4)


def load_image(path, size=256):
    """Reads an image file as RGB float32 0..255, shorter side resized to `size`.

    Args:
        path: a JPEG, PNG, BMP or GIF file.
        size: the length of the shorter side after resizing (bilinear,
            antialiased); `None` keeps the original size.

    Returns:
        `(H, W, 3)` float32 NumPy array.

    Raises:
        ValueError: if the file cannot be read or decoded as an image.

    Example:

    >>> from alexnet_keras.preprocessing import load_image
    >>> load_image("../shared/data/imagenet-sample/n01440764/n01440764_tench.JPEG").shape[2]
    3
    """
    import tensorflow as tf

    try:
        data = tf.io.read_file(str(path))
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
    except (tf.errors.OpError, OSError) as e:
        message = getattr(e, "message", str(e)).splitlines()[0]
        raise ValueError(f"{path}: not a readable image ({message})") from None
    image = tf.cast(image, tf.float32)
    if size is not None:
        h, w = image.shape[0], image.shape[1]
        scale = size / min(h, w)
        new = (max(size, round(h * scale)), max(size, round(w * scale)))
        image = tf.image.resize(image, new, method="bilinear", antialias=True)
    return image.numpy()

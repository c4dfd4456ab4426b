"""Input preprocessing, crops and ImageNet class names: NumPy and tensors, one implementation.

As in keras' `applications/imagenet_utils.py`, NumPy arrays and tensors go
through the same code, which the pipelines, the serving graph and `predict`
call. TensorFlow is imported inside functions: `import alexnet_keras` stays light.

Evaluation images are resized by a protocol (`PROTOCOLS`, `resize_image`):
`"bvlc"` warps them to 256x256, as Caffe's ImageNet LMDB did for BVLC's
published accuracy; `"shorter-side"` resizes the shorter side to 256. The
227 crop starts at `(256 - 227) // 2 = 14` (`data_transformer.cpp`); the CHM
224 crop starts at 16. Ten-crop is the four corners and the centre, then the
same five mirrored (Caffe `classifier.oversample`, cuda-convnet multiview).
"""

import collections.abc

import numpy as np

from alexnet_keras.variants import (
    class_labels,
    class_names,
    decode_predictions,
    get_variant,
    imagenet_classes,
)
from alexnet_keras.weights._schema import PROTOCOLS, weights_protocol

__all__ = [
    "center_crop",
    "center_crop_tensor",
    "class_labels",
    "class_names",
    "decode_predictions",
    "imagenet_classes",
    "load_image",
    "PROTOCOLS",
    "preprocess_fn",
    "preprocess_input",
    "resize_image",
    "resize_shorter",
    "resize_warp",
    "ten_crop",
    "ten_crop_tensor",
    "weights_protocol",
]


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
            `(N, H, W, 3)`), already cropped; a NumPy array, a tensor of any
            Keras backend or a symbolic `keras.KerasTensor` (`keras.Input`),
            as keras' own `preprocess_input` takes.
        variant: `"bvlc"`, `"caffenet"` or `"chm2012"`.
        mean: optional mean to subtract instead of the variant's, in the
            variant's colour order; shape `(3,)` or `(H, W, 3)`.

    Returns:
        float32 array (for NumPy input), tensor or `KerasTensor`, the shape of `x`.

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
        channels = x.shape[-1:]
    elif _is_keras_tensor(x) or not _is_tf_tensor(x):
        import keras

        x = keras.ops.cast(x, "float32")
        channels = tuple(x.shape[-1:])
    else:
        import tensorflow as tf

        x = tf.cast(x, tf.float32)
        channels = tuple(x.shape[-1:])
    if channels != (3,):
        raise ValueError(f"Expected RGB images with 3 channels last. Received: x.shape={x.shape}")
    return _to_model_input(x, spec.color_order, mean)


def _is_keras_tensor(x):
    """A symbolic `keras.KerasTensor` (checked by type name: numpy input never imports keras)."""
    return any(t.__name__ == "KerasTensor" for t in type(x).__mro__)


def _is_tf_tensor(x):
    """A TensorFlow tensor (the pipelines' graph tensors included); JAX and torch tensors are not.

    Checked by module name, so JAX and PyTorch input never imports TensorFlow.
    """
    return type(x).__module__.startswith("tensorflow")


def _to_model_input(x, color_order, mean):
    """RGB float32 0..255 to the model's colour order, minus `mean`: the one copy of this job."""
    if color_order == "BGR" and _is_numpy(x):
        x = x[..., ::-1]
    elif color_order == "BGR" and (_is_keras_tensor(x) or not _is_tf_tensor(x)):
        import keras

        x = keras.ops.flip(x, axis=-1)
    elif color_order == "BGR":
        import tensorflow as tf

        x = tf.reverse(x, axis=[-1])
    return x - mean


def preprocess_fn(preprocessing, input_size):
    """The weights' preprocessing as a function of crops (`preprocess_input` semantics).

    Args:
        preprocessing: the weights' metadata `{"color_order", "mean"}`, a
            variant name, or `None` (identity).
        input_size: the crop size; a per-pixel mean must be that size.

    Returns:
        A function of float32 RGB 0..255 crops `(..., S, S, 3)`, tensors or arrays.

    Example:

    >>> import numpy as np
    >>> from alexnet_keras.preprocessing import preprocess_fn
    >>> fn = preprocess_fn({"color_order": "BGR", "mean": [1.0, 2.0, 3.0]}, 227)
    >>> fn(np.array([[10.0, 20.0, 30.0]], np.float32)).tolist()
    [[29.0, 18.0, 7.0]]
    """
    if preprocessing is None:
        return lambda x: x
    if isinstance(preprocessing, str):
        preprocessing = get_variant(preprocessing).preprocessing
    if not isinstance(preprocessing, collections.abc.Mapping):
        raise ValueError(
            "Expected preprocessing to be a dict {'color_order', 'mean'}, a variant name or "
            f"None. Received: preprocessing={preprocessing!r}"
        )
    order = preprocessing.get("color_order")
    if order not in ("BGR", "RGB"):
        raise ValueError(f"Expected color_order 'BGR' or 'RGB'. Received: color_order={order!r}")
    if list(preprocessing.get("pixel_range", [0, 255])) != [0, 255]:
        raise ValueError(
            "Expected pixel_range [0, 255] (the pipeline does not rescale). Received: "
            f"pixel_range={preprocessing['pixel_range']}"
        )
    mean = np.asarray(preprocessing.get("mean", (0.0, 0.0, 0.0)), np.float32)
    if mean.shape not in ((3,), (input_size, input_size, 3)):
        raise ValueError(
            f"Expected a mean of shape (3,) or ({input_size}, {input_size}, 3). "
            f"Received: mean.shape={mean.shape}"
        )
    return lambda x: _to_model_input(x, order, mean)


def _crop_offsets(height, width, size):
    if height < size or width < size:
        raise ValueError(
            f"Images must be at least {size}x{size} to crop. Received: image size={height}x{width}"
        )
    return (height - size) // 2, (width - size) // 2


def _ten_corners(h, w, size):
    """The top-left corners of the 5 views: 4 corners, then the centre (ints or tensors)."""
    top, left = (h - size) // 2, (w - size) // 2
    return [(0, 0), (0, w - size), (h - size, 0), (h - size, w - size), (top, left)]


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


def _crop_tensor(images, top, left, size):
    crop = images[..., top : top + size, left : left + size, :]
    crop.set_shape([*crop.shape[:-3], size, size, crop.shape[-1]])
    return crop


def center_crop_tensor(image, size):
    """The tensor twin of `center_crop` (`(H, W, C)` or a batch), for sizes known in the graph.

    Example:

    >>> import tensorflow as tf
    >>> from alexnet_keras.preprocessing import center_crop_tensor
    >>> center_crop_tensor(tf.zeros((256, 300, 3)), 227).shape
    TensorShape([227, 227, 3])
    """
    import tensorflow as tf

    shape = tf.shape(image)
    return _crop_tensor(image, (shape[-3] - size) // 2, (shape[-2] - size) // 2, size)


def ten_crop(images, size=227):
    """Caffe's ten views: 4 corners and centre, then the same 5 mirrored.

    Args:
        images: `(H, W, C)` or `(N, H, W, C)`, NumPy array or tensor.
        size: crop size.

    Returns:
        `(10, size, size, C)` for one image, `(N, 10, size, size, C)` for a
        batch. Average the softmax over axis 0 (or 1), as Caffe and
        cuda-convnet do (`data.pipelines.average_crops`).

    Example:

    >>> import numpy as np
    >>> from alexnet_keras.preprocessing import ten_crop
    >>> ten_crop(np.zeros((256, 256, 3)), 227).shape
    (10, 227, 227, 3)
    """
    h, w = images.shape[-3], images.shape[-2]
    if h is not None and w is not None:
        _crop_offsets(h, w, size)
    if not _is_numpy(images):
        return ten_crop_tensor(images, size)
    crops = [images[..., y : y + size, x : x + size, :] for y, x in _ten_corners(h, w, size)]
    crops += [c[..., ::-1, :] for c in crops]
    return np.stack(crops, axis=-4)


def ten_crop_tensor(images, size):
    """The tensor twin of `ten_crop`, for sizes known only in the graph.

    Example:

    >>> import tensorflow as tf
    >>> from alexnet_keras.preprocessing import ten_crop_tensor
    >>> ten_crop_tensor(tf.zeros((2, 256, 300, 3)), 227).shape
    TensorShape([2, 10, 227, 227, 3])
    """
    import tensorflow as tf

    shape = tf.shape(images)
    corners = _ten_corners(shape[-3], shape[-2], size)
    crops = [_crop_tensor(images, y, x, size) for y, x in corners]
    crops += [tf.reverse(c, axis=[-2]) for c in crops]
    return tf.stack(crops, axis=-4)


def resize_shorter(image, size):
    """Shorter side to `size` (bilinear, antialiased): `max(size, round(side * scale))`.

    Args:
        image: `(H, W, C)` or a batch `(N, H, W, C)`, a tensor or NumPy array.
        size: the shorter side after resizing.

    Returns:
        The resized image or batch, a float32 tensor.

    Example:

    >>> import tensorflow as tf
    >>> from alexnet_keras.preprocessing import resize_shorter
    >>> resize_shorter(tf.zeros((50, 80, 3)), 256).shape
    TensorShape([256, 410, 3])
    """
    import tensorflow as tf

    shape = tf.shape(image)
    h, w = tf.cast(shape[-3], tf.float64), tf.cast(shape[-2], tf.float64)
    scale = size / tf.minimum(h, w)
    new = tf.maximum(size, tf.cast(tf.round(tf.stack([h, w]) * scale), tf.int32))
    # At scale 1 the antialiased bilinear kernel weighs each pixel 1 and its
    # neighbours 0, so skipping the resize changes no bit (tested); images
    # already at 256, as Caffe-era clients send them, then cost nothing here.
    return tf.cond(
        tf.reduce_all(new == shape[-3:-1]),
        lambda: tf.cast(image, tf.float32),
        lambda: tf.image.resize(image, new, method="bilinear", antialias=True),
    )


def resize_warp(image, size):
    """Both sides to `size`, aspect ratio not kept: Caffe's `convert_imageset --resize_*`.

    Bilinear without antialiasing and with half-pixel centres, as OpenCV's
    `cv::resize(..., INTER_LINEAR)`, which made the 256x256 ImageNet LMDB
    that BVLC's published accuracy was measured on.

    Example:

    >>> import tensorflow as tf
    >>> from alexnet_keras.preprocessing import resize_warp
    >>> resize_warp(tf.zeros((50, 80, 3)), 256).shape
    TensorShape([256, 256, 3])
    """
    import tensorflow as tf

    return tf.image.resize(tf.cast(image, tf.float32), [size, size], method="bilinear")


def resize_image(image, size, protocol="shorter-side"):
    """The resize of an evaluation protocol: `resize_warp` (`"bvlc"`) or `resize_shorter`.

    Example:

    >>> import tensorflow as tf
    >>> from alexnet_keras.preprocessing import resize_image
    >>> resize_image(tf.zeros((50, 80, 3)), 256, "bvlc").shape
    TensorShape([256, 256, 3])
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"Expected a protocol in {list(PROTOCOLS)}. Received: {protocol!r}")
    return resize_warp(image, size) if protocol == "bvlc" else resize_shorter(image, size)


def load_image(path, size=256, protocol="shorter-side"):
    """Reads an image file as RGB float32 0..255, shorter side resized to `size`.

    The file is checked before it is decoded: a regular file of at most
    `limits.MAX_IMAGE_BYTES`, whose header (`image_header`) gives a size
    within the bounds of `image_header.size_problem` (sides, pixels and the
    pixels after resizing), so no file can make the decoder or the resize
    allocate more than those bounds allow.

    Args:
        path: a JPEG, PNG, BMP, GIF or WebP file.
        size: the length of the shorter side after resizing (bilinear,
            antialiased); `None` keeps the original size.
        protocol: `"shorter-side"`, or `"bvlc"` to warp to `size` x `size`
            instead (`resize_image`).

    Returns:
        `(H, W, 3)` float32 NumPy array.

    Raises:
        ValueError: `"{path}: ..."` in one line, if the file cannot be read,
            its size is refused, or it does not decode as an image.

    Example:

    >>> from alexnet_keras.preprocessing import load_image
    >>> load_image("../shared/data/imagenet-sample/n01440764/n01440764_tench.JPEG").shape[2]
    3
    """
    import tensorflow as tf

    from alexnet_keras.files import read_bounded
    from alexnet_keras.image_header import check_image_size, image_size
    from alexnet_keras.limits import MAX_IMAGE_BYTES

    try:
        data = read_bounded(path, "an image file", MAX_IMAGE_BYTES)
        _, width, height = image_size(data)
    except ValueError as e:
        message = str(e).removeprefix(f"{path}: ")
        raise ValueError(f"{path}: not a readable image ({message})") from None
    check_image_size(width, height, path)
    try:
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
    except tf.errors.OpError as e:
        message = getattr(e, "message", str(e)).splitlines()[0]
        raise ValueError(f"{path}: not a readable image ({message})") from None
    check_image_size(int(image.shape[1]), int(image.shape[0]), path)
    image = tf.cast(image, tf.float32)
    if size is not None:
        image = resize_image(image, size, protocol)
    return image.numpy()

"""The training crop without the whole image: decode and resize only the crop's window.

`train_pipeline`'s crop is defined on the image resized to a shorter side of
256 (`preprocessing.resize_shorter`, bilinear, antialiased) then cut at a
random offset (`tf.image.stateless_random_crop`). Most of that work is wasted:
a 227 crop of a 500x375 photo resized to 341x256 keeps 59 % of the pixels.

`random_crop` gets the same crop from less work:

1. the encoded image's size from its header (no decoding);
2. the resized size and the crop's offset, with the very calls of
   `resize_shorter` and `stateless_random_crop` (the same offsets for the
   same seed, so the crop distribution is today's, exactly);
3. the source window that the crop's pixels draw on: the crop's rows and
   columns mapped back through the resize, widened by the kernel's support
   (`max(1, 1 / scale)` source pixels, as the antialiased triangle filter
   of `tf.image.resize` reaches) and a pixel of margin;
4. only that window decoded (`tf.io.decode_and_crop_jpeg` for a JPEG; other
   formats decode whole and are sliced);
5. the window resized straight to the crop with `ScaleAndTranslate`, the
   kernel `tf.image.resize` itself runs, with its scale and a translation
   that puts the window where it lies in the full image.

Inside the window every output pixel sees the same source pixels with the
same weights as before; measured on real JPEGs resized 1.4x down to 1.4x up,
the crops differ by at most 0.004 (of 255) from the whole-image path, from
float rounding of the sample positions, and are identical at scale 1.
"""

import tensorflow as tf

__all__ = ["crop_window", "random_crop"]


def crop_window(height, width, *, size, resize, seed):
    """Where the training crop lies, computed as the whole-image path computes it.

    Args:
        height, width: the source image's size (int32 scalar tensors).
        size: the crop's side.
        resize: the shorter side before cropping.
        seed: the crop's stateless seed, shape `[2]`.

    Returns:
        `(offset, resized, scale)`: the crop's `[top, left]` in the resized
        image, the resized `[height, width]` (int32), and the resize's float32
        `[y, x]` scale (as `tf.image.resize` computes it: new size / old size).

    Example:

    >>> import tensorflow as tf
    >>> from alexnet_keras.data.crop_decode import crop_window
    >>> offset, resized, scale = crop_window(tf.constant(375), tf.constant(500), size=227,
    ...                                      resize=256, seed=tf.constant([1, 2]))
    >>> resized.numpy().tolist(), bool(tf.reduce_all(offset <= resized - 227))
    ([256, 341], True)
    """
    shape = tf.stack([height, width])
    hw = tf.cast(shape, tf.float64)
    # As `resize_shorter`: max(size, round(side * scale)), in float64.
    resized = tf.maximum(resize, tf.cast(tf.round(hw * (resize / tf.reduce_min(hw))), tf.int32))
    # As `stateless_random_crop` on the (H, W, 3) resized image: one uniform int32
    # per dimension, modulo the room left; the channel's draw is discarded.
    limit = tf.concat([resized - size + 1, [1]], 0)
    draw = tf.random.stateless_uniform([3], seed=seed, maxval=tf.int32.max, dtype=tf.int32)
    offset = (draw % limit)[:2]
    scale = tf.cast(resized, tf.float32) / tf.cast(shape, tf.float32)
    return offset, resized, scale


def _window(offset, scale, shape, size):
    """The source rows/columns `[lo, hi)` that the crop's output pixels read."""
    radius = tf.maximum(1.0 / scale, 1.0)
    first = tf.cast(offset, tf.float32)
    lo = tf.cast(tf.floor((first + 0.5) / scale - radius - 0.5), tf.int32) - 1
    hi = tf.cast(tf.math.ceil((first + size - 0.5) / scale + radius - 0.5), tf.int32) + 2
    return tf.maximum(lo, 0), tf.minimum(hi, shape)


def _resampled(window, lo, offset, scale, size):
    """The window resized straight to the crop, as the whole image's resize samples it."""
    # Output pixel i samples the full resize at offset + i: in window coordinates
    # that is (i + 0.5 - t) / scale - 0.5 with t = lo * scale - offset.
    translation = tf.cast(lo, tf.float32) * scale - tf.cast(offset, tf.float32)
    crop = tf.raw_ops.ScaleAndTranslate(images=tf.cast(window, tf.float32)[None],
                                        size=[size, size], scale=scale, translation=translation,
                                        kernel_type="triangle", antialias=True)  # fmt: skip
    return tf.reshape(crop, [size, size, 3])


def random_crop(data, *, size, resize, seed, checked_size=None):
    """The float32 `(size, size, 3)` training crop of encoded image bytes.

    Equal (within float rounding, see the module) to
    `stateless_random_crop(resize_shorter(decode(data), resize), [size, size, 3], seed)`,
    from the crop's window only. A JPEG's size comes from its header and only
    the window is decoded; another format is decoded whole, then windowed.

    Args:
        data: the encoded image (a scalar string tensor), already checked
            (`image_graph.image_problem`).
        size: the crop's side.
        resize: the shorter side before cropping.
        seed: the crop's stateless seed, shape `[2]`.
        checked_size: a function of the `[height, width, ...]` shape that
            returns it after its bounds check (`split.decode_image`'s), or None.

    Example:

    >>> import tensorflow as tf
    >>> from alexnet_keras.data.crop_decode import random_crop
    >>> data = tf.io.encode_jpeg(tf.zeros((300, 400, 3), tf.uint8))
    >>> random_crop(data, size=227, resize=256, seed=tf.constant([0, 1])).shape
    TensorShape([227, 227, 3])
    """
    check = checked_size or (lambda shape: shape)

    def plan(shape):
        offset, _, scale = crop_window(shape[0], shape[1], size=size, resize=resize, seed=seed)
        lo, hi = _window(offset, scale, shape, size)
        return offset, scale, lo, hi

    def jpeg():
        offset, scale, lo, hi = plan(check(tf.io.extract_jpeg_shape(data))[:2])
        box = tf.stack([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]])
        window = tf.io.decode_and_crop_jpeg(data, box, channels=3)
        return _resampled(window, lo, offset, scale, size)

    def other():
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
        offset, scale, lo, hi = plan(check(tf.shape(image))[:2])
        return _resampled(image[lo[0] : hi[0], lo[1] : hi[1]], lo, offset, scale, size)

    return tf.cond(tf.io.is_jpeg(data), jpeg, other)

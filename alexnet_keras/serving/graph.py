"""The serving graph: encoded image bytes in, probabilities and top-k labels out.

`ServingModule` wraps an `AlexNet` in a `tf.Module` whose signatures do the
whole evaluation preprocessing in the graph, so a served model can never drift
from training: decode, shorter side to 256 (bilinear, antialiased, the
rounding of `preprocessing.load_image`), the centre crop at Caffe's offset,
the variant's colour order and mean. The class names are graph constants.

The module tracks the model's raw `tf.Variable`s and not the Keras model:
tracking the model (as `model.export` and `ExportArchive` do) stores every
variable twice (keras-team/keras#23553, `shared/docs/tensorflow-notes.md` §6).
"""

import numpy as np
import tensorflow as tf

from alexnet_keras.data.image_folder import IMAGE_SIGNATURES, TAIL_BYTES
from alexnet_keras.preprocessing import center_crop_tensor, preprocess_fn, resize_shorter

__all__ = [
    "MAX_IMAGE_PIXELS",
    "MIN_IMAGE_SIDE",
    "RESIZE",
    "ServingModule",
]

RESIZE = 256
# Smaller images are refused: a 1x1 tracking pixel or a 4x4 thumbnail blown up
# to 256 gives a confident-looking answer about nothing. CIFAR's 32x32 passes.
MIN_IMAGE_SIDE = 16
# The datasets' signatures: JPEG first (the truncation check uses it), then PNG,
# GIF, BMP; WebP, accepted here only, is RIFF...WEBP.
_MAGIC = tuple(IMAGE_SIGNATURES[f] for f in ("JPEG", "PNG", "GIF", "BMP"))
# Larger images are refused before decoding (from their headers): one such
# image decodes to gigabytes of float32 and could take the server down.
# A 50-megapixel phone photo (8160x6120) still passes.
MAX_IMAGE_PIXELS = 50_000_000
_JPEG_TAIL_BYTES = TAIL_BYTES  # the end-of-image marker may be followed by padding


def _check(condition, message):
    """An in-graph check that fails the request with InvalidArgumentError `message`."""
    return tf.debugging.Assert(condition, [message], summarize=1)


def _check_size(shape, what):
    message = tf.strings.join(
        [what, ": the image is ", tf.strings.as_string(shape[0]), "x",
         tf.strings.as_string(shape[1]),
         f" pixels; at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} is needed"]
    )  # fmt: skip
    return _check(tf.reduce_min(shape) >= MIN_IMAGE_SIDE, message)


def _starts_with(data, magic, offset=0):
    return tf.equal(tf.strings.substr(data, offset, len(magic)), magic)


def _header_pixels(head, data, is_jpeg):
    """Width x height from the file header, without decoding (0 where unknown).

    JPEG: the SOF marker (`extract_jpeg_shape`); PNG: IHDR, big-endian at
    16; GIF: the screen size, little-endian 16-bit at 6; BMP: little-endian
    32-bit at 18 (the height may be negative: bottom-up rows). WebP: unknown.
    """

    def field(offset, count, dtype, little_endian):
        raw = tf.strings.substr(head, offset, count * dtype.size)
        values = tf.io.decode_raw(raw, dtype, little_endian=little_endian)
        return tf.reduce_prod(tf.abs(tf.cast(values, tf.int64)))

    jpeg = tf.cond(
        is_jpeg,
        lambda: tf.reduce_prod(tf.cast(tf.image.extract_jpeg_shape(data)[:2], tf.int64)),
        lambda: tf.constant(0, tf.int64),
    )
    candidates = [
        (_starts_with(head, _MAGIC[1]), field(16, 2, tf.int32, False)),
        (_starts_with(head, _MAGIC[2]), field(6, 2, tf.uint16, True)),
        (_starts_with(head, _MAGIC[3]), field(18, 2, tf.int32, True)),
    ]
    pixels = jpeg
    for is_format, count in candidates:
        pixels = tf.where(is_format, count, pixels)
    return pixels


def _decode_one(index, data):
    """One request image, checked and decoded to float32 RGB `(H, W, 3)`.

    The checks name the image and the problem; TensorFlow's own decode error
    would say only "Invalid JPEG data" for a truncated upload.
    """
    what = tf.strings.join(["image_bytes[", tf.strings.as_string(index), "]"])
    length = tf.strings.length(data)
    head = tf.strings.substr(tf.strings.join([data, b"\0" * 26]), 0, 26)  # short input is safe
    known = tf.reduce_any(
        tf.stack([_starts_with(head, m) for m in _MAGIC]
                 + [_starts_with(head, b"RIFF") & _starts_with(head, b"WEBP", 8)])
    )  # fmt: skip
    checks = [
        _check(length > 0, tf.strings.join([what, ": empty string, not an image"])),
        _check(known | (length == 0),
               tf.strings.join([what, ": not a JPEG, PNG, GIF, BMP or WebP image"])),
    ]  # fmt: skip
    is_jpeg = _starts_with(head, _MAGIC[0])
    tail = tf.strings.substr(data, tf.maximum(length - _JPEG_TAIL_BYTES, 0), _JPEG_TAIL_BYTES)
    tail = tf.io.decode_raw(tf.strings.join([tail, "\0"]), tf.uint8)  # never empty
    has_end = tf.reduce_any((tail[:-1] == 0xFF) & (tail[1:] == 0xD9))
    checks.append(
        _check(
            tf.logical_not(is_jpeg) | has_end,
            tf.strings.join([what, ": truncated JPEG (no end-of-image marker FFD9)"]),
        )
    )
    with tf.control_dependencies(checks):
        pixels = _header_pixels(head, data, is_jpeg)
    checks = [
        _check(pixels <= MAX_IMAGE_PIXELS,
               tf.strings.join([what, ": the image has ", tf.strings.as_string(pixels),
                                f" pixels; at most {MAX_IMAGE_PIXELS} are accepted"]))
    ]  # fmt: skip
    with tf.control_dependencies(checks):
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    with tf.control_dependencies([_check_size(tf.shape(image)[:2], what)]):
        return tf.cast(image, tf.float32)


class ServingModule(tf.Module):
    """The exported object: the model's variables and two signature functions.

    Args:
        model: an `AlexNet` with its softmax classifier, built at `input_size`.
        preprocessing: the weights' `{"color_order", "mean"}` metadata.
        labels: one label string per class.
        top_k: how many labels each response carries.

    Example:

    >>> import alexnet_keras, tensorflow as tf
    >>> from alexnet_keras.serving.graph import ServingModule
    >>> model = alexnet_keras.AlexNet(classes=3)
    >>> module = ServingModule(model, preprocessing="bvlc", labels=["a", "b", "c"], top_k=2)
    >>> out = module.predict_images(tf.zeros([1, 300, 400, 3]))
    >>> out["top_k_labels"].shape
    TensorShape([1, 2])
    """

    def __init__(self, model, *, preprocessing, labels, top_k=5):
        super().__init__(name="alexnet_serving")
        size = int(model.input_shape[1])
        classes = int(model.output_shape[-1])
        if not 1 <= top_k <= classes:
            raise ValueError(f"--top-k must be 1..{classes} (the classes). Received: {top_k}")
        if len(labels) != classes:
            raise ValueError(f"Expected {classes} labels. Received: {len(labels)}")
        # A closure, not an attribute: a tracked Keras model is saved a second time.
        self._forward = lambda x: model(x, training=False)
        self._size = size
        self._top_k = int(top_k)
        self._preprocess = preprocess_fn(preprocessing, size)
        self._labels = np.asarray(labels, dtype=object).astype(bytes)
        # The variables themselves: what the SavedModel stores, once each.
        self.model_variables = [v.value for v in model.variables]
        self.serve_bytes = tf.function(
            self._serve_bytes,
            input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")],
        )
        self.predict_images = tf.function(
            self._predict_images,
            input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="images")],
        )

    @property
    def input_size(self):
        """The crop size the model takes."""
        return self._size

    def classify(self, crops):
        """The model and the outputs, from float32 RGB 0..255 crops `[N, S, S, 3]`."""
        probabilities = tf.cast(self._forward(self._preprocess(crops)), tf.float32)
        top = tf.math.top_k(probabilities, k=self._top_k)
        return {
            "probabilities": probabilities,
            "top_k_indices": top.indices,
            "top_k_scores": top.values,
            "top_k_labels": tf.gather(tf.constant(self._labels), top.indices),
        }

    def _crop(self, image):
        return center_crop_tensor(resize_shorter(image, RESIZE), self._size)

    def decode_batch(self, image_bytes):
        """Encoded images `[N]` to checked, resized, centre-cropped RGB `[N, S, S, 3]`."""
        n = tf.shape(image_bytes, out_type=tf.int32)[0]
        return tf.map_fn(
            lambda args: self._crop(_decode_one(*args)),
            (tf.range(n), image_bytes),
            fn_output_signature=tf.TensorSpec([self._size, self._size, 3], tf.float32),
            parallel_iterations=16,
        )

    def _serve_bytes(self, image_bytes):
        return self.classify(self.decode_batch(image_bytes))

    def _predict_images(self, images):
        with tf.control_dependencies([_check_size(tf.shape(images)[1:3], "images")]):
            images = tf.identity(images)
        return self.classify(self._crop(images))

    def signatures(self):
        """`{name: concrete function}` for `tf.saved_model.save`."""
        return {
            "serving_default": self.serve_bytes.get_concrete_function(),
            "predict_images": self.predict_images.get_concrete_function(),
        }

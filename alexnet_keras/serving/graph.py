"""The serving graph: encoded image bytes in, probabilities and top-k labels out.

`ServingModule` wraps an `AlexNet` in a `tf.Module` whose signatures do the
whole evaluation preprocessing in the graph, so a served model can never drift
from evaluation: decode, the resize of the weights' protocol
(`preprocessing.resize_image`: shorter side to 256, or BVLC's 256x256 warp for
Caffe's releases), the centre crop at Caffe's offset,
the variant's colour order and mean. The class names are graph constants.
Before decoding, `data.image_graph.image_problem` (`image_header` in
TensorFlow ops, bounded loops only) checks each image's bytes, header and
size; a bad one fails the request as INVALID_ARGUMENT naming `image_bytes[i]`.

The module tracks the model's raw `tf.Variable`s and not the Keras model:
tracking the model (as `model.export` and `ExportArchive` do) stores every
variable twice (keras-team/keras#23553, `shared/docs/tensorflow-notes.md` §6).
"""

import numpy as np
import tensorflow as tf

from alexnet_keras.data.image_graph import (
    check,
    check_size,
    header_size,
    image_problem,
    size_problem,
)
from alexnet_keras.image_header import RESIZE
from alexnet_keras.limits import MAX_IMAGE_PIXELS, MIN_IMAGE_SIDE
from alexnet_keras.preprocessing import center_crop_tensor, preprocess_fn, resize_image

__all__ = [
    "MAX_IMAGE_PIXELS",
    "MIN_IMAGE_SIDE",
    "RESIZE",
    "ServingModule",
    "header_size",
    "size_problem",
]


def _decode_one(index, data):
    """One request image, checked and decoded to float32 RGB `(H, W, 3)`.

    `image_problem` names the problem (byte length, JPEG end marker, header,
    claimed size) before anything is allocated for the pixels; TensorFlow's
    own errors would name neither the image nor the problem.
    """
    what = tf.strings.join(["image_bytes[", tf.strings.as_string(index), "]: "])
    problem = image_problem(data)
    with tf.control_dependencies([check(tf.equal(problem, ""), tf.strings.join([what, problem]))]):
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    # The decoded size too: the bound holds even where a decoder read a header otherwise.
    with tf.control_dependencies([check_size(tf.shape(image), what)]):
        return tf.cast(image, tf.float32)


class ServingModule(tf.Module):
    """The exported object: the model's variables and two signature functions.

    Args:
        model: an `AlexNet` with its softmax classifier, built at `input_size`.
        preprocessing: the weights' `{"color_order", "mean"}` metadata.
        labels: one label string per class.
        top_k: how many labels each response carries.
        protocol: how an image is resized before the centre crop, as
            `preprocessing.resize_image` (the weights' `weights_protocol`).

    Example:

    >>> import alexnet_keras, tensorflow as tf
    >>> from alexnet_keras.serving.graph import ServingModule
    >>> model = alexnet_keras.AlexNet(classes=3)
    >>> module = ServingModule(model, preprocessing="bvlc", labels=["a", "b", "c"], top_k=2)
    >>> out = module.predict_images(tf.zeros([1, 300, 400, 3]))
    >>> out["top_k_labels"].shape
    TensorShape([1, 2])
    """

    def __init__(self, model, *, preprocessing, labels, top_k=5, protocol="shorter-side"):
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
        self._protocol = protocol
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
    def protocol(self):
        """The resize before the crop: `"shorter-side"` or `"bvlc"` (`resize_image`)."""
        return self._protocol

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
        return center_crop_tensor(resize_image(image, RESIZE, self._protocol), self._size)

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
        with tf.control_dependencies([check_size(tf.shape(images)[1:3], "images: ")]):
            images = tf.identity(images)
        return self.classify(self._crop(images))

    def signatures(self):
        """`{name: concrete function}` for `tf.saved_model.save`."""
        return {
            "serving_default": self.serve_bytes.get_concrete_function(),
            "predict_images": self.predict_images.get_concrete_function(),
        }

"""The LiteRT (TFLite) export: the serving graph minus what LiteRT cannot run.

LiteRT's built-in op set has no image decoder and no antialiased resize
(`ScaleAndTranslate`), so the model takes RGB pixels whose shorter side is
already 256 (`alexnet_keras.load_image`); the centre crop, colour order, mean,
softmax, top-k and the class labels are inside, as in the SavedModel.

**Which converter, which runtime.** TensorFlow deprecates `tf.lite` in favour
of LiteRT (TF 2.20 release notes; tensorflow#102071, #122598). The runtime has
moved: LiteRT models run on `ai_edge_litert.interpreter` (the `ai-edge-litert`
wheel), and every LiteRT model here is run there, never on `tf.lite`. The
converter has not moved for a TensorFlow graph: `ai-edge-litert` 2.3.0 ships a
`_pywrap_litert_converter.Converter` whose `convert()` is a stub that returns
"Not implemented yet" (google-ai-edge/LiteRT `litert/python/converter.cc`),
and Keras' own `export(format="litert")` calls `tf.lite.TFLiteConverter` on the
TensorFlow backend (`keras/src/export/litert.py`; litert-torch is its route on
the PyTorch backend only). So `tflite_bytes` converts with TensorFlow's
converter, the one place that names `tf.lite`, and says so in one line if a
future TensorFlow drops it.
"""

import numpy as np
import tensorflow as tf

from alexnet_keras._runtime import native_stderr_captured
from alexnet_keras.preprocessing import center_crop_tensor

__all__ = ["MISSING_RUNTIME", "interpreter", "tflite_bytes", "verify"]

MISSING_RUNTIME = (
    "running a LiteRT model needs the ai-edge-litert package (pip install 'alexnet-keras[litert]')"
)


def tflite_bytes(module):
    """Converts a `serving.ServingModule` to a LiteRT flatbuffer.

    The one signature, `serving_default`, takes `images`: float32
    `[1, H, W, 3]`, RGB 0..255, shorter side 256 (any `H, W >= input size`;
    resize the input tensor for other shapes), and returns the SavedModel's
    four outputs.

    Raises:
        ValueError: this TensorFlow has no `tf.lite` converter.
    """
    size = module.input_size
    lite = getattr(tf, "lite", None)
    if lite is None or not hasattr(lite, "TFLiteConverter"):
        raise ValueError(
            f"TensorFlow {tf.__version__} has no tf.lite converter, and LiteRT's own converter "
            "does not convert TensorFlow graphs yet: export --format tflite needs a TensorFlow "
            "with tf.lite (2.21 has it), or export a SavedModel"
        )

    @tf.function(input_signature=[tf.TensorSpec([1, None, None, 3], tf.float32, name="images")])
    def serve(images):
        return module.classify(center_crop_tensor(_at_least(images, size), size))

    converter = lite.TFLiteConverter.from_concrete_functions(
        [serve.get_concrete_function()], module
    )
    converter.target_spec.supported_ops = [lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()


def _at_least(images, size):
    """`images`, or a failed request where a side is under `size`.

    LiteRT's built-in ops have no Assert, and its Slice reads a crop larger
    than the image without complaint. So the guard is a reshape of
    `ok` (0 or 1) ones into one element, which fails the invoke with
    "num_input_elements != num_output_elements (0 != 1)" for a small image.
    """
    shape = tf.shape(images)
    ok = tf.cast(tf.minimum(shape[1], shape[2]) >= size, tf.int32)
    return images * tf.reshape(tf.ones(tf.reshape(ok, [1]), tf.float32), [1])


def interpreter(model):
    """A LiteRT interpreter (`ai_edge_litert`) for a `.tflite` path or its bytes.

    Args:
        model: a path, or the flatbuffer's bytes.

    Returns:
        `ai_edge_litert.interpreter.Interpreter`, tensors not yet allocated;
        `interpreter(m).get_signature_runner("serving_default")` runs it.

    Raises:
        ValueError: `ai-edge-litert` is not installed (`MISSING_RUNTIME`).
    """
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise ValueError(MISSING_RUNTIME) from None
    if isinstance(model, bytes | bytearray):
        return Interpreter(model_content=bytes(model))
    return Interpreter(model_path=str(model))


def verify(data, module, pixels):
    """Runs `pixels` through the converted model on LiteRT and through `module`'s graph.

    Args:
        data: the flatbuffer `tflite_bytes(module)` returned.
        module: the `ServingModule` it was converted from.
        pixels: float32 `[H, W, 3]` RGB 0..255 at the model's input protocol.

    Returns:
        The largest absolute difference between the two `probabilities`, and
        whether the two top-k label lists are equal.
    """
    batch = np.asarray(pixels, np.float32)[None]
    with native_stderr_captured():  # LiteRT logs its XNNPACK delegate's creation to fd 2
        got = interpreter(data).get_signature_runner("serving_default")(images=batch)
    want = module.classify(center_crop_tensor(tf.constant(batch), module.input_size))
    diff = float(np.max(np.abs(got["probabilities"] - want["probabilities"].numpy())))
    same = got["top_k_labels"].tolist() == want["top_k_labels"].numpy().tolist()
    return diff, same

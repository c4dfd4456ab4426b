"""The LiteRT (TFLite) export: the serving graph minus what LiteRT cannot run.

LiteRT's built-in op set has no image decoder and no antialiased resize
(`ScaleAndTranslate`), so the model takes RGB pixels whose shorter side is
already 256 (`alexnet_keras.load_image`); the centre crop, colour order, mean,
softmax, top-k and the class labels are inside, as in the SavedModel.
"""

import tensorflow as tf

from alexnet_keras.preprocessing import center_crop_tensor

__all__ = ["tflite_bytes"]


def tflite_bytes(module):
    """Converts a `serving.ServingModule` to a LiteRT flatbuffer.

    The one signature, `serving_default`, takes `images`: float32
    `[1, H, W, 3]`, RGB 0..255, shorter side 256 (any `H, W >= input size`;
    resize the input tensor for other shapes), and returns the SavedModel's
    four outputs.
    """
    size = module.input_size

    @tf.function(input_signature=[tf.TensorSpec([1, None, None, 3], tf.float32, name="images")])
    def serve(images):
        return module.classify(center_crop_tensor(images, size))

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [serve.get_concrete_function()], module
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()

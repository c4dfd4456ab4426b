"""`convert`: any legacy release (a name, a Caffe file, a cuda-convnet checkpoint) to Keras weights.

The readers live with their source (`alexnet_keras.caffe`, `alexnet_keras.cuda_convnet`);
this package dispatches by release name and format (`convert`), and verifies the result
against the source's independent numpy reference (`verify`). Nothing here imports
TensorFlow until a model is built for verification.
"""

# Bound after the submodule of the same name is imported, so the package
# attribute `convert` is the function, not the module.
from alexnet_keras.converters.convert import ConvertReport, convert

__all__ = ["ConvertReport", "convert"]

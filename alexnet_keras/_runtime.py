"""Process-wide TensorFlow settings that must be chosen before TF is imported.

Imported first by `alexnet_keras/__init__.py`; it imports nothing heavy.
"""

import os
import sys

__all__ = ["configure_environment"]


def configure_environment():
    """Sets the defaults this package wants, leaving any user choice alone.

    - `KERAS_BACKEND=tensorflow`: the layers call TensorFlow kernels directly.
    - `TF_ENABLE_ONEDNN_OPTS=1`: TF 2.21 leaves oneDNN off on CPUs without
      AVX-512 VNNI/BF16, which costs AlexNet training about 1.6x there
      (`shared/docs/tensorflow-notes.md` §9). It is read once, when TensorFlow
      is imported, so it only takes effect if TensorFlow is not imported yet.
    """
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if "tensorflow" not in sys.modules:
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

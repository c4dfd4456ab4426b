"""alexnet-keras: the 2012 AlexNet family for Keras 3 (TensorFlow, JAX, PyTorch).

The public names are loaded on first use, so `alexnet-keras --help` does not
pay for importing TensorFlow.

Example:

>>> import alexnet_keras
>>> model = alexnet_keras.AlexNet(weights=None)
>>> model.count_params()
60965224
"""

import importlib

from alexnet_keras import _runtime
from alexnet_keras.version import __version__

_runtime.configure_environment()

_PUBLIC = {
    "AlexNet": "alexnet_keras.model",
    "center_crop": "alexnet_keras.preprocessing",
    "decode_predictions": "alexnet_keras.preprocessing",
    "load_image": "alexnet_keras.preprocessing",
    "preprocess_input": "alexnet_keras.preprocessing",
    "ten_crop": "alexnet_keras.preprocessing",
}
_SUBMODULES = ("layers", "variants", "weights", "preprocessing", "registry", "converters")

__all__ = ["__version__", *_PUBLIC, *_SUBMODULES]


def __getattr__(name):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"alexnet_keras.{name}")
    else:
        raise AttributeError(f"module 'alexnet_keras' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)

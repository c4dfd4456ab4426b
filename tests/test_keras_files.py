"""`.keras` files saved before the restructure still load: the layers keep their registered names.

Before the move, the cuda-convnet layers lived in `alexnet_keras.convnet_layers`;
a `.keras` file records that module path next to the registered name
`alexnet_keras>ConvnetPool2D`. Keras resolves a custom class by its registered
name, so such a file loads once the layer modules are imported. The old file
is rebuilt here byte for byte in what matters: the same config with the old
module path.
"""

import json
import zipfile

import keras
import numpy as np

from alexnet_keras.cuda_convnet.layers import ConvnetDropout, ConvnetNeuron, ConvnetPool2D
from alexnet_keras.layers import GroupedConv2D, LocalResponseNormalization

OLD_MODULES = {"ConvnetPool2D": "alexnet_keras.convnet_layers",
               "ConvnetNeuron": "alexnet_keras.convnet_layers",
               "ConvnetDropout": "alexnet_keras.convnet_layers"}  # fmt: skip


def _small_model():
    x = keras.Input((13, 13, 4))
    y = GroupedConv2D(4, 3, groups=2, name="g")(x)
    y = LocalResponseNormalization(3, groups=2, name="lrn")(y)
    y = ConvnetPool2D("avg", 3, 2, name="pool")(y)
    y = ConvnetNeuron("relu", name="n")(y)
    y = ConvnetDropout(0.5, name="d")(y)
    return keras.Model(x, y)


def _as_saved_before_the_move(path, out):
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                layers = config["config"]["layers"]
                for layer in layers:
                    if layer["class_name"] in OLD_MODULES:
                        assert layer["registered_name"] == f"alexnet_keras>{layer['class_name']}"
                        layer["module"] = OLD_MODULES[layer["class_name"]]
                data = json.dumps(config).encode()
            dst.writestr(item, data)
    return out


def test_a_keras_file_from_the_old_layout_loads(tmp_path, rng):
    model = _small_model()
    x = rng.normal(size=(2, 13, 13, 4)).astype("float32")
    want = model.predict(x, verbose=0)
    model.save(tmp_path / "new.keras")
    old = _as_saved_before_the_move(tmp_path / "new.keras", tmp_path / "old.keras")
    loaded = keras.saving.load_model(old)
    assert [type(layer).__name__ for layer in loaded.layers[1:]] == [
        "GroupedConv2D", "LocalResponseNormalization", "ConvnetPool2D", "ConvnetNeuron",
        "ConvnetDropout",
    ]  # fmt: skip
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), want)

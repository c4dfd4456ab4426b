"""The public names keep working after the restructure (design.md §4), and stay lazy."""

import subprocess
import sys

import alexnet_keras

PUBLIC = ["AlexNet", "preprocess_input", "decode_predictions", "load_image", "center_crop",
          "ten_crop"]  # fmt: skip
LAYERS = ["LocalResponseNormalization", "GroupedConv2D", "SpatialResponseNormalization"]


def test_the_public_names_are_there_and_callable():
    for name in PUBLIC:
        assert callable(getattr(alexnet_keras, name)), name
    for name in LAYERS:
        assert callable(getattr(alexnet_keras.layers, name)), name
    assert callable(alexnet_keras.weights.save_weights)
    assert callable(alexnet_keras.weights.read_metadata)
    assert callable(alexnet_keras.converters.convert)
    assert alexnet_keras.registry.release_names() == ["bvlc_alexnet", "bvlc_reference_caffenet"]
    assert set(PUBLIC) <= set(dir(alexnet_keras))


def test_importing_the_package_and_cli_does_not_import_tensorflow():
    code = (
        "import sys, alexnet_keras, alexnet_keras.cli, alexnet_keras.data.image_folder; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

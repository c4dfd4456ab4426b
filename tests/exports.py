"""Weights files and their SavedModel exports for the serving tests.

The random weights have a sharpened fc8, so the softmax is far from uniform
and a preprocessing mistake moves the probabilities by much more than 1e-5.
"""

import dataclasses
import pathlib

import numpy as np
from click.testing import CliRunner

import alexnet_keras
from alexnet_keras import weights as weights_file
from alexnet_keras.cli import cli

CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
               "truck"]  # fmt: skip
FC8_GAIN = 12.0


@dataclasses.dataclass
class Export:
    weights: pathlib.Path
    folder: pathlib.Path
    meta: dict
    labels: list
    report: str = ""  # what the export command printed


def make_weights(path, variant, classes, seed=0):
    import keras

    keras.utils.set_random_seed(seed)
    model = alexnet_keras.AlexNet(variant=variant, classes=classes)
    fc8 = model.get_layer("fc8")
    fc8.set_weights([w * FC8_GAIN for w in fc8.get_weights()])
    # The bvlc file stands for a converted Caffe release, which is served with BVLC's
    # 256x256 warp; the chm2012 one for weights trained here (shorter side 256).
    names, preprocessing, protocol = None, None, "bvlc"
    if variant == "chm2012":
        protocol = "shorter-side"
        names = CIFAR_NAMES[:classes]
        size = model.input_shape[1]
        mean = np.random.default_rng(seed).uniform(90, 150, (size, size, 3)).round(3)
        preprocessing = {"color_order": "RGB", "mean": mean.tolist()}
    weights_file.save_weights(model, path, variant=variant, class_names=names,
                              preprocessing=preprocessing, protocol=protocol)  # fmt: skip
    return path


def export(weights, folder, *extra):
    result = CliRunner().invoke(cli, ["export", "--weights", str(weights), "--output", str(folder),
                                      *extra])  # fmt: skip
    assert result.exit_code == 0, result.output
    return result


def make(tmp, variant, classes):
    from alexnet_keras.preprocessing import class_labels

    weights = make_weights(tmp / f"{variant}.weights.h5", variant, classes)
    folder = tmp / "models" / "alexnet" / "1"
    report = export(weights, folder).output
    meta = weights_file.read_metadata(weights)
    return Export(weights, folder, meta, class_labels(meta), report)


def reference_probabilities(export_, files, one_by_one=False):
    """`AlexNet` + `preprocess_input` on `load_image` + `center_crop` pixels.

    `load_image` resizes as the weights' protocol says (a 256x256 warp for the
    bvlc file); the served graph must do the same.

    With `one_by_one`, each image is its own batch, as the served side's
    per-image calls are: oneDNN picks its kernels by batch size, and their
    float32 sums differ by ~1e-5 of a probability on AVX-512 machines, which
    would hide the preprocessing the comparison is about.
    """
    meta = export_.meta
    model = alexnet_keras.AlexNet(weights=export_.weights)
    size = meta["input_size"]
    protocol = export_.meta["protocol"]
    images = [alexnet_keras.load_image(f, protocol=protocol) for f in files]
    crops = np.stack([alexnet_keras.center_crop(image, size) for image in images])
    x = alexnet_keras.preprocess_input(crops, variant=meta["variant"],
                                       mean=meta["preprocessing"]["mean"])  # fmt: skip
    if one_by_one:
        return np.concatenate([model.predict(x[i : i + 1], verbose=0) for i in range(len(x))])
    return model.predict(x, verbose=0)

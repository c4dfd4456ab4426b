"""A layers-145 checkpoint's halves concatenated into AlexNet(variant="chm2012"): logits equal
the two-tower numpy cuda-convnet forward pass, and each mistake of formats.md §3 shows."""

import numpy as np
import pytest

import alexnet_keras
from alexnet_keras.cuda_convnet.chm2012_mapper import chm2012_arrays, is_chm145
from tests import reference as ref
from tests.test_reference import CHM_TARGETS


@pytest.fixture(scope="module")
def case(imagenet_images):
    layers = ref.random_chm_layers(np.random.default_rng(11))
    mean = np.array(alexnet_keras.variants.IMAGENET_MEAN_RGB)
    crops = [alexnet_keras.center_crop(im, 224) - mean for im in imagenet_images]
    xs = [c.transpose(2, 0, 1) for c in crops]
    want = [ref.cuda_convnet_forward(xs[0], layers, calibrate=CHM_TARGETS)]  # LRNs must bite
    want += [ref.cuda_convnet_forward(x, layers) for x in xs[1:]]
    for name in ("hs1a", "hs1b", "hs2a", "hs2b"):
        layers[name] = {"type": "hs", "keep": 0.5}
    layers["rnorm1a"] = {"type": "cmrnorm", "size": 5, "scale": 2e-5, "pow": 0.75, "minDiv": 2.0}
    model = alexnet_keras.AlexNet(variant="chm2012", classifier_activation=None)
    return {"layers": layers, "xs": xs, "crops": np.stack(crops), "want": np.stack(want),
            "model": model}  # fmt: skip


def _logits(case, layers):
    arrays, _ = chm2012_arrays(layers)
    for name, values in arrays.items():
        case["model"].get_layer(name).set_weights(values)
    return case["model"].predict(case["crops"], verbose=0)


def _rel(got, want):
    return float(np.abs(got - want).max() / np.abs(want).max())


def test_logits_equal_the_two_tower_reference(case):
    assert is_chm145(case["layers"])
    assert _rel(_logits(case, case["layers"]), case["want"]) < 1e-4


def test_inputs_are_taken_by_name(case):
    """fc2048bb lists hs1b, hs1a; listing its matrices the other way round changes nothing."""
    layers = dict(case["layers"])
    bb = layers["fc2048bb"]
    layers["fc2048bb"] = {**bb, "inputs": bb["inputs"][::-1], "weights": bb["weights"][::-1]}
    assert _rel(_logits(case, layers), case["want"]) < 1e-4


@pytest.mark.parametrize(
    "bug, kwargs",
    [("LRN across the halves", {"lrn_per_gpu": False}), ("k=1", {"min_div": 1.0}),
     ("no x0.5 at test time", {"keep": 1.0})],
)  # fmt: skip
def test_the_comparison_sees_each_mistake(case, bug, kwargs):
    want = np.stack([ref.cuda_convnet_forward(x, case["layers"], **kwargs) for x in case["xs"]])
    assert _rel(_logits(case, case["layers"]), want) > 1e-3, bug


def test_fc6_rows_and_fc7_inputs_matter(case, monkeypatch):
    layers = dict(case["layers"])
    bb = layers["fc2048bb"]
    layers["fc2048bb"] = {**bb, "inputs": bb["inputs"][::-1]}  # matrices by position: the bug
    assert _rel(_logits(case, layers), case["want"]) > 1e-2
    arrays, _ = chm2012_arrays(case["layers"])
    unpermuted = np.hstack([np.vstack(case["layers"][f"fc2048{h}"]["weights"]) for h in "ab"])
    assert not np.allclose(arrays["fc6"][0], unpermuted)


def test_refusals(case):
    layers = dict(case["layers"])
    layers["rnorm1a"] = {**layers["rnorm1a"], "minDiv": 1.0}
    with pytest.raises(ValueError, match="'rnorm1a' has minDiv=1.0; the chm2012 variant uses 2"):
        chm2012_arrays(layers, "ck")
    small = {k: v for k, v in case["layers"].items() if k != "conv5b"}
    with pytest.raises(ValueError, match="ck: not a layers-145-shaped net"):
        chm2012_arrays(small, "ck")

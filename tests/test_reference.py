"""AlexNet against independent float64 NumPy forward passes, on real images.

bvlc and caffenet are checked against Caffe's semantics (`reference.caffe_forward`),
chm2012 against cuda-convnet's two-tower net (`reference.cuda_convnet_forward`).
The random weights are drawn in the source's own layout and mapped to Keras by
the documented rules (formats.md §3, §7; chm2012 through the importer's own
`converters.chm_mapper`); the planted-bug tests show that each
classic porting mistake breaks the comparison.
"""

import numpy as np
import pytest

import alexnet_keras
from alexnet_keras.cuda_convnet.chm2012_mapper import chm2012_arrays
from tests import reference as ref

TOLERANCE = 1e-4  # max relative logit error
CAFFE_TARGETS = {"conv1": 60.0, "conv2": 60.0, "conv3": 20.0, "conv4": 20.0, "conv5": 20.0,
                 "fc6": 4.0, "fc7": 4.0, "fc8": 3.0}  # fmt: skip
CHM_TARGETS = {"conv1": 60.0, "conv2": 60.0, "conv3": 20.0, "conv4": 20.0, "conv5": 20.0,
               "fc2048": 4.0, "fc2048b": 4.0, "fc1000": 3.0}  # fmt: skip


def rel_err(got, want):
    return float(np.max(np.abs(got - want)) / np.max(np.abs(want)))


def caffe_to_keras(params, permute_fc6=True):
    """Caffe blobs to Keras arrays: OIHW -> HWIO, (out, in) -> (in, out), fc6 rows CHW -> HWC."""
    out = {}
    for name, (w, b) in params.items():
        if name.startswith("conv"):
            k = w.transpose(2, 3, 1, 0)
        elif name == "fc6" and permute_fc6:
            k = w.reshape(-1, 256, 6, 6).transpose(2, 3, 1, 0).reshape(9216, -1)
        else:
            k = w.T
        out[name] = [k.astype(np.float32), b.astype(np.float32)]
    return out


def keras_logits(variant, size, arrays, x):
    model = alexnet_keras.AlexNet(
        variant=variant, input_shape=(size, size, 3), classifier_activation=None
    )
    for name, values in arrays.items():
        model.get_layer(name).set_weights(values)
    return model.predict_on_batch(alexnet_keras.preprocess_input(x, variant=variant))


@pytest.fixture(scope="module")
def images(imagenet_images):
    return {
        s: np.stack([alexnet_keras.center_crop(im, s) for im in imagenet_images]).astype(np.float64)
        for s in (224, 227)
    }


@pytest.fixture(scope="module")
def caffe_case(images):
    cache = {}

    def get(variant, size):
        if (variant, size) not in cache:
            rng = np.random.default_rng(size)
            params = ref.random_caffe_params(rng)
            rgb = images[size]
            x = (rgb[..., ::-1] - np.array(alexnet_keras.variants.IMAGENET_MEAN_BGR)).transpose(
                0, 3, 1, 2
            )
            order = "lrn_pool" if variant == "bvlc" else "pool_lrn"
            trace = {}
            want = ref.caffe_forward(x, params, order=order, calibrate=CAFFE_TARGETS, trace=trace)
            got = keras_logits(variant, size, caffe_to_keras(params), rgb)
            cache[variant, size] = dict(
                params=params, x=x, rgb=rgb, want=want, got=got, trace=trace
            )
        return cache[variant, size]

    return get


@pytest.fixture(scope="module")
def chm_case(images):
    cache = {}

    def get(size):
        if size not in cache:
            rng = np.random.default_rng(100 + size)
            layers = ref.random_chm_layers(rng)
            rgb = images[size]
            mean = np.array(alexnet_keras.variants.IMAGENET_MEAN_RGB)
            xs = [(im - mean).transpose(2, 0, 1) for im in rgb]
            trace = {}
            want = [ref.cuda_convnet_forward(xs[0], layers, calibrate=CHM_TARGETS, trace=trace)]
            want += [ref.cuda_convnet_forward(x, layers) for x in xs[1:]]
            got = keras_logits("chm2012", size, chm2012_arrays(layers)[0], rgb)
            cache[size] = dict(
                layers=layers, xs=xs, rgb=rgb, want=np.stack(want), got=got, trace=trace
            )
        return cache[size]

    return get


def check_activations(trace):
    """Random weights must keep the net in its working range, or the test proves little."""
    for key, value in trace.items():
        if key.endswith("_ratio"):
            # LRN must bite (ratio < 0.97) without crushing everything (> 0.2).
            assert 0.2 < value < 0.97, f"{key}={value}"
        elif not key.endswith("_shape"):
            assert 0.5 < value < 500, f"{key} std={value}"


@pytest.mark.parametrize("size", [224, 227])
@pytest.mark.parametrize("variant", ["bvlc", "caffenet"])
def test_caffe_variants_match_numpy_caffe(caffe_case, variant, size):
    case = caffe_case(variant, size)
    check_activations(case["trace"])
    assert case["trace"]["pool5_shape"] == (256, 6, 6)
    err = rel_err(case["got"], case["want"])
    print(f"\n{variant} @ {size}: max relative logit error vs Caffe float64 reference = {err:.2e}")
    assert err <= TOLERANCE
    assert np.std(case["want"]) > 1.0  # logits are spread, not a degenerate constant


@pytest.mark.parametrize("size", [224, 227])
def test_chm2012_matches_numpy_cuda_convnet(chm_case, size):
    case = chm_case(size)
    check_activations(case["trace"])
    err = rel_err(case["got"], case["want"])
    print(
        f"\nchm2012 @ {size}: max relative logit error vs cuda-convnet float64 "
        f"reference = {err:.2e}"
    )
    assert err <= TOLERANCE


# Each planted bug is a real mistake of an existing port (prior-art.md §3).
CAFFE_BUGS = {
    "alpha not divided by size": dict(lrn_divide_alpha=False),
    "pool/LRN order swapped": dict(order="pool_lrn"),
}


@pytest.mark.parametrize("bug", sorted(CAFFE_BUGS))
def test_planted_caffe_bug_is_caught(caffe_case, bug):
    case = caffe_case("bvlc", 227)
    params = {k: [w.copy(), b.copy()] for k, (w, b) in case["params"].items()}
    kwargs = {"order": "lrn_pool", **CAFFE_BUGS[bug]}
    buggy = ref.caffe_forward(case["x"], params, **kwargs)
    err = rel_err(case["got"], buggy)
    print(f"\nplanted bug '{bug}': relative logit error {err:.2e}")
    assert err > 10 * TOLERANCE


def test_planted_unpermuted_fc6_is_caught(caffe_case):
    case = caffe_case("bvlc", 227)
    got = keras_logits("bvlc", 227, caffe_to_keras(case["params"], permute_fc6=False), case["rgb"])
    err = rel_err(got, case["want"])
    print(f"\nplanted bug 'fc6 rows left in CHW order': relative logit error {err:.2e}")
    assert err > 10 * TOLERANCE


CHM_BUGS = {
    "LRN window crosses the GPU halves": dict(lrn_per_gpu=False),
    "LRN k=1 instead of minDiv=2": dict(min_div=1.0),
    "hs dropout x0.5 omitted": dict(keep=1.0),
}


@pytest.mark.parametrize("bug", sorted(CHM_BUGS))
def test_planted_chm_bug_is_caught(chm_case, bug):
    case = chm_case(224)
    buggy = np.stack(
        [ref.cuda_convnet_forward(x, case["layers"], **CHM_BUGS[bug]) for x in case["xs"]]
    )
    err = rel_err(case["got"], buggy)
    print(f"\nplanted bug '{bug}': relative logit error {err:.2e}")
    assert err > 10 * TOLERANCE

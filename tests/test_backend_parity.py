"""The layers and AlexNet on TensorFlow, JAX and PyTorch, each in its own process.

Each installed backend runs `tests/backend_parity.py` once in a child process
(`KERAS_BACKEND` can only be chosen before Keras is imported): every layer's
forward pass and gradient against the float64 NumPy references, AlexNet's
logits for `bvlc` at 227 and `chm2012` at 224 (all three variants at both
sizes with `-m slow`) on two real ImageNet images against the float64
reference nets, `AlexNet(weights=path)` on a file written here on TensorFlow,
and a few `fit` steps on real 227 crops. Then the same child plants "alpha not
divided by size" in LRN, and the same checks must fail there. A backend that
is not installed is skipped, with the line that installs it.
"""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import alexnet_keras
from tests import backend_parity

ROOT = pathlib.Path(__file__).resolve().parents[1]
TOLERANCE = 1e-4  # max relative error, the bound for logits; the layers meet it too
BACKENDS = ["tensorflow", "jax", "torch"]
INSTALL = {
    "jax": "pip install -e '.[jax]'",
    "torch": "pip install torch --index-url https://download.pytorch.org/whl/cpu",
}
CASES = [f"{v}-{s}" for v in ("bvlc", "caffenet", "chm2012") for s in (224, 227)]
# By default both reference nets (Caffe, cuda-convnet) at both sizes; `-m slow`: all six cases.
QUICK = ["bvlc-227", "chm2012-224"]


def quick(child, backend):
    """Everything but four of the logits cases, then the planted bug: one process per backend."""
    return child(backend, QUICK, "--plant", "alpha")


def require_backend(backend):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"the {backend} backend is not installed ({INSTALL[backend]})")


@pytest.fixture(scope="module")
def inputs(imagenet_images, tmp_path_factory):
    """The crops, and a weights file written by this process (on TensorFlow in the suite)."""
    folder = tmp_path_factory.mktemp("parity")
    out = {}
    for size in (224, 227):
        crops = [alexnet_keras.center_crop(im, size) for im in imagenet_images]
        out[f"rgb-{size}"] = np.stack(crops).astype(np.float64)
    path = folder / "caffenet.weights.h5"
    model = alexnet_keras.AlexNet(variant="caffenet", classes=10)
    alexnet_keras.weights.save_weights(model, path, variant="caffenet")
    x = alexnet_keras.preprocess_input(out["rgb-227"], variant="caffenet")
    out["weights_path"] = np.array(str(path))
    out["weights_logits"] = keras_logits(model, x)
    return folder, out


def keras_logits(model, x):
    import keras

    logits = keras.Model(model.inputs, model.get_layer("fc8").output)
    return np.asarray(logits.predict_on_batch(x), np.float64)


@pytest.fixture(scope="module")
def child(inputs):
    """`run(backend, keys, *args)`: the child's JSON, each distinct run once per module."""
    folder, arrays = inputs
    done = {}

    def run(backend, keys, *args):
        require_backend(backend) if backend != "tensorflow" else None
        for key in keys:  # the float64 references, once for every backend
            if f"want-{key}" not in arrays:
                variant, size = key.split("-")
                want, factors = backend_parity.reference_case(variant, int(size),
                                                              arrays[f"rgb-{size}"])  # fmt: skip
                arrays[f"want-{key}"], arrays[f"factors-{key}"] = want, json.dumps(factors)
        cases = folder / "cases.npz"
        np.savez(cases, keys=np.array(keys), **arrays)
        run_key = (backend, *keys, *args)
        if run_key not in done:
            out = folder / f"{backend}.json"
            env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
            env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
            command = [sys.executable, "-m", "tests.backend_parity", str(cases), str(out), *args]
            proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT,
                                  timeout=900, stdin=subprocess.DEVNULL)  # fmt: skip
            assert proc.returncode == 0, proc.stderr[-3000:]
            done[run_key] = json.loads(out.read_text())
        return done[run_key]

    return run


def failures(results, bound=TOLERANCE):
    """`{check: error}` of the checks above `bound`, from a nested `{name: error}` result."""
    flat = {}
    for name, value in results.items():
        if isinstance(value, dict):
            flat.update({f"{name}/{k}": v for k, v in failures(value, bound).items()})
        elif value > bound:
            flat[name] = value
    return flat


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_layer_matches_numpy_forward_and_gradient(child, backend):
    result = quick(child, backend)
    assert result["backend"] == backend
    layers = result["layers"]
    assert len(layers) == 18, sorted(layers)
    dropout = layers.pop("dropout")  # a random mask: how often it keeps is statistics
    assert dropout.pop("train-keep-rate-off-by") < 0.05
    assert failures(layers) == {} and failures(dropout) == {}


@pytest.mark.parametrize("backend", BACKENDS)
def test_alexnet_logits_match_the_float64_references(child, backend):
    logits = quick(child, backend)["logits"]
    print(f"\n{backend}: max relative logit error {json.dumps(logits)}")
    assert sorted(logits) == sorted(QUICK)
    assert failures(logits) == {}


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_alexnet_logits_of_every_variant_at_224_and_227(child, backend):
    logits = child(backend, CASES, "--only", "logits")["logits"]
    print(f"\n{backend}: max relative logit error {json.dumps(logits)}")
    assert sorted(logits) == sorted(CASES)
    assert failures(logits) == {}


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_weights_file_written_on_tensorflow_loads_there(child, backend):
    assert quick(child, backend)["weights-file"] <= TOLERANCE


@pytest.mark.parametrize("backend", BACKENDS)
def test_fit_runs_on_real_crops(child, backend):
    fit = quick(child, backend)["fit"]
    assert len(fit["losses"]) == 2 and all(np.isfinite(fit["losses"]))
    assert fit["conv1-changed"] > 0


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_jax_and_torch_run_it_all_without_tensorflow(child, backend):
    assert quick(child, backend)["tensorflow_imported"] is False


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_planted_alpha_bug_fails_the_checks_on_each_backend(child, backend):
    planted = quick(child, backend)["planted"]
    print(f"\n{backend}, alpha not divided by size: {json.dumps(planted)}")
    lrn = failures(planted["layers"], 10 * TOLERANCE)
    assert {name.split("/")[0] for name in lrn} == {
        "lrn-kernel", "lrn-matmul", "lrn-groups2-kernel", "lrn-groups2-matmul"
    }  # fmt: skip
    assert all(planted["logits"][key] > 10 * TOLERANCE for key in QUICK)

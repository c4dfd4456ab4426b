"""The Keras backend is the user's: importing the package never sets `KERAS_BACKEND`, a
`keras.json` backend stands, the model runs there, and the commands refuse it in one line.

The layers' and the model's numbers on each backend are `test_backend_parity.py`'s."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

EXE = os.path.join(os.path.dirname(sys.executable), "alexnet-keras")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _keras_home(tmp_path, backend):
    home = tmp_path / "keras"
    home.mkdir()
    config = {"backend": backend, "floatx": "float32", "epsilon": 1e-07,
              "image_data_format": "channels_last"}  # fmt: skip
    (home / "keras.json").write_text(json.dumps(config))
    env = dict(os.environ, KERAS_HOME=str(home), ALEXNET_KERAS_HOME=str(tmp_path / "cache"))
    for name in ("KERAS_BACKEND", "PYTHONWARNINGS"):
        env.pop(name, None)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"  # TF's own import lines are not what is tested here
    return home / "keras.json", env


def _run(args, env, tmp_path):
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=300, stdin=subprocess.DEVNULL)  # fmt: skip


def test_importing_the_package_leaves_keras_json_alone(tmp_path):
    path, env = _keras_home(tmp_path, "jax")
    env["PYTHONPATH"] = os.pathsep.join([ROOT, env.get("PYTHONPATH", "")])  # this checkout
    code = ("import os, alexnet_keras\n"
            "from alexnet_keras._runtime import keras_backend\n"
            "print(os.environ.get('KERAS_BACKEND'), *keras_backend())")  # fmt: skip
    done = _run([sys.executable, "-c", code], env, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["None", "jax", str(path)]


def test_keras_json_backend_survives_importing_the_package_and_building_alexnet(tmp_path):
    if importlib.util.find_spec("jax") is None:
        pytest.skip("Keras' jax backend needs jax, not installed (pip install -e '.[jax]')")
    _, env = _keras_home(tmp_path, "jax")
    env["PYTHONPATH"] = os.pathsep.join([ROOT, env.get("PYTHONPATH", "")])
    code = ("import alexnet_keras, keras\n"
            "alexnet_keras.layers.LocalResponseNormalization()\n"
            "print(keras.backend.backend())")  # fmt: skip
    done = _run([sys.executable, "-c", code], env, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["jax"]


def test_the_environment_wins_over_keras_json(tmp_path):
    _, env = _keras_home(tmp_path, "jax")
    env["KERAS_BACKEND"] = "torch"
    code = "import alexnet_keras._runtime as r; print(*r.keras_backend())"
    done = _run([sys.executable, "-c", code], env, tmp_path)
    assert done.stdout.split() == ["torch", "KERAS_BACKEND"]


def test_commands_on_another_backend_say_so_in_one_line(tmp_path):
    if not os.path.exists(EXE):
        pytest.skip("the package is not installed with its console script")
    path, env = _keras_home(tmp_path, "jax")
    done = _run([EXE, "summary"], env, tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        f"Error: {path}: Keras is set to the 'jax' backend; alexnet-keras commands run on "
        "TensorFlow: run them with KERAS_BACKEND=tensorflow"
    ]
    env["KERAS_BACKEND"] = "tensorflow"  # the user's answer, for one command
    done = _run([EXE, "summary", "--classes", "10"], env, tmp_path)
    assert done.returncode == 0 and done.stderr == "", done.stderr[-2000:]
    assert "fc8" in done.stdout


# Keras 3.15's numpy backend imports jax too (its fft), so both cases need jax.
@pytest.mark.parametrize("backend,needs", [("jax", ("jax",)), ("torch", ("torch",))])
def test_on_another_backend_alexnet_predicts_quietly_without_tensorflow(tmp_path, backend, needs):
    missing = [name for name in needs if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"Keras' {backend} backend needs {', '.join(missing)}, not installed")
    _, env = _keras_home(tmp_path, backend)
    env["PYTHONPATH"] = os.pathsep.join([ROOT, env.get("PYTHONPATH", "")])
    code = (
        "import sys, numpy as np, keras, alexnet_keras\n"
        "model = alexnet_keras.AlexNet(variant='chm2012', classes=10)\n"
        "x = alexnet_keras.preprocess_input(np.zeros((1, 224, 224, 3), 'float32'), "
        "variant='chm2012')\n"
        "print(keras.config.backend(), tuple(np.asarray(model.predict(x, verbose=0)).shape),\n"
        "      'tensorflow' in sys.modules)\n"
    )
    done = _run([sys.executable, "-c", code], env, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == [backend, "(1,", "10)", "False"]
    assert "Warning" not in done.stderr, done.stderr

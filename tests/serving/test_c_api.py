"""The SavedModel served without Python: TensorFlow's C API from the installed wheel.

`serve_c_api.c` is compiled against the wheel's `tensorflow/include` and linked
with its `libtensorflow_cc.so.2` and `libtensorflow_framework.so.2`. It loads
the export with `TF_LoadSessionFromSavedModel` (tag `serve`: the C++ loader that
`tensorflow_model_server` embeds) and runs `serving_default` with
`TF_SessionRun` on real JPEG bytes. A graph that needed Python (a
`tf.py_function`) would fail there: the planted one does.
"""

import pathlib
import shutil
import subprocess

import numpy as np
import pytest
import tensorflow as tf

C_SOURCE = pathlib.Path(__file__).with_name("serve_c_api.c")
HEADERS = ("tensorflow/c/c_api.h", "tensorflow/c/tf_tstring.h")
LIBRARIES = ("libtensorflow_cc.so.2", "libtensorflow_framework.so.2")
# What a compiler or linker says when the wheel lacks a header or a symbol.
_MISSING = ("No such file or directory", "undefined reference", "cannot find -l")


def compiler_problem():
    """Why the C program cannot be built here, or None."""
    if not (shutil.which("gcc") or shutil.which("cc")):
        return "no C compiler (gcc or cc) on PATH"
    include, lib = pathlib.Path(tf.sysconfig.get_include()), pathlib.Path(tf.sysconfig.get_lib())
    missing = [include / h for h in HEADERS if not (include / h).is_file()]
    missing += [lib / name for name in LIBRARIES if not (lib / name).is_file()]
    return f"the tensorflow wheel has no {missing[0]}" if missing else None


@pytest.fixture(scope="module")
def serve_c_api(tmp_path_factory):
    """The compiled program, or a skip that names what is missing."""
    problem = compiler_problem()
    if problem:
        pytest.skip(problem)
    binary = tmp_path_factory.mktemp("c_api") / "serve_c_api"
    lib = tf.sysconfig.get_lib()
    command = [shutil.which("gcc") or shutil.which("cc"), "-std=c11", "-D_POSIX_C_SOURCE=199309L",
               "-O1", "-Wall", "-Werror", f"-I{tf.sysconfig.get_include()}", str(C_SOURCE),
               "-o", str(binary), f"-L{lib}", *(f"-l:{name}" for name in LIBRARIES),
               f"-Wl,-rpath,{lib}"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        reasons = [line for line in done.stderr.splitlines() if any(m in line for m in _MISSING)]
        if reasons:
            pytest.skip(f"cannot compile against the tensorflow wheel: {reasons[0].strip()}")
        pytest.fail(done.stderr)
    return binary


def signature_tensors(folder, name="serving_default"):
    """`(input tensor, {output key: tensor})` from the SignatureDef in saved_model.pb."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel.FromString((folder / "saved_model.pb").read_bytes())
    (graph,) = [g for g in saved.meta_graphs if "serve" in g.meta_info_def.tags]
    signature = graph.signature_def[name]
    (input_,) = signature.inputs.values()
    return input_.name, {k: v.name for k, v in signature.outputs.items()}


def run_c(binary, folder, files, runs=1):
    """The C program's outputs as numpy arrays, or `(None, stderr)` when it fails."""
    input_, outputs = signature_tensors(folder)
    spec = ",".join(f"{k}={v}" for k, v in outputs.items())
    command = [str(binary), "-r", str(runs), str(folder), input_, spec, *map(str, files)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env={"TF_CPP_MIN_LOG_LEVEL": "2"})  # fmt: skip
    if done.returncode != 0:
        return None, done.stderr
    lines, arrays = done.stdout.splitlines(), {}
    for header, values in zip(lines[::2], lines[1::2], strict=True):
        key, dtype, ndims, *dims = header.split()
        assert int(ndims) == len(dims)
        values = values.split()
        if tf.as_dtype(int(dtype)) == tf.string:
            array = np.array([bytes.fromhex(v) for v in values], dtype=object)
        else:
            array = np.array(values, dtype=tf.as_dtype(int(dtype)).as_numpy_dtype)
        arrays[key] = array.reshape([int(d) for d in dims])
    return arrays, done.stderr


def test_the_c_program_equals_python(serve_c_api, bvlc_export, imagenet_dir):
    """The bvlc export, four real ImageNet JPEGs in one request: C and Python agree to 1e-6."""
    files = sorted(imagenet_dir.glob("*/*.JPEG"))[::250]
    served, stderr = run_c(serve_c_api, bvlc_export.folder, files)
    assert served is not None, stderr
    signature = tf.saved_model.load(str(bvlc_export.folder)).signatures["serving_default"]
    want = signature(image_bytes=tf.constant([f.read_bytes() for f in files]))
    assert set(served) == set(want) and want["probabilities"].numpy().max() > 0.05
    for key in ("probabilities", "top_k_scores"):
        np.testing.assert_allclose(served[key], want[key].numpy(), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(served["top_k_indices"], want["top_k_indices"].numpy())
    assert served["top_k_labels"].tolist() == want["top_k_labels"].numpy().tolist()


def small_export(folder, plant_py_function=False):
    """A ServingModule graph around a two-layer model; optionally a tf.py_function in it."""
    import keras

    from alexnet_keras.serving.graph import ServingModule

    model = keras.Sequential([keras.Input((227, 227, 3)), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(3, activation="softmax")])  # fmt: skip
    module = ServingModule(model, preprocessing="bvlc", labels=["a", "b", "c"], top_k=2)
    if plant_py_function:
        forward = module._forward
        module._forward = lambda x: tf.py_function(forward, [x], tf.float32)
    tf.saved_model.save(module, str(folder), signatures=module.signatures())
    return folder


def test_a_py_function_in_the_graph_fails_from_c(serve_c_api, imagenet_dir, tmp_path):
    files = sorted(imagenet_dir.glob("*/*.JPEG"))[:2]
    plain = small_export(tmp_path / "plain")
    served, stderr = run_c(serve_c_api, plain, files)  # the control: the same graph runs
    assert served is not None, stderr
    assert served["probabilities"].shape == (2, 3)
    planted = small_export(tmp_path / "planted", plant_py_function=True)
    assert b"EagerPyFunc" in (planted / "saved_model.pb").read_bytes()
    served, stderr = run_c(serve_c_api, planted, files)
    assert served is None and "error: TF_SessionRun: " in stderr and "EagerPyFunc" in stderr


def test_a_bad_image_fails_the_c_request_naming_it(serve_c_api, imagenet_dir, tmp_path):
    folder = small_export(tmp_path / "m")
    text = tmp_path / "notes.txt"
    text.write_text("this is a text file, not a picture\n")
    files = [sorted(imagenet_dir.glob("*/*.JPEG"))[0], text]
    served, stderr = run_c(serve_c_api, folder, files)
    assert served is None and "error: TF_SessionRun: " in stderr
    assert "image_bytes[1]: not a JPEG, PNG, GIF, BMP" in stderr


def test_no_compiler_is_a_named_skip(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert compiler_problem() == "no C compiler (gcc or cc) on PATH"

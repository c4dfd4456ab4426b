"""Builds and runs `tests/serving/serve_c_api.c`: a SavedModel through TensorFlow's C API.

The program is compiled against the installed wheel's `tensorflow/include`
and linked with its `libtensorflow_cc.so.2` and `libtensorflow_framework.so.2`
(no Python at run time). Used by `tests/serving/test_c_api.py` and
`benchmarks/bench_warmup.py`.
"""

import pathlib
import re
import shutil
import subprocess

import numpy as np
import tensorflow as tf

C_SOURCE = pathlib.Path(__file__).resolve().parent / "serving" / "serve_c_api.c"
HEADERS = ("tensorflow/c/c_api.h", "tensorflow/c/tf_tstring.h")
LIBRARIES = ("libtensorflow_cc.so.2", "libtensorflow_framework.so.2")
# What a compiler or linker says when the wheel lacks a header or a symbol.
_MISSING = ("No such file or directory", "undefined reference", "cannot find -l")


class CannotBuild(Exception):
    """This machine or wheel cannot build the program; the message says what is missing."""


def compiler():
    return shutil.which("gcc") or shutil.which("cc")


def compiler_problem():
    """Why the C program cannot be built here, or None."""
    if not compiler():
        return "no C compiler (gcc or cc) on PATH"
    include, lib = pathlib.Path(tf.sysconfig.get_include()), pathlib.Path(tf.sysconfig.get_lib())
    missing = [include / h for h in HEADERS if not (include / h).is_file()]
    missing += [lib / name for name in LIBRARIES if not (lib / name).is_file()]
    return f"the tensorflow wheel has no {missing[0]}" if missing else None


def build(folder):
    """Compiles the program into `folder`; returns its path.

    Raises:
        CannotBuild: no compiler, or a header, library or symbol the wheel lacks.
        RuntimeError: any other compiler error (a bug in the C source).
    """
    problem = compiler_problem()
    if problem:
        raise CannotBuild(problem)
    binary = pathlib.Path(folder) / "serve_c_api"
    lib = tf.sysconfig.get_lib()
    command = [compiler(), "-std=c11", "-D_POSIX_C_SOURCE=199309L", "-O1", "-Wall", "-Werror",
               f"-I{tf.sysconfig.get_include()}", str(C_SOURCE), "-o", str(binary), f"-L{lib}",
               *(f"-l:{name}" for name in LIBRARIES), f"-Wl,-rpath,{lib}"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        reasons = [line for line in done.stderr.splitlines() if any(m in line for m in _MISSING)]
        if reasons:
            raise CannotBuild(f"cannot compile against the tensorflow wheel: {reasons[0].strip()}")
        raise RuntimeError(done.stderr)
    return binary


def signature_tensors(folder, name="serving_default"):
    """`(input tensor, {output key: tensor})` from the SignatureDef in saved_model.pb."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel.FromString((folder / "saved_model.pb").read_bytes())
    (graph,) = [g for g in saved.meta_graphs if "serve" in g.meta_info_def.tags]
    signature = graph.signature_def[name]
    (input_,) = signature.inputs.values()
    return input_.name, {k: v.name for k, v in signature.outputs.items()}


def _parse(stdout):
    lines, arrays = stdout.splitlines(), {}
    for header, values in zip(lines[::2], lines[1::2], strict=True):
        key, dtype, ndims, *dims = header.split()
        assert int(ndims) == len(dims)
        dtype, values = tf.as_dtype(int(dtype)), values.split()
        if dtype == tf.string:
            array = np.array([bytes.fromhex(v) for v in values], dtype=object)
        else:
            array = np.array(values, dtype=dtype.as_numpy_dtype)
        arrays[key] = array.reshape([int(d) for d in dims])
    return arrays


def run(binary, folder, requests, runs=1):
    """Runs `requests` (lists of image files) in order in one session; the last `runs` times.

    Returns:
        `(outputs, stderr)`: the last request's outputs as numpy arrays, or
        None when the program failed.
    """
    input_, outputs = signature_tensors(folder)
    spec = ",".join(f"{k}={v}" for k, v in outputs.items())
    files = [arg for i, request in enumerate(requests)
             for arg in (["--"] if i else []) + [str(f) for f in request]]  # fmt: skip
    command = [str(binary), "-r", str(runs), str(folder), input_, spec, *files]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env={"TF_CPP_MIN_LOG_LEVEL": "2"})  # fmt: skip
    if done.returncode != 0:
        return None, done.stderr
    return _parse(done.stdout), done.stderr


def timings(stderr):
    """`{(request, run): milliseconds}` from the program's stderr."""
    found = re.findall(r"^request (\d+) run (\d+): ([\d.]+) ms$", stderr, re.MULTILINE)
    return {(int(q), int(r)): float(ms) for q, r, ms in found}

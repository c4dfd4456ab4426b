"""A full disk while writing: one line naming the output and the space needed, nothing left behind.

A test cannot fill the disk, so the child runs under RLIMIT_FSIZE: past it
`write()` fails with EFBIG, the way it fails with ENOSPC on a full disk, and
h5py (a RuntimeError) and TensorFlow (an OpError with the C library's text)
report it in their own ways. `files.write_error` is the one place that turns
all of them into `Error: {output}: cannot be written: ...; it needs about N MB`.
"""

import numpy as np
import pytest

from alexnet_keras.caffe.npy import write_npy
from alexnet_keras.geometry import layer_plan
from tests.sandbox import assert_refused, run_isolated

LIMIT = 8 << 20  # far below AlexNet's 244 MB


@pytest.fixture(scope="module")
def legacy_npy(tmp_path_factory):
    path = tmp_path_factory.mktemp("legacy") / "bvlc_alexnet.npy"
    arrays = {p.name: [np.zeros(s, np.float32) for s in p.weight_shapes]
              for p in layer_plan("bvlc", classes=1000) if p.weight_shapes}  # fmt: skip
    write_npy(path, arrays)
    return path


def _left_in(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_convert_to_keras_on_a_full_disk(legacy_npy, tmp_path):
    out = tmp_path / "out" / "bvlc.weights.h5"
    outcome = run_isolated(cli=["convert", legacy_npy, "-o", out], max_file_bytes=LIMIT)
    line = assert_refused(outcome, out, "cannot be written", "needs about 244 MB", code=1)
    assert "MB are free" in line
    assert _left_in(out.parent) == []  # no output, no temporary file


def test_convert_to_npy_on_a_full_disk(legacy_npy, tmp_path):
    keras_file = tmp_path / "bvlc.weights.h5"
    assert run_isolated(cli=["convert", legacy_npy, "-o", keras_file]).returncode == 0
    out = tmp_path / "out" / "back.npy"
    outcome = run_isolated(cli=["convert", keras_file, "--to", "npy", "-o", out],
                           max_file_bytes=LIMIT)  # fmt: skip
    assert_refused(outcome, out, "cannot be written", "needs about 244 MB", code=1)
    assert _left_in(out.parent) == []


def test_a_failure_that_is_not_about_space_is_not_rephrased():
    import errno

    from alexnet_keras.files import write_error

    assert write_error("x.weights.h5", OSError(errno.EIO, "I/O error")) is None
    assert write_error("x.weights.h5", RuntimeError("Can't decrement id ref count")) is None
    h5py_style = RuntimeError("unable to extend file properly, errno = 28, error message = ...")
    assert write_error("x.weights.h5", h5py_style).errno == errno.ENOSPC
    tf_style = RuntimeError("/m/variables/x.tempstate1; File too large [Op:SaveV2]")
    assert write_error("x", tf_style).errno == errno.EFBIG

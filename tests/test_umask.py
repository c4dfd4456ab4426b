"""Files are written with the user's umask: `.weights.h5`, `.npy`, `.tflite` and export folders
are not left 0600/0700 by the temporary names they are written under."""

import os
import stat

import numpy as np
import pytest

from alexnet_keras.caffe.npy import write_npy
from alexnet_keras.files import apply_umask, umask
from alexnet_keras.weights import atomic_write


@pytest.fixture(params=[0o022, 0o077, 0o002])
def user_umask(request):
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_umask_is_read_without_changing_it(user_umask):
    assert umask() == user_umask
    assert umask() == user_umask


@pytest.mark.parametrize("suffix", [".weights.h5", ".npy", ".tflite"])
def test_atomic_write_gives_the_file_the_umasks_mode(tmp_path, user_umask, suffix):
    path = atomic_write(tmp_path / f"m{suffix}", lambda tmp: open(tmp, "wb").write(b"x"),
                        suffix=suffix)  # fmt: skip
    assert _mode(path) == 0o666 & ~user_umask
    assert sorted(os.listdir(tmp_path)) == [f"m{suffix}"]  # no temporary left


def test_a_written_npy_has_the_umasks_mode(tmp_path, user_umask):
    path = tmp_path / "bvlc_alexnet.npy"
    write_npy(path, {"fc8": [np.zeros((4, 3), np.float32), np.zeros(3, np.float32)]})
    assert _mode(path) == 0o666 & ~user_umask
    data = np.load(path, allow_pickle=True, encoding="latin1").item()
    assert data["fc8"][0].shape == (4, 3)


def test_a_folder_gets_the_umasks_mode(tmp_path, user_umask):
    import tempfile

    folder = tempfile.mkdtemp(dir=tmp_path)  # 0700, as the SavedModel export's is
    apply_umask(folder)
    assert _mode(folder) == 0o777 & ~user_umask


def test_a_downloaded_release_file_has_the_umasks_mode(home, server, monkeypatch, user_umask):
    """A verified download (loopback server) is renamed from a 0600 temporary file.

    `home` before `server`: `home` clears the mirror that `server` sets.
    """
    import copy
    import hashlib

    from alexnet_keras import registry
    from tests.loopback import serve

    body = os.urandom(50_000)
    fake = copy.deepcopy(registry.manifest())
    entry = next(f for f in fake["releases"]["bvlc_alexnet"]["files"]
                 if f["format"] == "caffemodel")  # fmt: skip
    entry.update(size=len(body), sha1=hashlib.sha1(body).hexdigest(),
                 sha256=hashlib.sha256(body).hexdigest())  # fmt: skip
    monkeypatch.setattr(registry, "manifest", lambda: fake)
    serve(server, "bvlc_alexnet.caffemodel", body)
    path = registry.download("bvlc_alexnet", "caffemodel", progress=False)
    assert path.read_bytes() == body
    assert _mode(path) == 0o666 & ~user_umask

"""The restricted unpickler: arrays and containers load, anything that could run code is refused."""

import collections
import io
import pickle

import numpy as np
import pytest

from alexnet_keras import safe_pickle
from tests.npy_files import Py2Pickle


def test_python2_pickle_of_arrays_loads_with_latin1_strings():
    data = {"conv1": [np.arange(6, dtype=np.float32).reshape(2, 3), np.zeros(3, np.float32)]}
    out = safe_pickle.loads(Py2Pickle().save(data).finish())
    assert list(out) == ["conv1"] and isinstance(list(out)[0], str)
    np.testing.assert_array_equal(out["conv1"][0], data["conv1"][0])
    assert out["conv1"][0].dtype == np.float32


def test_every_byte_value_survives_the_latin1_round_trip():
    a = np.frombuffer(bytes(range(256)) * 4, dtype=np.float32).copy()
    out = safe_pickle.loads(Py2Pickle().save({"x": [a]}).finish())
    assert out["x"][0].tobytes() == a.tobytes()


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_python3_pickles_of_numpy_arrays_load(protocol):
    data = {b"fc8": (np.float64(2.5), np.ones((2, 2), np.float16), [1, "a", None])}
    out = safe_pickle.loads(pickle.dumps(data, protocol=protocol))
    assert out[b"fc8"][0] == 2.5 and out[b"fc8"][1].dtype == np.float16


def _payload(module, name, arg):
    """A protocol-0 pickle calling module.name(arg), as a hostile file would."""
    return f"c{module}\n{name}\n(V{arg}\ntR.".encode()


HOSTILE = {
    "os.system": lambda cmd: _payload("os", "system", cmd),
    "posix.system": lambda cmd: _payload("posix", "system", cmd),
    "builtins.eval": lambda cmd: _payload("builtins", "eval", f"__import__('os').system({cmd!r})"),
    "__builtin__.eval": lambda cmd: _payload(
        "__builtin__", "eval", f"__import__('os').system({cmd!r})"
    ),
    "subprocess.Popen": lambda cmd: f"csubprocess\nPopen\n((lV{cmd}\natR.".encode(),
    "collections.Counter": lambda cmd: _payload("collections", "Counter", cmd),
    "numpy.load": lambda cmd: _payload("numpy", "load", cmd),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_globals_are_refused_and_nothing_runs(name, tmp_path):
    marker = tmp_path / "pwned"
    data = HOSTILE[name](f"touch {marker}" if name != "subprocess.Popen" else str(marker))
    with pytest.raises(safe_pickle.UnsafePickleError, match="refuses the global"):
        safe_pickle.loads(data)
    assert not marker.exists()
    # The same payload really is live: plain pickle runs it (for the shell ones).
    if name in ("os.system", "posix.system"):
        pickle.loads(data)
        assert marker.exists()


def test_a_hostile_object_deep_inside_a_valid_dict_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    data = pickle.dumps({"conv1": [np.zeros(2), {"weights": Evil()}]}, protocol=2)
    with pytest.raises(safe_pickle.UnsafePickleError, match="system"):
        safe_pickle.loads(data)
    assert not (tmp_path / "pwned").exists()


def test_codecs_encode_only_with_latin1():
    data = pickle.dumps(b"\xff\x00", protocol=2)  # _codecs.encode(str, "latin1")
    assert safe_pickle.loads(data) == b"\xff\x00"
    with pytest.raises(safe_pickle.UnsafePickleError, match="rot_13"):
        safe_pickle.loads(data.replace(b"latin1", b"rot_13"))


@pytest.mark.parametrize("cut", [1, 5, 40, -1])
def test_truncated_pickles_are_value_errors(cut):
    data = Py2Pickle().save({"w": [np.ones(8, np.float32)]}).finish()
    with pytest.raises(ValueError, match="truncated|corrupt"):
        safe_pickle.loads(data[:cut])


def test_garbage_is_a_value_error():
    with pytest.raises(ValueError):
        safe_pickle.load(io.BytesIO(b"\x80\x02\xff\xfe\xfd"))


def _same(got, want):
    if isinstance(want, np.ndarray):
        assert isinstance(got, np.ndarray) and got.dtype == want.dtype and got.shape == want.shape
        assert got.flags.f_contiguous == want.flags.f_contiguous
        assert got.tobytes(order="A") == want.tobytes(order="A")
    elif isinstance(want, dict):
        assert type(got) is type(want) and list(got) == list(want)
        for k in want:
            _same(got[k], want[k])
    elif isinstance(want, (list, tuple)):
        assert type(got) is type(want) and len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            _same(g, w)
    else:
        assert type(got) is type(want) and (got == want or got != got)


def _real_forms():
    rng = np.random.default_rng(0)
    arrays = [
        rng.standard_normal((3, 4), np.float32),
        np.asfortranarray(rng.standard_normal((4, 5))),
        np.arange(6, dtype=">i4").reshape(2, 3),
        np.array([True, False]),
        np.arange(4, dtype=np.uint8),
        np.array([1 + 2j], np.complex64),
        np.ones(3, np.float16),
        np.zeros((0, 7), np.float32),
        np.array(5.0),
    ]
    return {
        "arrays": arrays,
        b"scalars": (np.float64(2.5), np.int64(-3), np.float32("nan")),
        "ordered": collections.OrderedDict([("b", 1), ("a", [None, 1.5, "x"])]),
        "shared": [arrays[0], arrays[0]],
    }


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_every_real_form_loads_bit_identical(protocol):
    data = pickle.dumps(_real_forms(), protocol=protocol)
    got, want = safe_pickle.loads(data), pickle.loads(data)
    _same(got, want)
    assert got["shared"][0] is got["shared"][1]  # a memo reference stays one array


def test_python2_forms_load_bit_identical():
    from tests import convnet_files as cf
    from tests.npy_files import py2_npy_bytes

    data = {"conv1": [np.arange(24, dtype=np.float32).reshape(2, 3, 4), np.zeros(3, np.float32)],
            "fc6": {"weights": np.asfortranarray(np.ones((5, 2), np.float32))}}  # fmt: skip
    for raw in (py2_npy_bytes(data)[128:], cf.py2_dumps(data)):
        got, want = safe_pickle.loads(raw), pickle.loads(raw, encoding="latin1")
        if isinstance(want, np.ndarray):  # the .npy holder
            got, want = got.item(), want.item()
        _same(got, want)

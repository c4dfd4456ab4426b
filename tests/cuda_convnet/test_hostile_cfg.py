"""Hostile cfg, prototxt, caffemodel and cfg-model weights files: one line each, in a sandbox.

A FIFO or a symlink to /dev/zero named like a cfg file, a cfg of megabytes, a
prototxt nested 250,000 deep, protobuf length and repeat bombs, and a
cfg-model weights file whose metadata is valid JSON of the wrong shape. The
cases of one reader run in ONE child (it prints a JSON verdict per file), so
a crash or a hang still fails the test, naming the reader.
"""

import hashlib
import json
import os

import pytest

from tests.sandbox import run_isolated

_CHILD = """
import json, sys
from {module} import {function} as read
verdicts = {{}}
for path in {paths!r}:
    try:
        read(path)
        verdicts[path] = "loaded"
    except ValueError as e:
        message = str(e)
        ok = "\\n" not in message and message.startswith(path)
        verdicts[path] = ("refused: " if ok else "not one line naming the file: ") + message
    except BaseException as e:  # the point of the test: anything else is a finding
        verdicts[path] = f"{{type(e).__name__}}: {{e}}"
print(json.dumps(verdicts))
"""


def _verdicts(module, function, paths, timeout=60, rss_mb=600):
    paths = [str(p) for p in paths]
    code = _CHILD.format(module=module, function=function, paths=paths)
    outcome = run_isolated(code, timeout=timeout, rss_mb=rss_mb)
    assert outcome.returncode == 0 and not outcome.timed_out and not outcome.over_memory, (
        f"{module}.{function} died on one of {paths}:\n" + outcome.describe()
    )
    return json.loads(outcome.stdout.strip().splitlines()[-1])


def _assert_refused(verdicts, **fragments):
    for path, verdict in verdicts.items():
        name = os.path.basename(path)
        assert verdict.startswith("refused: "), f"{name}: {verdict}"
        assert fragments.get(name, "") in verdict, f"{name}: {verdict}"


# -- text files: regular files only, bounded -----------------------------------------------------


def _special_files(tmp_path, suffix):
    os.mkfifo(tmp_path / f"fifo{suffix}")
    (tmp_path / f"zero{suffix}").symlink_to("/dev/zero")
    (tmp_path / f"big{suffix}").write_bytes(b"# padding\n" * 300_000)  # 3 MB
    return {f"fifo{suffix}": "FIFO", f"zero{suffix}": "device", f"big{suffix}": "at most"}


def test_cfg_files_are_regular_and_bounded(tmp_path):
    fragments = _special_files(tmp_path, ".cfg")
    verdicts = _verdicts("alexnet_keras.cuda_convnet.cfg_net", "read_net",
                         [tmp_path / name for name in fragments], timeout=30)  # fmt: skip
    _assert_refused(verdicts, **fragments)


def test_prototxt_files_are_regular_bounded_and_shallow(tmp_path):
    fragments = _special_files(tmp_path, ".prototxt")
    (tmp_path / "deep.prototxt").write_text("a {" * 250_000)
    fragments["deep.prototxt"] = "nested deeper than"
    verdicts = _verdicts("alexnet_keras.caffe.prototxt", "read_prototxt",
                         [tmp_path / name for name in fragments], timeout=30)  # fmt: skip
    _assert_refused(verdicts, **fragments)


# -- .caffemodel: every length and count checked before it is used ---------------------------------


def _varint(n):
    out = b""
    while True:
        low, n = n & 0x7F, n >> 7
        if not n:
            return out + bytes([low])
        out += bytes([low | 0x80])


def _tag(number, wire):
    return _varint(number << 3 | wire)


def _field(number, payload):
    return _tag(number, 2) + _varint(len(payload)) + payload


def _layer(*fields):
    return _field(100, _field(1, b"conv1") + _field(2, b"Convolution") + b"".join(fields))


def _shape(*dims):
    return _field(7, _field(7, b"".join(_tag(1, 0) + _varint(d) for d in dims)))


CAFFEMODELS = {
    "claim.caffemodel": (_tag(100, 2) + _varint(100 << 30) + bytes(64), "runs past the end"),
    "blob-claim.caffemodel": (
        _field(100, _field(1, b"c") + _tag(7, 2) + _varint(100 << 30)), "runs past the end"),
    "huge-shape.caffemodel": (_layer(_shape(1 << 40, 1 << 40)), "more than a Caffe blob holds"),
    "empty-huge-shape.caffemodel": (_layer(_shape(0, 1 << 62)), "more than a Caffe blob holds"),
    "many-dims.caffemodel": (_layer(_field(7, _field(7, _field(1, _varint(1) * 200_000)))),
                             "more than 32"),
    "many-bottoms.caffemodel": (_layer(_field(3, b"x") * 100_000), "more than 256 bottoms"),
    "many-params.caffemodel": (
        _layer(_field(106, (_tag(4, 0) + _varint(3)) * 100_000)), "more than 256 values"),
    "many-layers.caffemodel": (_field(100, b"") * 100_000, "more than 4,096 layers"),
    "short-data.caffemodel": (_layer(_field(7, _field(7, _tag(1, 0) + _varint(4)) + _field(
        5, bytes(8)))), "Received: 2 floats"),
}  # fmt: skip


def test_caffemodel_claims_and_counts_are_checked(tmp_path):
    for name, (data, _) in CAFFEMODELS.items():
        (tmp_path / name).write_bytes(data)
    verdicts = _verdicts("alexnet_keras.caffe.caffemodel", "read_caffemodel",
                         [tmp_path / name for name in CAFFEMODELS], rss_mb=400)  # fmt: skip
    _assert_refused(verdicts, **{name: fragment for name, (_, fragment) in CAFFEMODELS.items()})


# -- cfg-model weights: metadata of the wrong shape -----------------------------------------


def _record(text, name="layers.cfg", sha=None):
    data = text.encode("latin-1")
    return {"name": name, "text": text, "sha256": sha or hashlib.sha256(data).hexdigest()}


def _metadata_cases(meta):
    layers = meta["layers_cfg"]
    return {
        "list.weights.h5": ([meta], "not an object"),  # refused by the weights reader
        "no-model.weights.h5": ({**meta, "model": "bvlc"}, "model=chm-cfg"),
        "layers-number.weights.h5": ({**meta, "layers_cfg": 7}, "`layers_cfg` must be"),
        "layers-missing.weights.h5": ({**meta, "layers_cfg": None}, "`layers_cfg` must be"),
        "text-list.weights.h5": ({**meta, "layers_cfg": {**layers, "text": ["x"]}}, "string"),
        "sha.weights.h5": (
            {**meta, "layers_cfg": _record(layers["text"] + "\n", sha="0" * 64)},
            "sha256",
        ),  # fmt: skip
        "image-size.weights.h5": ({**meta, "image_size": "big"}, "`image_size`"),
        "bool-size.weights.h5": ({**meta, "image_size": True}, "`image_size`"),
        "names.weights.h5": ({**meta, "class_names": [1, 2]}, "`class_names`"),
        "mean.weights.h5": ({**meta, "mean": [["x"]]}, "`mean`"),
        "ragged-mean.weights.h5": ({**meta, "mean": [[1.0], [1.0, 2.0]]}, "`mean`"),
        "nan-mean.weights.h5": ({**meta, "mean": [float("nan")]}, "`mean`"),
        "source.weights.h5": ({**meta, "source": [1]}, "`source`"),
    }


@pytest.fixture(scope="module")
def mirror_file(tmp_path_factory):
    from alexnet_keras.cuda_convnet.cfg_mapper import mirror_arrays
    from alexnet_keras.cuda_convnet.cfg_net import read_net
    from alexnet_keras.cuda_convnet.cfg_weights import save_mirror_weights
    from tests import convnet_files as cf
    from tests.conftest import SHARED, require

    folder = SHARED / "data" / "chm-release" / "example-layers"
    net = read_net(require(folder / "layers-80sec.cfg"), folder / "layer-params-80sec.cfg")
    arrays = mirror_arrays(net, cf.layers_from_net(net, seed=1))
    path = tmp_path_factory.mktemp("mirror") / "m.weights.h5"
    return save_mirror_weights(net, arrays, path, class_names=list("abcdefghij"))


def test_cfg_model_metadata_is_checked_before_use(mirror_file, tmp_path):
    import shutil

    import h5py

    with h5py.File(mirror_file, "r") as f:
        meta = json.loads(f.attrs["alexnet_keras"])
    cases = _metadata_cases(meta)
    for name, (bad, _) in cases.items():
        shutil.copy(mirror_file, tmp_path / name)
        with h5py.File(tmp_path / name, "r+") as f:
            f.attrs["alexnet_keras"] = json.dumps(bad)
    paths = [mirror_file] + [tmp_path / name for name in cases]
    verdicts = _verdicts("alexnet_keras.cuda_convnet.cfg_weights", "load_mirror", paths,
                         timeout=120, rss_mb=1500)  # fmt: skip
    assert verdicts.pop(str(mirror_file)) == "loaded"
    _assert_refused(verdicts, **{name: fragment for name, (_, fragment) in cases.items()})

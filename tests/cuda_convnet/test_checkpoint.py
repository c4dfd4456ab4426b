"""cuda-convnet / CHM checkpoints and `batches.meta`: read back exactly, checked against the
cfg, and every broken or hostile file refused in one line naming it."""

import gzip
import pickle
import pickletools
import zipfile

import numpy as np
import pytest

from alexnet_keras import safe_pickle
from alexnet_keras.cuda_convnet import cfg_net as chm_cfg
from alexnet_keras.cuda_convnet import checkpoint as cuda_convnet
from alexnet_keras.cuda_convnet.batches_meta import read_batches_meta
from alexnet_keras.cuda_convnet.checkpoint import (
    check_against,
    layer_arrays,
    read_checkpoint,
    weights_for_input,
)
from tests import convnet_files as cf
from tests.conftest import SHARED, require

CHM = SHARED / "data" / "chm-release"
CIFAR = ("example-layers/layers-80sec.cfg", "example-layers/layer-params-80sec.cfg")
IMAGENET = ("layers/layers-145.cfg", "layers/layer-params-145.cfg")
ARRAY_KEYS = ("weights", "weightsInc", "biases", "biasesInc")


def _net(files):
    layers_cfg, params_cfg = (require(CHM / f) for f in files)
    return chm_cfg.read_net(layers_cfg, params_cfg)


@pytest.fixture(scope="module")
def net80():
    return _net(CIFAR)


@pytest.fixture(scope="module")
def layers80(net80):
    return cf.layers_from_net(net80, seed=1, with_inc=True)


@pytest.fixture(scope="module")
def net145():
    return _net(IMAGENET)


@pytest.fixture(scope="module")
def layers145(net145):
    # 60,965,224 float32 values (244 MB); no momentum buffers, which would double it.
    return cf.layers_from_net(net145, seed=145)


@pytest.fixture(scope="module")
def read145(layers145, tmp_path_factory):
    path = cf.write_checkpoint(tmp_path_factory.mktemp("chm145") / "60.2", layers145, epoch=60)
    checkpoint = read_checkpoint(path)
    path.unlink()  # one full-size copy on disk at a time
    return checkpoint


def _same_array(got, want, what):
    assert isinstance(got, np.ndarray), what
    assert got.shape == want.shape and got.dtype == want.dtype, what
    assert got.flags.f_contiguous == want.flags.f_contiguous, f"{what}: memory order"
    assert got.flags.c_contiguous == want.flags.c_contiguous, f"{what}: memory order"
    # bit-identical: compare the raw bits, not float values
    bits = np.dtype(f"u{got.dtype.itemsize}")
    assert np.array_equal(got.view(bits), want.view(bits)), what


def _assert_layers_equal(checkpoint, layers):
    assert list(checkpoint.layers) == list(layers)
    for name, want in layers.items():
        got = checkpoint.layers[name]
        assert got["type"] == want["type"] and got["name"] == name
        assert got.get("inputs") == want.get("inputs"), name
        assert "inputLayers" not in got
        for key in ARRAY_KEYS:
            if key not in want:
                assert key not in got, (name, key)
            elif isinstance(want[key], list):
                assert len(got[key]) == len(want[key])
                for i, (g, w) in enumerate(zip(got[key], want[key], strict=True)):
                    _same_array(g, w, f"{name}.{key}[{i}]")
            else:
                _same_array(got[key], want[key], f"{name}.{key}")
        plain = {k: v for k, v in want.items() if k not in ARRAY_KEYS}
        assert {k: got[k] for k in plain} == plain, name


def _one_line_error(excinfo, path, *phrases):
    message = str(excinfo.value)
    assert "\n" not in message, message
    assert message.startswith(str(path)), message
    for phrase in phrases:
        assert phrase in message, message
    return message


# ----------------------------------------------------------------------------
# Round trips.


@pytest.mark.parametrize("layers_as", ["dict", "list"])
@pytest.mark.parametrize("container", ["plain", "zip", "gzip", "dir"])
def test_cifar_checkpoint_reads_back_exactly(container, layers_as, layers80, net80, tmp_path):
    path = tmp_path / ("ConvNet__2012-09-13_03.43.56" if container == "dir" else "ckpt")
    if container == "dir":
        # Older saves with other weights; 10.1 is the newest in natural order,
        # while a plain string sort would take 9.3.
        for seed, (epoch, batch) in [(2, (9, 3)), (3, (2, 40))]:
            older = cf.layers_from_net(net80, seed=seed)
            cf.write_checkpoint(path, older, epoch=epoch, batchnum=batch, container="dir")
    written = cf.write_checkpoint(
        path, layers80, epoch=10, batchnum=1, container=container, layers_as=layers_as
    )
    if container == "dir":
        assert sorted(p.name for p in path.iterdir())[-1] == "9.3"
    checkpoint = read_checkpoint(path)
    _assert_layers_equal(checkpoint, layers80)
    assert (checkpoint.epoch, checkpoint.batchnum) == (10, 1)
    assert checkpoint.source == str(written)
    assert checkpoint.layer_form == layers_as
    assert checkpoint.container == ("plain" if container == "dir" else container)
    assert checkpoint.options["crop_border"] == 16
    assert checkpoint.options["gpu"] == [0, 1]
    assert checkpoint.train_outputs == [({"logprob": [2.3, 0.9, 0.7]}, 128)]
    assert check_against(checkpoint, net80) == []
    if container == "dir":
        assert checkpoint.notes[0].startswith("picked 10.1: the last of 3 files")


def test_raw_values_are_as_cuda_convnet_stored_them(layers80, tmp_path):
    checkpoint = read_checkpoint(cf.write_checkpoint(tmp_path / "1.1", layers80))
    conv1, fc64 = checkpoint.layers["conv1"], checkpoint.layers["fc64"]
    assert conv1["padding"] == [-2] and conv1["filters"] == 32  # cfg: padding=2
    assert conv1["weights"][0].flags.c_contiguous and conv1["biases"].shape == (32, 1)
    # fc weights are Fortran-ordered in the file and stay so
    assert fc64["weights"][0].flags.f_contiguous and not fc64["weights"][0].flags.c_contiguous
    assert fc64["biases"].shape == (1, 64)
    assert checkpoint.layers["pool1"]["neuron"] == ""  # conv1's neuron was detached
    assert conv1["neuron"] == "relu"  # the source keeps the string (formats.md §2.3)
    assert checkpoint.layers["conv1_neuron"]["neuron"]["type"] == "relu"
    assert all(isinstance(k, str) for layer in checkpoint.layers.values() for k in layer)


def test_chm145_checkpoint_reads_back_bit_identical(read145, layers145, net145):
    _assert_layers_equal(read145, layers145)
    assert check_against(read145, net145) == []
    assert read145.epoch == 60 and read145.layer_form == "dict"
    layers = read145.layers
    assert layers["conv1a"]["padding"] == [0] and layers["conv2a"]["padding"] == [-2]
    assert layers["conv3a"]["padding"] == [-1, -1] and layers["conv3a"]["filters"] == 192
    assert layers["rnorm1a"]["scale"] == pytest.approx(2e-5)  # 1e-4 / size 5
    assert layers["rnorm1a"]["minDiv"] == 2.0
    assert layers["cnorm2a"]["scale"] == pytest.approx(4e-5)  # 1e-3 / 5**2
    fc = layer_arrays(read145, "fc2048a")
    assert fc["inputs"] == ["pool3a_neuron", "pool3b_neuron"]
    assert [w.shape for w in fc["weights"]] == [(4608, 2048), (4608, 2048)]
    assert all(w.flags.f_contiguous and not w.flags.c_contiguous for w in fc["weights"])


def test_fc2048bb_weights_are_looked_up_by_input_name(read145, layers145):
    assert layer_arrays(read145, "fc2048bb")["inputs"] == ["hs1b", "hs1a"]
    for name, wanted in [("hs1a", 1), ("hs1b", 0)]:
        got = weights_for_input(read145, "fc2048bb", name)
        _same_array(got, layers145["fc2048bb"]["weights"][wanted], name)
    # fc2048ba reads them the other way round
    assert (
        weights_for_input(read145, "fc2048ba", "hs1a") is read145.layers["fc2048ba"]["weights"][0]
    )
    with pytest.raises(ValueError, match="does not read 'hs2a'. Received: inputs"):
        weights_for_input(read145, "fc2048bb", "hs2a")


def test_chm145_zip_container(layers145, tmp_path):
    # A deflate member at level 0 (stored blocks): the same inflate path, without
    # spending 8 s compressing 244 MB of random floats.
    path = cf.write_checkpoint(tmp_path / "60.2", layers145, container="zip", compresslevel=0)
    checkpoint = read_checkpoint(path)
    path.unlink()
    assert checkpoint.container == "zip" and "container: zip" in checkpoint.notes
    _assert_layers_equal(checkpoint, layers145)


def _with_layer(checkpoint, name, **changes):
    layers = dict(checkpoint.layers)
    layers[name] = {**layers[name], **changes}
    return cuda_convnet.Checkpoint(**{**vars(checkpoint), "layers": layers})


def test_check_against_names_the_first_mismatch(read145, net145):
    w = read145.layers["conv3b"]["weights"]
    bad = _with_layer(read145, "conv3b", weights=[w[0], w[1][:, :96]])
    with pytest.raises(ValueError) as e:
        check_against(bad, net145)
    _one_line_error(
        e, read145.source, "layer 'conv3b' weights[1] should have shape (1152, 192)", "(1152, 96)"
    )
    bad = _with_layer(read145, "fc1000", biases=np.zeros((1, 999), np.float32))
    with pytest.raises(ValueError, match=r"'fc1000' biases should have shape \(1000,\)"):
        check_against(bad, net145)
    swapped = _with_layer(read145, "fc2048bb", inputs=["hs1a", "hs1b"])
    with pytest.raises(ValueError, match=r"'fc2048bb' should read \['hs1b', 'hs1a'\]"):
        check_against(swapped, net145)
    retyped = _with_layer(read145, "rnorm2b", type="rnorm")
    with pytest.raises(ValueError, match="'rnorm2b' should be cmrnorm. Received: rnorm"):
        check_against(retyped, net145)


def test_check_against_accepts_bias_vectors_and_reports_extras(layers80, net80, tmp_path):
    layers = {name: dict(layer) for name, layer in layers80.items()}
    layers["conv2"]["biases"] = layers["conv2"]["biases"].ravel()  # (F,) as well as (F, 1)
    layers["extra_hs"] = {"name": "extra_hs", "type": "hs", "inputs": ["fc10"], "keep": 0.5}
    checkpoint = read_checkpoint(cf.write_checkpoint(tmp_path / "1.1", layers))
    assert check_against(checkpoint, net80) == ["layers the net does not define: extra_hs"]
    missing = dict(checkpoint.layers)
    del missing["fc64"]
    with pytest.raises(ValueError, match="has no layer 'fc64' \\(fc\\)"):
        check_against(cuda_convnet.Checkpoint(**{**vars(checkpoint), "layers": missing}), net80)


def test_local_layers_in_the_files_flattened_shape(tmp_path):
    net = chm_cfg.read_net(require(CHM / "example-layers/layers-conv-local-12pct.cfg"))
    layers = cf.layers_from_net(net)
    assert layers["local3"]["weights"][0].shape == (36 * 576, 32)  # 6x6 modules of 24x24 crops
    checkpoint = read_checkpoint(cf.write_checkpoint(tmp_path / "1.1", layers, container="gzip"))
    assert check_against(checkpoint, net) == []


def test_batches_meta_round_trip(tmp_path, rng):
    for size in (32, 256):
        mean = rng.uniform(0, 255, (3, size, size)).astype(np.float32)
        names = ["airplane", "automobile", "bird"] if size == 32 else ["n01440764", "n01443537"]
        path = cf.write_batches_meta(tmp_path / f"batches-{size}.meta", mean, names)
        meta = read_batches_meta(path)
        _same_array(meta["mean"], mean, "mean")
        assert meta["label_names"] == names and all(type(n) is str for n in meta["label_names"])
        assert meta["num_vis"] == 3 * size * size and meta["num_cases_per_batch"] == 10000
        assert meta["source"] == str(path)
    folder = tmp_path / "cifar-10-py-colmajor"
    folder.mkdir()
    cf.write_batches_meta(folder / "batches.meta", np.zeros((3, 32, 32)), ["cat"])
    assert read_batches_meta(folder)["label_names"] == ["cat"]
    # CIFAR-10's own batches.meta has label names but no mean
    cf.write_pickle(folder / "batches.meta", {"label_names": ["cat"], "num_vis": 3072})
    assert read_batches_meta(folder)["mean"] is None


def test_batches_meta_errors(tmp_path):
    path = tmp_path / "batches.meta"
    cases = [
        ({"data_mean": np.zeros((3000, 1), np.float32)}, "is not 3 square CHW planes"),
        ({"data_mean": np.zeros((3072, 1), np.float32), "num_vis": 3000}, "num_vis says 3000"),
        ({"label_names": [1, 2]}, "label_names must be a list of str"),
        ({"num_vis": 3072}, "has neither 'data_mean' nor 'label_names'"),
        ([1, 2], "expects a dict"),
    ]
    for obj, phrase in cases:
        cf.write_pickle(path, obj)
        with pytest.raises(ValueError) as e:
            read_batches_meta(path)
        _one_line_error(e, path, phrase)
    path.write_bytes(b"\x80\x02" + cf.Raw(_payload("os", "system", "true")).data + b".")
    with pytest.raises(safe_pickle.UnsafePickleError) as e:
        read_batches_meta(path)
    _one_line_error(e, path, "refuses the global os.system")


# ----------------------------------------------------------------------------
# The writer is the Python 2 format: checked against the real pickle module.


def test_writer_matches_pythons_pickle_and_python2_opcodes(layers80, tmp_path):
    for layers_as in ("dict", "list"):
        path = cf.write_checkpoint(tmp_path / layers_as, layers80, layers_as=layers_as)
        data = path.read_bytes()
        opcodes = {op.name for op, _, _ in pickletools.genops(data)}
        assert opcodes <= cf.PY2_OPCODES, opcodes - cf.PY2_OPCODES
        assert {"SHORT_BINSTRING", "BINSTRING", "OBJ", "BUILD", "BINGET", "REDUCE"} <= opcodes
        assert not opcodes & {"SHORT_BINUNICODE", "BINUNICODE", "BINBYTES", "FRAME", "MEMOIZE"}
        assert max(op.proto for op, _, _ in pickletools.genops(data)) <= 2
        loaded = cf.permissive_loads(data)
        state = loaded["model_state"]
        layers = state["layers"]
        if layers_as == "list":
            names = [layer["name"] for layer in layers]
            assert names == list(layers80)
            assert layers[names.index("conv2")]["inputs"] == [names.index("pool1")]
            layers = dict(zip(names, layers, strict=True))
        else:
            assert list(layers) == list(layers80)
            assert layers["conv2"]["inputs"] == ["pool1"]
        # inputLayers are memo references to the other layer dicts, not copies
        assert layers["conv2"]["inputLayers"][0] is layers["pool1"]
        assert layers["logprob"]["inputLayers"][1] is layers["probs"]
        for name in ("conv1", "fc64"):
            for key in ARRAY_KEYS:
                want, got = layers80[name][key], layers[name][key]
                if not isinstance(want, list):
                    want, got = [want], [got]
                for g, w in zip(got, want, strict=True):
                    _same_array(g, w, f"{name}.{key}")
        option = loaded["op"].options["crop_border"]
        assert (type(loaded["op"]).__name__, type(option).__name__) == ("OptionsParser", "Option")
        assert option.value == 16 and option.parser.__name__ == "IntegerOptionParser"
        assert (state["epoch"], state["batchnum"]) == (1, 1)


def test_writer_fortran_flag_is_numpys():
    a = np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4))
    data = cf.py2_dumps({"f": a, "c": np.ascontiguousarray(a), "row": np.asfortranarray(a[:1])})
    names = [op.name for op, _, _ in pickletools.genops(data)]
    assert names.count("NEWTRUE") == 1  # only the (3, 4) Fortran array; (1, 4) is both
    out = safe_pickle.loads(data)
    _same_array(out["f"], a, "f")
    assert out["c"].flags.c_contiguous and np.array_equal(out["c"], a)
    assert pickle.loads(data, encoding="latin1")["f"].flags.f_contiguous


# ----------------------------------------------------------------------------
# Hostile pickles: refused before anything runs.


def _s(text):
    data = text.encode("latin1")
    return b"U" + bytes([len(data)]) + data


def _payload(module, name, arg):
    """Protocol-2 opcodes calling module.name(arg), as a hostile file would."""
    return b"c" + f"{module}\n{name}\n".encode() + _s(arg) + b"\x85R"


def _hostile(name, marker):
    shell = f"touch {marker}"
    evaluated = f"__import__('os').system({shell!r})"
    return {
        "os.system": lambda: _payload("os", "system", shell),
        "posix.system": lambda: _payload("posix", "system", shell),
        "builtins.eval": lambda: _payload("builtins", "eval", evaluated),
        "__builtin__.eval": lambda: _payload("__builtin__", "eval", evaluated),
        "subprocess.Popen": lambda: (
            b"csubprocess\nPopen\n](" + _s("touch") + _s(str(marker)) + b"e\x85R"
        ),
        "options.Option via REDUCE": lambda: b"coptions\nOption\n" + _s(shell) + b"\x85R",
    }[name]()


HOSTILE = [
    "os.system",
    "posix.system",
    "builtins.eval",
    "__builtin__.eval",
    "subprocess.Popen",
    "options.Option via REDUCE",
]


@pytest.mark.parametrize("name", HOSTILE)
@pytest.mark.parametrize("where", ["whole file", "inside a layer dict", "inside a zip"])
def test_hostile_pickles_are_refused_and_nothing_runs(name, where, layers80, tmp_path):
    marker = tmp_path / "pwned"
    payload = cf.Raw(_hostile(name, marker))
    path = tmp_path / "1.1"
    if where == "whole file":
        cf.write_pickle(path, payload)
    else:
        layers = {**layers80, "conv2": {**layers80["conv2"], "initWFunc": payload}}
        container = "zip" if where == "inside a zip" else "plain"
        cf.write_checkpoint(path, layers, container=container)
    error = ValueError if name.startswith("options") else safe_pickle.UnsafePickleError
    with pytest.raises(error) as e:
        read_checkpoint(path)
    if name.startswith("options"):  # the stub admits the name but cannot be called
        _one_line_error(e, path, "corrupt pickle (TypeError")
    else:
        _one_line_error(e, path, f"unsafe pickle: refuses the global {name}", "nothing")
    assert not marker.exists()


def test_the_payloads_are_live(layers80, tmp_path):
    """Once: plain pickle runs the same payloads, so the refusals above mean something."""
    marker = tmp_path / "pwned-whole"
    pickle.loads(b"\x80\x02" + _hostile("os.system", marker) + b".")
    assert marker.exists()
    hidden = tmp_path / "pwned-hidden"
    payload = cf.Raw(_hostile("os.system", hidden))
    layers = {**layers80, "conv2": {**layers80["conv2"], "initWFunc": payload}}
    path = cf.write_checkpoint(tmp_path / "1.1", layers)
    cf.permissive_loads(path.read_bytes())
    assert hidden.exists()
    hidden.unlink()
    with pytest.raises(safe_pickle.UnsafePickleError):
        read_checkpoint(path)
    assert not hidden.exists()


def test_option_stubs_stay_inert(layers80, tmp_path):
    marker = tmp_path / "pwned"
    expression = cf.Instance(
        "options", "OptionExpression", {"expr": f"__import__('os').system('touch {marker}')"}
    )
    path = cf.write_checkpoint(tmp_path / "1.1", layers80, options={"eps_b": expression})
    value = read_checkpoint(path).options["eps_b"]
    assert isinstance(value, cuda_convnet.OptionsStub) and value.expr.startswith("__import__")
    assert not marker.exists()
    assert not hasattr(value, "evaluate")


# ----------------------------------------------------------------------------
# Broken files: one line naming the file.


@pytest.fixture(scope="module")
def small_checkpoint(net80, tmp_path_factory):
    path = tmp_path_factory.mktemp("small") / "1.1"
    return cf.write_checkpoint(path, cf.layers_from_net(net80, seed=4)).read_bytes()


def test_truncated_files_are_refused_at_any_cut(small_checkpoint, tmp_path):
    data = small_checkpoint
    rng = np.random.default_rng(7)
    cuts = sorted({*range(1, 80), *rng.integers(80, len(data) - 1, 60).tolist(), len(data) - 1})
    path = tmp_path / "1.1"
    for cut in cuts:
        path.write_bytes(data[:cut])
        with pytest.raises(ValueError) as e:
            read_checkpoint(path)
        _one_line_error(e, path)
    with zipfile.ZipFile(tmp_path / "whole.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("data", data)
    zipped = (tmp_path / "whole.zip").read_bytes()
    for packed in (zipped, gzip.compress(data, compresslevel=1)):
        for cut in (10, len(packed) // 3, len(packed) // 2, len(packed) - 10, len(packed) - 1):
            path.write_bytes(packed[:cut])
            with pytest.raises(ValueError) as e:
                read_checkpoint(path)
            _one_line_error(e, path, "expected a cuda-convnet checkpoint")


def test_unreadable_files_and_folders(small_checkpoint, tmp_path):
    missing = tmp_path / "ConvNet__missing"
    with pytest.raises(ValueError) as e:
        read_checkpoint(missing)
    _one_line_error(e, missing, "no such file or directory")
    empty = tmp_path / "9.3"
    empty.touch()
    with pytest.raises(ValueError) as e:
        read_checkpoint(empty)
    _one_line_error(e, empty, "the file is empty")
    folder = tmp_path / "ConvNet__empty"
    (folder / "subfolder").mkdir(parents=True)
    (folder / ".DS_Store").write_bytes(b"junk")
    with pytest.raises(ValueError) as e:
        read_checkpoint(folder)
    _one_line_error(e, folder, "an empty checkpoint directory", "no regular files")
    path = tmp_path / "nodata.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model", small_checkpoint)
    with pytest.raises(ValueError) as e:
        read_checkpoint(path)
    _one_line_error(e, path, "a zip without the member 'data'", "['model']")
    path = tmp_path / "junk.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00" + bytes(range(200)))
    with pytest.raises(ValueError) as e:
        read_checkpoint(path)
    _one_line_error(e, path, "corrupt or truncated container")
    packed = bytearray(gzip.compress(small_checkpoint, compresslevel=1))
    packed[len(packed) // 2] ^= 0xFF
    path.write_bytes(bytes(packed))
    with pytest.raises(ValueError) as e:
        read_checkpoint(path)
    _one_line_error(e, path)
    path = tmp_path / "trailing"
    path.write_bytes(small_checkpoint + b"\x00")
    with pytest.raises(ValueError) as e:
        read_checkpoint(path)
    _one_line_error(e, path, "trailing bytes after the pickle")
    path.write_bytes(b"#!/bin/sh\nrm -rf /\n")
    with pytest.raises(ValueError) as e:
        read_checkpoint(path)
    _one_line_error(e, path)


def _layer(name, kind, **keys):
    return {"name": name, "type": kind, **keys}


WRONG = {
    "a pickled list": ([1, 2, 3], "Received: a pickled list"),
    "no model_state": ({"weights": []}, "expects a dict with 'model_state' or 'layers'"),
    "model_state not a dict": ({"model_state": [1]}, "model_state must be a dict"),
    "no layers": ({"model_state": {"epoch": 1}}, "model_state has no 'layers'"),
    "layers an int": ({"model_state": {"layers": 5}}, "must be a dict or a list of layer dicts"),
    "layer not a dict": ({"model_state": {"layers": {"conv1": [1]}}}, "'conv1' must be a dict"),
    "no type": (
        {"model_state": {"layers": {"conv1": {"name": "conv1", "inputs": []}}}},
        "layer 'conv1' has no 'type' key. Received: keys [name, inputs]",
    ),
    "list layer without name": (
        {"model_state": {"layers": [{"type": "data"}]}},
        "layer #0 has no 'name'",
    ),
    "input index out of range": (
        {"model_state": {"layers": [_layer("data", "data"), _layer("fc", "fc", inputs=[5])]}},
        "layer 'fc' reads input index 5, which 2 layers cannot resolve",
    ),
    "index in a dict": (
        {"model_state": {"layers": {"fc": _layer("fc", "fc", inputs=[0])}}},
        "which a dict of layers cannot resolve",
    ),
    "unknown input": (
        {"model_state": {"layers": {"fc": _layer("fc", "fc", inputs=["pool9"])}}},
        "layer 'fc' reads an unknown layer 'pool9'",
    ),
    "epoch not an int": (
        {"model_state": {"layers": {}, "epoch": "ten"}},
        "model_state['epoch'] must be an int",
    ),
    "self-referencing list": (None, "holds a reference cycle"),
}


@pytest.mark.parametrize("case", sorted(WRONG))
def test_wrong_structures_are_refused(case, tmp_path):
    obj, phrase = WRONG[case]
    path = tmp_path / "1.1"
    if obj is None:  # a list that contains itself, inside a layer: memo PUT then GET
        raw = cf.Raw(b"]r\xa0\x86\x01\x00j\xa0\x86\x01\x00a")  # memo 100000, far from the writer's
        obj = {"model_state": {"layers": {"fc": _layer("fc", "fc", neuron=raw)}}}
    cf.write_pickle(path, obj)
    with pytest.raises(ValueError) as e:
        read_checkpoint(path)
    _one_line_error(e, path, phrase)


def test_layers_without_model_state_and_list_names(tmp_path):
    layers = [_layer("data", "data"), _layer("fc", "fc", inputs=[0], weights=[np.zeros((3, 2))])]
    path = cf.write_pickle(tmp_path / "1.1", {"layers": layers, "epoch": 3, "batchnum": 4})
    checkpoint = read_checkpoint(path)
    assert checkpoint.layers["fc"]["inputs"] == ["data"] and checkpoint.options == {}
    assert "no 'model_state': the top-level dict is read as the model state" in checkpoint.notes
    assert "no 'op' (options) in the file" in checkpoint.notes
    assert "file name 1.1 differs from epoch.batchnum 3.4" in checkpoint.notes
    unfed = _with_layer(checkpoint, "fc", inputs=[])
    with pytest.raises(ValueError, match="'fc' needs one weight matrix per input"):
        layer_arrays(unfed, "fc")
    with pytest.raises(ValueError, match="layer 'data' \\(type data\\) has no weights"):
        layer_arrays(checkpoint, "data")
    with pytest.raises(ValueError, match="has no layer 'conv9'. Received: layers \\[data, fc\\]"):
        layer_arrays(checkpoint, "conv9")


def test_bytes_keys_from_a_python3_resave_are_decoded(tmp_path):
    layer = {b"name": b"fc", b"type": b"fc", b"inputs": [b"data"], b"weights": [np.ones((2, 2))]}
    obj = {b"model_state": {b"layers": {b"data": {b"type": b"data"}, b"fc": layer}}}
    path = tmp_path / "resaved"
    path.write_bytes(pickle.dumps(obj, protocol=4))
    checkpoint = read_checkpoint(path)
    assert checkpoint.layers["fc"]["inputs"] == ["data"] and checkpoint.layers["fc"]["type"] == "fc"
    assert layer_arrays(checkpoint, "fc")["weights"][0].shape == (2, 2)


def test_natural_sort():
    names = ["10.1", "9.3", "9.12", "100.0", "2.40"]
    assert sorted(names, key=cuda_convnet.natural_key) == ["2.40", "9.3", "9.12", "10.1", "100.0"]


GROUPED_CFG = """
[data]
type=data
dataIdx=0

[labels]
type=data
dataIdx=1

[conv1]
type=conv
inputs=data
channels=3
filters=16
padding=1
stride=1
filterSize=3
neuron=relu
initW=0.01
partialSum=1
sharedBiases=1

[conv2]
type=conv
inputs=conv1
groups=2
channels=16
filters=8
padding=1
stride=2
filterSize=3
initW=0.01
partialSum=1
sharedBiases=1

[fc10]
type=fc
outputs=10
inputs=conv2
initW=0.01

[probs]
type=softmax
inputs=fc10

[logprob]
type=cost.logreg
inputs=labels,probs
"""


def test_grouped_conv_stores_filters_times_groups(tmp_path):
    cfg = tmp_path / "layers-grouped.cfg"
    cfg.write_text(GROUPED_CFG)
    net = chm_cfg.read_net(cfg)
    checkpoint = read_checkpoint(cf.write_checkpoint(tmp_path / "1.1", cf.layers_from_net(net)))
    conv2 = checkpoint.layers["conv2"]
    assert conv2["filters"] == 16 and conv2["groups"] == [2]  # cfg: filters=8 per group
    assert conv2["filterChannels"] == [8] and conv2["weights"][0].shape == (8 * 3 * 3, 16)
    assert check_against(checkpoint, net) == []


def test_no_keras_or_tensorflow_is_imported():
    import subprocess
    import sys

    code = (
        "import sys, alexnet_keras.cuda_convnet.checkpoint; "
        "sys.exit(bool({'keras', 'tensorflow'} & set(sys.modules)))"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0

"""The self-contained cfg-model weights file: its stored cfg texts are parsed in memory."""

import builtins
import io
import pathlib
import tempfile

import numpy as np
import pytest

from alexnet_keras.cuda_convnet import cfg_text
from alexnet_keras.cuda_convnet.cfg_mapper import mirror_arrays
from alexnet_keras.cuda_convnet.cfg_net import read_net
from alexnet_keras.cuda_convnet.cfg_weights import load_mirror, save_mirror_weights
from tests import convnet_files as cf
from tests.conftest import SHARED, require

CIFAR = SHARED / "data" / "chm-release" / "example-layers"


@pytest.fixture
def cfg_pair():
    return require(CIFAR / "layers-80sec.cfg"), CIFAR / "layer-params-80sec.cfg"


def _count_reads(monkeypatch):
    """Counts `read_cfg` calls per file name; the cfg files are read through it only."""
    reads, real = {}, cfg_text.read_cfg

    def counting(source, *args, **kwargs):
        name = pathlib.Path(getattr(source, "name", source)).name
        reads[name] = reads.get(name, 0) + 1
        return real(source, *args, **kwargs)

    monkeypatch.setattr(cfg_text, "read_cfg", counting)
    monkeypatch.setattr("alexnet_keras.cuda_convnet.cfg_net.read_cfg", counting)
    return reads


def _count_opens(monkeypatch):
    """File names opened through `open`/`io.open` (which `pathlib` uses), in order."""
    opened, real_open = [], io.open

    def counting_open(file, *args, **kwargs):
        opened.append(pathlib.Path(file).name)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting_open)
    monkeypatch.setattr(io, "open", counting_open)
    return opened


def test_read_net_opens_each_cfg_file_once(cfg_pair, monkeypatch):
    opened = _count_opens(monkeypatch)
    net = read_net(*cfg_pair)
    assert net.config["source"].endswith("layer-params-80sec.cfg")
    assert sorted(opened) == ["layer-params-80sec.cfg", "layers-80sec.cfg"]


def test_load_mirror_parses_the_stored_texts_without_temporary_files(cfg_pair, tmp_path,
                                                                     monkeypatch):  # fmt: skip
    net = read_net(*cfg_pair)
    arrays = mirror_arrays(net, cf.layers_from_net(net, seed=1))
    names = list("abcdefghij")
    path = save_mirror_weights(net, arrays, tmp_path / "m.weights.h5", class_names=names)

    def no_temp(*args, **kwargs):
        raise AssertionError("load_mirror made a temporary file")

    for name in ("TemporaryDirectory", "NamedTemporaryFile", "mkdtemp", "mkstemp"):
        monkeypatch.setattr(tempfile, name, no_temp)
    written, real_open = [], builtins.open

    def watching_open(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+"):
            written.append(file)
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", watching_open)
    reads = _count_reads(monkeypatch)
    model, meta = load_mirror(path)
    assert written == [] and reads == {"layers-80sec.cfg": 1, "layer-params-80sec.cfg": 1}
    assert meta["class_names"] == list("abcdefghij")
    assert model.count_params() == net.param_count == 145_578
    for name, values in arrays.items():
        for got, want in zip(model.get_layer(name).get_weights(), values, strict=True):
            np.testing.assert_array_equal(got, want)


def test_a_stored_text_is_read_as_the_file_was(cfg_pair):
    layers, params = cfg_pair
    from_disk = read_net(layers, params)
    stored = [cfg_text.CfgText(p.name, p.read_text("latin-1")) for p in cfg_pair]
    from_text = read_net(*stored, image_size=32)
    assert from_text.layers == from_disk.layers
    assert from_text.config["layers"] == from_disk.config["layers"]
    bad = cfg_text.CfgText("stored.cfg", "[conv1]\ntype=conv\ntype=conv\n")
    with pytest.raises(ValueError, match=r"^stored.cfg:3: layer 'conv1' gives type= twice"):
        read_net(bad)

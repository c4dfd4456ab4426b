"""`.caffemodel` reader, `.prototxt` parser and their cross-check, on files from `caffe_files`."""

import itertools
import os
import time

import numpy as np
import pytest

from alexnet_keras.caffe.caffemodel import read_caffemodel
from alexnet_keras.caffe.prototxt import check_against, read_prototxt
from tests import caffe_files as cf

FORMS = list(itertools.product([False, True], repeat=4))  # v1, packed, legacy_shape, double


def tiny_layers(rng):
    """Eight layers, of every kind the reader normalises; about 5 KB."""

    def f32(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    return [
        {"name": "data", "type": "Data", "top": ["data", "label"]},
        {
            "name": "conv1", "type": "Convolution", "bottom": ["data"], "top": ["conv1"],
            "blobs": [f32(16, 3, 5, 5), f32(16)],
            "params": {"num_output": 16, "kernel_size": 5, "stride": 2, "pad": 1, "group": 1},
        },
        {"name": "relu1", "type": "ReLU", "bottom": ["conv1"], "top": ["conv1"]},
        {
            "name": "norm1", "type": "LRN", "bottom": ["conv1"], "top": ["norm1"],
            "params": {"local_size": 3, "alpha": 1e-4, "beta": 0.75, "k": 2.0},
        },
        {
            "name": "pool1", "type": "Pooling", "bottom": ["norm1"], "top": ["pool1"],
            "params": {"pool": "AVE", "kernel_size": 3, "stride": 2},
        },
        {
            "name": "fc2", "type": "InnerProduct", "bottom": ["pool1"], "top": ["fc2"],
            "blobs": [f32(5, 12), f32(5)], "params": {"num_output": 5},
        },
        {
            "name": "drop2", "type": "Dropout", "bottom": ["fc2"], "top": ["fc2"],
            "params": {"dropout_ratio": 0.25},
        },
        {"name": "prob", "type": "Softmax", "bottom": ["fc2"], "top": ["prob"]},
    ]  # fmt: skip


@pytest.fixture
def layers(rng):
    return tiny_layers(rng)


@pytest.fixture
def model(tmp_path, layers):
    return cf.write_caffemodel(tmp_path / "tiny.caffemodel", layers)


def alexnet_params(rng, classes=3):
    """AlexNet's weighted layers with tiny arrays: the reader does not check shapes."""
    names = ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]
    params = {
        n: [rng.standard_normal((2, 3)).astype(np.float32), np.ones(2, np.float32)] for n in names
    }
    params["fc8"] = [np.zeros((classes, 2), np.float32), np.zeros(classes, np.float32)]
    return params


# === Reading every encoding ===


@pytest.mark.parametrize("v1, packed, legacy, double", FORMS)
def test_every_encoding_round_trips_bit_exact(tmp_path, layers, v1, packed, legacy, double):
    path = cf.write_caffemodel(
        tmp_path / "m.caffemodel", layers, v1=v1, packed=packed, legacy_shape=legacy, double=double
    )
    net = read_caffemodel(path)
    assert (net.format, net.layout, net.name) == ("caffemodel", "caffe", "AlexNet")
    assert net.path == str(path)
    assert [layer.name for layer in net.layers] == [layer["name"] for layer in layers]
    assert [layer.type for layer in net.layers] == [
        "data", "conv", "relu", "lrn", "pool", "fc", "dropout", "softmax"
    ]  # fmt: skip
    want_type = cf.V1_NAMES if v1 else {t: t for t in cf.TYPES}
    for got, spec in zip(net.layers, layers, strict=True):
        assert got.source_type == want_type[spec["type"]]
        assert got.params["bottom"] == spec.get("bottom", [])
        assert got.params["top"] == spec.get("top", [])
        assert len(got.arrays) == len(spec.get("blobs", []))
        for a, want in zip(got.arrays, spec.get("blobs", []), strict=True):
            assert a.dtype == (np.float64 if double else np.float32)
            if legacy:  # old Caffe's 4-D shape, kept for the mapper to normalise
                assert a.shape == (1,) * (4 - want.ndim) + want.shape
            else:
                assert a.shape == want.shape
            np.testing.assert_array_equal(a.reshape(want.shape), want.astype(a.dtype))
    assert bool(legacy) == any("legacy" in n for n in net.notes)
    assert bool(v1) == any("V1" in n for n in net.notes)


def test_params_as_written(model):
    net = read_caffemodel(model)
    assert net.layer("conv1").params == {
        "num_output": 16, "bias_term": True, "kernel_size": (5, 5), "stride": (2, 2),
        "pad": (1, 1), "dilation": (1, 1), "group": 1, "bottom": ["data"], "top": ["conv1"],
    }  # fmt: skip
    lrn = net.layer("norm1").params
    # float32 on disk, read back as the decimal the prototxt would spell
    assert (lrn["local_size"], lrn["alpha"], lrn["beta"], lrn["k"]) == (3, 0.0001, 0.75, 2.0)
    assert lrn["norm_region"] == "across_channels"
    pool = net.layer("pool1").params
    assert (pool["pool"], pool["kernel_size"], pool["stride"], pool["pad"]) == (
        "ave", (3, 3), (2, 2), (0, 0)
    )  # fmt: skip
    assert net.layer("fc2").params["num_output"] == 5
    assert net.layer("drop2").params["dropout_ratio"] == 0.25
    assert net.layer("relu1").params == {"bottom": ["conv1"], "top": ["conv1"]}


def test_caffe_defaults_fill_absent_fields(tmp_path):
    layers = [
        {"name": "c", "type": "Convolution", "params": {"num_output": 4, "kernel_size": 3}},
        {"name": "n", "type": "LRN", "params": {}},
        {"name": "p", "type": "Pooling", "params": {"kernel_size": 2}},
        {"name": "d", "type": "Dropout"},
        {"name": "f", "type": "InnerProduct", "params": {"num_output": 2, "bias_term": 0}},
    ]
    net = read_caffemodel(cf.write_caffemodel(tmp_path / "d.caffemodel", layers))
    conv = net.layer("c").params
    assert (conv["bias_term"], conv["stride"], conv["pad"]) == (True, (1, 1), (0, 0))
    assert (conv["group"], conv["dilation"]) == (1, (1, 1))
    lrn = net.layer("n").params
    assert (lrn["local_size"], lrn["alpha"], lrn["beta"], lrn["k"]) == (5, 1.0, 0.75, 1.0)
    pool = net.layer("p").params
    assert (pool["pool"], pool["stride"], pool["pad"]) == ("max", (1, 1), (0, 0))
    assert net.layer("d").params["dropout_ratio"] == 0.5
    assert net.layer("f").params["bias_term"] is False


def test_h_and_w_fields_and_unknown_types(tmp_path):
    conv = {"num_output": 1, "kernel_h": 3, "kernel_w": 5, "stride_h": 2, "pad_w": 1}
    layers = [
        {"name": "c", "type": "Convolution", "params": conv},
        {"name": "acc", "type": "Accuracy"},
        {"name": "loss", "type": "SoftmaxWithLoss"},
    ]
    net = read_caffemodel(cf.write_caffemodel(tmp_path / "hw.caffemodel", layers))
    params = net.layer("c").params
    assert (params["kernel_size"], params["stride"], params["pad"]) == ((3, 5), (2, 1), (0, 1))
    assert [(x.type, x.source_type) for x in net.layers[1:]] == [
        ("other", "Accuracy"), ("loss", "SoftmaxWithLoss")
    ]  # fmt: skip
    v1 = read_caffemodel(cf.write_caffemodel(tmp_path / "v1.caffemodel", layers[1:], v1=True))
    assert [x.source_type for x in v1.layers] == ["ACCURACY", "SOFTMAX_LOSS"]


def test_packed_blobs_are_writable_views_of_one_buffer(model):
    def root(a):
        while isinstance(a, np.ndarray) and a.base is not None:
            a = a.base
        return a

    net = read_caffemodel(model)
    w, fc = net.layer("conv1").arrays[0], net.layer("fc2").arrays[0]
    assert w.flags.writeable and not w.flags.owndata
    assert isinstance(root(w).obj, bytearray) and root(w).obj is root(fc).obj


@pytest.mark.parametrize("caffenet", [False, True])
def test_full_alexnet_layer_list(tmp_path, rng, caffenet):
    params = alexnet_params(rng)
    path = cf.write_caffemodel(tmp_path / "a.caffemodel", cf.alexnet_layers(params, caffenet))
    net = read_caffemodel(path)
    order = [x.name for x in net.layers if x.type in ("lrn", "pool")][:4]
    assert order == (
        ["pool1", "norm1", "pool2", "norm2"] if caffenet else ["norm1", "pool1", "norm2", "pool2"]
    )
    weighted = [x.name for x in net.layers if x.arrays]
    assert weighted == ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]
    groups = [net.layer(f"conv{i}").params["group"] for i in range(1, 6)]
    assert groups == [1, 2, 1, 2, 2]
    assert net.layer("fc8").params["num_output"] == 3
    np.testing.assert_array_equal(net.layer("fc6").arrays[0], params["fc6"][0])


# === Bad input: one line naming the file ===


def test_missing_directory_and_empty(tmp_path):
    with pytest.raises(ValueError, match=r"nope\.caffemodel: no such file$"):
        read_caffemodel(tmp_path / "nope.caffemodel")
    with pytest.raises(ValueError, match="is a directory, expected a .caffemodel file"):
        read_caffemodel(tmp_path)
    (tmp_path / "e.caffemodel").write_bytes(b"")
    with pytest.raises(ValueError, match="e.caffemodel: the file is empty"):
        read_caffemodel(tmp_path / "e.caffemodel")


def test_truncated_at_every_offset(tmp_path, layers):
    """A cut inside any field fails; only a cut between layers parses, as a prefix of them."""
    data = cf.caffemodel_bytes(layers)
    between = {len(cf.caffemodel_bytes(layers[:k])) for k in range(1, len(layers))}
    assert len(data) > 3000
    path = tmp_path / "cut.caffemodel"
    path.write_bytes(data)
    for cut in range(len(data) - 1, 0, -1):
        os.truncate(path, cut)  # rewriting the file each time is 50x slower on some disks
        if cut in between:
            names = [x.name for x in read_caffemodel(path).layers]
            assert names == [x["name"] for x in layers[: len(names)]]
            continue
        with pytest.raises(ValueError) as e:
            read_caffemodel(path)
        message = str(e.value)
        assert message.startswith(f"{path}: ") and "\n" not in message
        assert "truncated or not a .caffemodel" in message or "not a Caffe .caffemodel" in message


@pytest.mark.parametrize("cut", [1, 10, 1000, "half", -1])
def test_truncated_messages(tmp_path, layers, cut):
    data = cf.caffemodel_bytes(layers)
    cut = len(data) // 2 if cut == "half" else cut
    path = tmp_path / "t.caffemodel"
    path.write_bytes(data[:cut])
    with pytest.raises(
        ValueError, match=r"t\.caffemodel: truncated or not a \.caffemodel \(.* at byte \d+\)$"
    ):
        read_caffemodel(path)


@pytest.mark.parametrize(
    "content",
    [
        b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }",
        b"\x89HDF\r\n\x1a\n\x00\x00\x00\x00\x00\x08\x08\x00\x04\x00\x10\x00",
        b'name: "AlexNet"\nlayer {\n  name: "conv1"\n}\n',
        b"\x0a\x07AlexNet",  # a NetParameter with a name and no layers
    ],
    ids=["npy", "hdf5", "prototxt", "no-layers"],
)
def test_not_a_caffemodel(tmp_path, content):
    path = tmp_path / "x.caffemodel"
    path.write_bytes(content)
    with pytest.raises(
        ValueError, match=r"x\.caffemodel: (truncated or )?not a (Caffe )?\.caffemodel"
    ):
        read_caffemodel(path)


def test_random_bytes(tmp_path):
    path = tmp_path / "r.caffemodel"
    for seed in range(50):
        path.write_bytes(np.random.default_rng(seed).bytes(4096))
        with pytest.raises(ValueError, match=r"r\.caffemodel: (truncated or )?not a"):
            read_caffemodel(path)


@pytest.mark.parametrize("packed", [True, False])
def test_blob_length_disagrees_with_shape(tmp_path, packed):
    layer = {"name": "conv2", "type": "Convolution", "blobs": [((4, 2, 3, 3), np.ones(71))]}
    path = cf.write_caffemodel(tmp_path / "b.caffemodel", [layer], packed=packed)
    with pytest.raises(
        ValueError,
        match=r"b\.caffemodel: layer 'conv2' blob 0 has shape \(4, 2, 3, 3\) = 72 values\. "
        r"Received: 71 floats$",
    ):
        read_caffemodel(path)


def test_blob_without_data_or_with_negative_dims(tmp_path):
    empty = {"name": "fc", "type": "InnerProduct", "blobs": [((3, 2), np.zeros(0))]}
    path = cf.write_caffemodel(tmp_path / "n.caffemodel", [empty])
    with pytest.raises(
        ValueError, match=r"layer 'fc' blob 0 has shape \(3, 2\) = 6 values but no data"
    ):
        read_caffemodel(path)
    negative = {"name": "fc", "type": "InnerProduct", "blobs": [((-3, 2), np.zeros(6))]}
    path = cf.write_caffemodel(tmp_path / "neg.caffemodel", [negative])
    with pytest.raises(ValueError, match=r"layer 'fc' blob 0 has a negative dimension .*\(-3, 2\)"):
        read_caffemodel(path)


def _raw_layer(name, *fields):
    """A `layer` field holding a name and hand-made fields: encodings the writer does not make."""
    return cf.length_delimited(100, cf.length_delimited(1, name.encode()) + b"".join(fields))


def test_packed_parameters_and_mixed_blob_data(tmp_path):
    conv = cf.key(1, 0) + cf.varint(4) + cf.length_delimited(4, cf.varint(3) + cf.varint(5))
    path = tmp_path / "p.caffemodel"
    path.write_bytes(
        _raw_layer("c", cf.length_delimited(2, b"Convolution"), cf.length_delimited(106, conv))
    )
    assert read_caffemodel(path).layer("c").params["kernel_size"] == (3, 5)
    both = cf.blob(np.ones(2)) + cf.length_delimited(8, np.ones(2).tobytes())
    path.write_bytes(_raw_layer("b", cf.length_delimited(7, both)))
    with pytest.raises(ValueError, match=r"layer 'b' blob 0 has both data \(2\) and double_data"):
        read_caffemodel(path)


@pytest.mark.parametrize("double", [False, True])
def test_unpacked_values_are_read_in_runs(tmp_path, double):
    """One tag per value: read by a numpy scan, not by a Python step per value."""
    values = np.arange(200_000, dtype=np.float32)
    layer = {"name": "fc", "type": "InnerProduct", "blobs": [values]}
    path = cf.write_caffemodel(tmp_path / "u.caffemodel", [layer], packed=False, double=double)
    start = time.perf_counter()
    net = read_caffemodel(path)
    assert time.perf_counter() - start < 0.5  # the per-value path takes about 5 s
    np.testing.assert_array_equal(net.layer("fc").arrays[0], values)


def test_v0_layers_and_bad_wire_types(tmp_path):
    v0 = cf.length_delimited(2, cf.length_delimited(1, cf.length_delimited(1, b"conv1")))
    (tmp_path / "v0.caffemodel").write_bytes(v0)
    with pytest.raises(ValueError, match="V0 layer format"):
        read_caffemodel(tmp_path / "v0.caffemodel")
    group = cf.length_delimited(100, cf.length_delimited(1, b"a")) + cf.key(5, 3)
    (tmp_path / "g.caffemodel").write_bytes(group)
    with pytest.raises(ValueError, match=r"not a Caffe \.caffemodel \(field 5 with wire type 3"):
        read_caffemodel(tmp_path / "g.caffemodel")


# === prototxt ===


@pytest.mark.parametrize(
    "v1, style",
    [(False, "shape"), (False, "dim"), (False, "layer"), (True, "shape"), (True, "dim")],
)  # Input layers came with the `layer` form; V1 files have none
def test_prototxt_matches_the_caffemodel_reading(tmp_path, rng, v1, style):
    params = alexnet_params(rng)
    layers = cf.alexnet_layers(params)
    text = read_prototxt(
        cf.write_prototxt(tmp_path / "deploy.prototxt", layers, v1=v1, input_style=style)
    )
    binary = read_caffemodel(cf.write_caffemodel(tmp_path / "a.caffemodel", layers, v1=v1))
    assert text.input_shape == (10, 3, 227, 227) and text.name == "AlexNet"
    body = text.layers
    if style == "layer":
        assert (body[0]["type"], body[0]["source_type"]) == ("data", "Input")
        body = body[1:]
    assert [x["name"] for x in body] == [x.name for x in binary.layers[1:]]
    for got, want in zip(body, binary.layers[1:], strict=True):
        assert got["type"] == want.type and got["source_type"] == want.source_type
        assert got["params"] == want.params
    check_against(text, binary)


def test_prototxt_syntax(tmp_path):
    path = tmp_path / "odd.prototxt"
    path.write_text(
        "# a comment\n"
        "name: 'odd\\x21 \\\"net\\\"'  # trailing comment\n"
        "input_dim: 1 input_dim: 3; input_dim: 8, input_dim: 8\n"
        'layers { name: "c" "1" type: CONVOLUTION\n'
        "  convolution_param: { num_output: 0x10 kernel_size: [3, 5] stride: 2 bias_term: false }\n"
        "  convolution_param < pad: 1 >\n"
        "}\n"
        "layers { name: 'n' type: LRN\n"
        "  lrn_param { alpha: 1e-4 beta: .75 norm_region: WITHIN_CHANNEL } }\n"
        "layers { name: 'p' type: POOLING pooling_param { pool: STOCHASTIC kernel_size: 2 } }\n"
        "layers { name: 'u' type: 4 }\n"
    )
    net = read_prototxt(path)
    assert net.name == 'odd! "net"' and net.input_shape == (1, 3, 8, 8)
    conv = net.layer("c1")
    assert (conv["type"], conv["source_type"]) == ("conv", "CONVOLUTION")
    p = conv["params"]
    assert (p["num_output"], p["kernel_size"], p["stride"], p["pad"], p["bias_term"]) == (
        16, (3, 5), (2, 2), (1, 1), False
    )  # fmt: skip
    lrn = net.layer("n")["params"]
    assert (lrn["alpha"], lrn["beta"], lrn["norm_region"], lrn["local_size"]) == (
        1e-4, 0.75, "within_channel", 5
    )  # fmt: skip
    assert net.layer("p")["params"]["pool"] == "stochastic"
    assert net.layer("u")["source_type"] == "CONVOLUTION"


@pytest.mark.parametrize(
    "text, message",
    [
        (
            'layer {\n  name: "c"\n  kernel_size }\n',
            r":3: expected ':' or '\{' after 'kernel_size'. Received: '\}'$",
        ),
        ('layer {\n  name: "c\n}\n', r":2: unterminated string$"),
        (
            'layer {\n  name: "c"\n',
            r":3: expected '\}' to close the block opened at line 1. Received: end of file$",
        ),
        ("layer { name: }\n", r":1: expected a value after 'name:'. Received: '\}'$"),
        ("}\n", r":1: expected a field name. Received: '\}'$"),
        ("layer { name: 'x' $ }", r":1: unexpected character '\$'$"),
        (
            "\n\nlayer { type: 'Convolution'\n convolution_param { kernel_size: 'big' } }",
            r":3: layer '': convolution_param.kernel_size must be a non-negative integer. "
            r"Received: 'big'$",
        ),
        (
            "layer { type: 'Pooling' pooling_param { pool: MEDIAN } }",
            r"pool must be one of MAX, AVE, STOCHASTIC",
        ),
        ("# nothing\n", r"no 'layer \{ \}' blocks"),
        ("layer: 5\n", r"'layer' must be a block. Received: 5$"),
        ("layer { name: 'a' } layers { name: 'b' }", r"has both 'layer' and 'layers' blocks"),
    ],
)
def test_prototxt_errors_name_file_and_line(tmp_path, text, message):
    path = tmp_path / "deploy.prototxt"
    path.write_text(text)
    with pytest.raises(
        ValueError, match=r"deploy\.prototxt" + message if message[0] == ":" else message
    ):
        read_prototxt(path)


def test_prototxt_bad_files(tmp_path, model):
    with pytest.raises(ValueError, match="not a text .prototxt"):
        read_prototxt(model)
    with pytest.raises(ValueError, match="no such file"):
        read_prototxt(tmp_path / "missing.prototxt")


# === check_against ===


@pytest.fixture
def pair(tmp_path, rng):
    """(write prototxt from layers, read caffemodel of caffenet-or-not AlexNet)."""
    params = alexnet_params(rng)

    def make(caffenet=False, edit=None):
        layers = cf.alexnet_layers(params, caffenet)
        model = read_caffemodel(cf.write_caffemodel(tmp_path / "m.caffemodel", layers))
        proto_layers = cf.alexnet_layers(params, caffenet)
        if edit:
            proto_layers = edit(proto_layers)
        return read_prototxt(cf.write_prototxt(tmp_path / "deploy.prototxt", proto_layers)), model

    return make


def _edit(name, **params):
    def edit(layers):
        for layer in layers:
            if layer["name"] == name:
                layer["params"].update(params)
        return layers

    return edit


@pytest.mark.parametrize("caffenet", [False, True])
def test_check_against_passes_on_the_same_net(pair, caffenet):
    check_against(*pair(caffenet))


def test_check_against_group_mismatch(pair):
    proto, model = pair(edit=_edit("conv2", group=1))
    with pytest.raises(
        ValueError,
        match=r"deploy\.prototxt: layer 'conv2' has group 1, but the caffemodel .*m\.caffemodel "
        r"has group 2$",
    ):
        check_against(proto, model)


def test_check_against_float_tolerance(pair):
    check_against(*pair(edit=_edit("norm1", alpha=0.0001 * (1 + 1e-8))))
    with pytest.raises(ValueError, match="layer 'norm1' has alpha 0.000101, but"):
        check_against(*pair(edit=_edit("norm1", alpha=0.000101)))


def test_check_against_order(tmp_path, rng):
    params = alexnet_params(rng)
    proto = read_prototxt(cf.write_prototxt(tmp_path / "d.prototxt", cf.alexnet_layers(params)))
    caffenet = cf.alexnet_layers(params, caffenet=True)
    model = read_caffemodel(cf.write_caffemodel(tmp_path / "c.caffemodel", caffenet))
    with pytest.raises(
        ValueError,
        match=r"layer 'norm1' comes before 'pool1', but the caffemodel .* has 'pool1' "
        r"before 'norm1'$",
    ):
        check_against(proto, model)


def test_check_against_missing_extra_and_type(pair):
    drop = lambda layers: [x for x in layers if x["name"] != "fc7"]  # noqa: E731
    with pytest.raises(
        ValueError, match="the caffemodel .* has weights for layer 'fc7', which the prototxt"
    ):
        check_against(*pair(edit=drop))

    def add(layers):
        extra = {"name": "fc9", "type": "InnerProduct", "bottom": ["fc8"], "top": ["fc9"],
                 "params": {"num_output": 2}}  # fmt: skip
        return layers + [extra]

    with pytest.raises(ValueError, match=r"layer 'fc9' \(fc\) is not in the caffemodel"):
        check_against(*pair(edit=add))

    def retype(layers):
        for x in layers:
            if x["name"] == "pool5":
                x["type"], x["params"] = "LRN", {"local_size": 3}
        return layers

    with pytest.raises(
        ValueError, match="layer 'pool5' has type LRN, but the caffemodel .* has type Pooling"
    ):
        check_against(*pair(edit=retype))


# === Speed (opt-in): the full-size file ===


@pytest.mark.slow
def test_full_size_reads_fast_without_copies(tmp_path, rng):
    import tracemalloc

    shapes = {"conv1": (96, 3, 11, 11), "conv2": (256, 48, 5, 5), "conv3": (384, 256, 3, 3),
              "conv4": (384, 192, 3, 3), "conv5": (256, 192, 3, 3), "fc6": (4096, 9216),
              "fc7": (4096, 4096), "fc8": (1000, 4096)}  # fmt: skip
    params = {
        k: [rng.standard_normal(s, dtype=np.float32), np.zeros(s[0], np.float32)]
        for k, s in shapes.items()
    }
    path = cf.write_caffemodel(tmp_path / "full.caffemodel", cf.alexnet_layers(params))
    del params
    read_caffemodel(path)  # warm the page cache
    start = time.perf_counter()
    net = read_caffemodel(path)
    seconds = time.perf_counter() - start
    del net
    tracemalloc.start()
    net = read_caffemodel(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert sum(a.size for x in net.layers for a in x.arrays) == 60965224
    assert seconds < 1.0, seconds
    assert peak < 1.05 * path.stat().st_size, peak  # the file's bytes, once


@pytest.mark.parametrize("v1", [False, True])
def test_fields_of_real_training_files_are_skipped(tmp_path, v1):
    """BVLC's files carry solver fields (blobs_lr, weight_decay, param {lr_mult}, fillers)."""
    import struct

    w = np.arange(8, dtype=np.float32).reshape(2, 1, 2, 2)
    layer = {"name": "conv1", "type": "Convolution", "bottom": ["data"], "top": ["conv1"],
             "blobs": [w, np.ones(2, np.float32)],
             "params": {"num_output": 2, "kernel_size": 2}}  # fmt: skip
    body = cf.layer_bytes(layer, v1=v1)
    filler = cf.length_delimited(1, b"gaussian") + cf.key(2, 5) + struct.pack("<f", 0.01)
    if v1:  # V1LayerParameter blobs_lr = 7, weight_decay = 8 (repeated float, unpacked)
        extra = b"".join(cf.key(f, 5) + struct.pack("<f", 1.0) for f in (7, 7, 8, 8))
    else:  # LayerParameter param = 6 (ParamSpec lr_mult = 3), phase = 10
        spec = cf.key(3, 5) + struct.pack("<f", 1.0)
        extra = cf.length_delimited(6, spec) + cf.key(10, 0) + b"\x01"
    conv_param = cf.length_delimited(7, filler)  # weight_filler inside the conv param
    body += extra + cf.length_delimited(10 if v1 else 106, conv_param)
    path = tmp_path / "real.caffemodel"
    path.write_bytes(cf.length_delimited(2 if v1 else 100, body))
    net = read_caffemodel(path)
    np.testing.assert_array_equal(net.layer("conv1").arrays[0], w)
    assert net.layer("conv1").params["num_output"] == 2

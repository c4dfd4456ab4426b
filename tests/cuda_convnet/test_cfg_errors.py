"""cuda-convnet `.cfg` files written by the tests: layer variants, and broken files' errors."""

import pytest

from alexnet_keras.cuda_convnet import cfg_text as chm_text
from alexnet_keras.cuda_convnet.cfg_net import parse_cfg, read_net, training_config
from alexnet_keras.cuda_convnet.cfg_summary import summary


def test_parse_cfg_syntax(tmp_path):
    path = tmp_path / "x.cfg"
    path.write_text("# top\n\n[b]\n key = .03  # why\nlist=1, 2\n; also a comment\n[a]\nk=v\n")
    assert parse_cfg(path) == {"b": {"key": ".03", "list": "1, 2"}, "a": {"k": "v"}}
    cfg = chm_text.read_cfg(path, "a test file")
    assert cfg.comments == [(1, "top"), (6, "also a comment")]
    assert cfg.lines["b"] == {None: 3, "key": 4, "list": 5}


BASE = """# a small CIFAR-sized net
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
padding=2
stride=1
filterSize=5
neuron=relu

[pool1]
type=pool
pool=max
inputs=conv1
sizeX=3
stride=2
channels=16

[fc10]
type=fc
inputs=pool1
outputs=10

[probs]
type=softmax
inputs=fc10

[logprob]
type=cost.logreg
inputs=labels,probs
"""
PARAMS = """# trained quickly
[conv1]
epsW=0.001
epsB=0.002
momW=0.9
momB=0.9
wc=0.004

[fc10]
epsW=0.001
epsB=0.002
momW=0.9
momB=0.9

[logprob]
coeff=1
"""


def write(tmp_path, text, name="layers-test.cfg"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_small_net(tmp_path):
    net = read_net(write(tmp_path, BASE), write(tmp_path, PARAMS, "layer-params-test.cfg"))
    assert net.layer("conv1").output_shape == (16, 32, 32)
    assert net.layer("pool1").output_shape == (16, 16, 16)  # ceil((32 - 3) / 2) + 1
    assert net.layer("fc10").weight_shapes == ((16 * 16 * 16, 10), (10,))
    assert net.layer("pool1").inputs == ("conv1_neuron",)
    assert net.comments == ("a small CIFAR-sized net",)
    assert net.config["layers"]["fc10"]["wc"] == (0.0,)  # cuda-convnet's default
    text = summary(net)
    assert all(name in text for name in net.names) and "# trained quickly" in text


def test_layer_variants(tmp_path):
    extra = """
[side]
type=conv
inputs=data
channels=3
filters=8
filterSize=5
padding=2
groups=1
sharedBiases=0

[both]
type=conv
inputs=conv1,side
channels=16,8
filters=8,16
groups=2,1
filterSize=3,5
padding=1,2

[loc]
type=local
inputs=both
channels=8
filters=4
filterSize=3

[act]
type=neuron
inputs=loc
neuron=tanh[1.7159,0.6666]

[pool2]
type=pool
pool=avg
inputs=act
channels=4
sizeX=2
stride=2
outputsX=5
"""
    bad = r"layer 'loc' says channels=8 for input 'both', which has 16"  # both: 16 channels
    with pytest.raises(ValueError, match=bad):
        read_net(write(tmp_path, BASE + extra, "bad.cfg"), image_size=16)
    fixed = extra.replace("inputs=both\nchannels=8", "inputs=both\nchannels=16")
    net = read_net(write(tmp_path, BASE + fixed), image_size=16)
    assert net.layer("side").weight_shapes == ((75, 8), (8 * 16 * 16,))  # unshared biases
    # groups=2 on the 16-channel input: 8 filters per group read 8 channels each.
    assert net.layer("both").weight_shapes == ((8 * 9, 16), (8 * 25, 16), (16,))
    assert net.layer("both").output_shape == (16, 16, 16)
    assert net.layer("both").inputs == ("conv1_neuron", "side")
    assert net.layer("loc").weight_shapes == ((14 * 14, 16 * 9, 4), (4 * 14 * 14,))
    assert net.layer("act").params["neuron"] == "tanh[1.7159,0.6666]"
    assert net.layer("pool2").output_shape == (4, 5, 5)  # outputsX as given


def test_forward_reference_is_ordered(tmp_path):
    text = BASE.replace("[fc10]\ntype=fc\ninputs=pool1", "[fc10]\ntype=fc\ninputs=late")
    text += "\n[late]\ntype=pool\npool=max\ninputs=pool1\nsizeX=2\nstride=2\nchannels=16\n"
    net = read_net(write(tmp_path, text))
    assert net.names.index("late") < net.names.index("fc10")
    assert net.layer("fc10").weight_shapes[0] == (16 * 8 * 8, 10)


ERRORS = [  # (what to change in BASE, layer named, text in the message)
    (("inputs=pool1", "inputs=pool9"), "fc10", "reads an unknown layer 'pool9'"),
    (("inputs=data\n", "inputs=fc10\n"), "conv1", "cycle"),
    (("filterSize=5\n", ""), "conv1", "has no filterSize="),
    (("filters=16", "filters=sixteen"), "conv1", "filters= must be an integer"),
    (("outputs=10", "outputs=1e1"), "fc10", "outputs= must be an integer"),
    (("channels=16", "channels=32"), "pool1", "channels=32 for input 'conv1_neuron', which has 16"),
    (("filterSize=5\n", "filterSize=5\ngroups=2\n"), "conv1", "groups=2, which does not divide"),
    (("filterSize=5", "filterSize=5,5"), "conv1", "2 value(s) for filterSize= but has 1 input"),
    (("[probs]", "[fc10]"), "fc10", "duplicate section [fc10]"),
    (("filters=16", "filters=16\nfilters=8"), "conv1", "gives filters= twice"),
    (("type=pool", "type=blur"), "pool1", "has type 'blur', which alexnet-keras does not support"),
    (("type=pool", "type=pol"), "pool1", "has type 'pol', which is not known"),
    (("type=pool\n", ""), "pool1", "has no type= key"),
    (("neuron=relu", "neuron=softrelu"), "conv1", "neuron=softrelu, which alexnet-keras"),
    (("filters=16", "filters 16"), "conv1", "expected key=value"),
    (("dataIdx=1", "dataIdx=2"), "labels", "dataIdx"),
    (("inputs=labels,probs", "inputs=probs"), "logprob", "takes 2 inputs"),
    (("filterSize=5\n", "filterSize=5\nrandSparse=1\n"), "conv1", "randSparse"),
    (("filterSize=5", "filterSize=37"), "conv1", "filterSize=37 larger than its 32x32 input"),
    (("sizeX=3", "sizeX=1"), "pool1", "stride <= sizeX"),
    (("[logprob]", "[x]\ntype=fc\ninputs=logprob\noutputs=2\n\n[logprob]"), "x", "a cost layer"),
]


@pytest.mark.parametrize("change, layer, text", ERRORS, ids=[e[2][:30] for e in ERRORS])
def test_broken_def_files(tmp_path, change, layer, text):
    assert change[0] in BASE
    path = write(tmp_path, BASE.replace(change[0], change[1], 1), "broken-layers.cfg")
    with pytest.raises(ValueError) as e:
        read_net(path, image_size=32)
    message = str(e.value)
    assert "broken-layers.cfg:" in message and f"'{layer}'" in message, message
    assert text in message and "\n" not in message, message


def test_broken_files_and_arguments(tmp_path):
    for text, expected in [(None, "no such file"), ("", "empty"), ("# only\n", "no [section]"),
                           ("k=v\n[a]\n", "expected a [section] first")]:  # fmt: skip
        path = tmp_path / "layers-x.cfg"
        if text is not None:
            path.write_text(text)
        with pytest.raises(ValueError, match=r"layers-x\.cfg.*" + expected.replace("[", r"\[")):
            read_net(path)
        path.unlink(missing_ok=True)
    with pytest.raises(ValueError, match="image_size must be a positive int"):
        read_net(write(tmp_path, BASE), image_size=0)


@pytest.mark.parametrize(
    "change, layer, text",
    [
        (("[logprob]", "[fc11]\nepsW=1\n\n[logprob]"), "fc11", "defines no such layer"),
        (("epsB=0.002\nmomW=0.9\nmomB=0.9\n\n[logprob]", "epsB=fast\n[logprob]"), "fc10",
         "epsB= must be a number"),
        (("wc=0.004", "wc=0.004,0"), "conv1", "2 value(s) for wc= but has 1 input(s)"),
        (("coeff=1", "coeff=1\ncoeff=2"), "logprob", "gives coeff= twice"),
    ],
)  # fmt: skip
def test_broken_params_files(tmp_path, change, layer, text):
    assert change[0] in PARAMS
    params = write(tmp_path, PARAMS.replace(change[0], change[1]), "layer-params-broken.cfg")
    with pytest.raises(ValueError) as e:
        training_config(write(tmp_path, BASE), params)
    message = str(e.value)
    assert "layer-params-broken.cfg:" in message and f"'{layer}'" in message, message
    assert text in message and "\n" not in message, message


def test_params_missing_values_and_loose_reading(tmp_path):
    defs = write(tmp_path, BASE)
    params = write(tmp_path, PARAMS.replace("epsW=0.001\nepsB=0.002\nmomW", "momW", 1), "p.cfg")
    conv1 = training_config(defs, params)["layers"]["conv1"]
    assert conv1["epsW"] is None and conv1["epsB"] is None and conv1["momW"] == (0.9,)
    assert training_config(defs, write(tmp_path, "[conv1]\nwc=0\n", "q.cfg"))["layers"][
        "logprob"
    ] == {"type": "cost.logreg", "coeff": None, "topk": 1}
    loose = PARAMS + "\n[conv1]\nepsW=0.5\n\n[fc11]\nepsW=1\n"
    cfg = training_config(defs, write(tmp_path, loose, "r.cfg"), strict=False)
    assert cfg["layers"]["conv1"]["epsW"] == (0.5,) and cfg["layers"]["conv1"]["wc"] == (0.004,)
    assert len(cfg["notes"]) == 3 and "fc11" in cfg["notes"][-1]

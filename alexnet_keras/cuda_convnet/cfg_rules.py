"""Per-type rules for cuda-convnet (CHM release) layer definitions: keys, output shapes, weights.

`chm_cfg` reads the files and wires the graph; this module knows, for each
layer type, which keys the def file must or may give (`SPECS`), how they are
parsed, and what a layer of that type outputs and stores. The rules follow the
CHM `layer.py` parsers (`docs/formats.md` §1.3). Shapes are channel-major:
`(channels, height, width)` for images, `(features,)` for vectors, `()` for
cost layers.

Where this differs from CHM:

* GPU-kernel limits (channels divisible by 4 or 16, `partialSum` dividing
  the module count) are not checked: they do not change the network.
* `randSparse` (random sparse connectivity) is refused: which channels each
  group reads is drawn at init time and only a checkpoint has it.
* cuda-convnet 1 syntax (`example-layers/`) is accepted: an `rnorm`/`cnorm`
  with `sizeX=` (and `scale=`/`pow=` here, not in the params file) reads as
  `size=`. It is unambiguous: cuda-convnet 1 divided that scale by sizeX**2,
  as CHM divides rnorm's by size**2.
* A bare `tanh` neuron is tanh[1,1]; CHM asks for `tanh[a,b]`.
"""

import math
import re

__all__ = [
    "CHM_TYPES",
    "NEURONS",
    "NORM_TYPES",
    "SPECS",
    "SUPPORTED_TYPES",
    "BUILT_WEIGHT_TYPES",
    "WEIGHT_TYPES",
    "layer_params",
    "output_and_weights",
    "parse_neuron",
    "parse_scalar",
    "parse_value",
]

SUPPORTED_TYPES = (
    "data", "conv", "local", "pool", "cmrnorm", "rnorm", "cnorm", "fc", "neuron", "hs",
    "softmax", "cost.logreg", "concat",
)  # fmt: skip
# Every type CHM's `layer_parsers` knows; the rest of these are refused by name.
CHM_TYPES = SUPPORTED_TYPES + (
    "treefc", "eltsum", "eltmax", "nailbed", "blur", "href", "resize", "rgb2yuv", "rgb2lab",
    "rscale", "cost.msm", "cost.crossent", "cost.crossent2", "cost.sum2", "cost.gsum2",
    "cost.tica", "cost.rflickr",
)  # fmt: skip
WEIGHT_TYPES = ("conv", "local", "fc", "treefc")
# The weighted types `cfg_model` builds in Keras (local and treefc are refused by name).
BUILT_WEIGHT_TYPES = ("conv", "local", "fc")
NORM_TYPES = ("cmrnorm", "rnorm", "cnorm")
# Neuron name -> allowed parameter counts. CHM requires `tanh[a,b]`; a bare
# `tanh` is accepted here as a = b = 1.
NEURONS = {"relu": (0,), "ident": (0,), "logistic": (0,), "abs": (0,), "tanh": (0, 2)}
POOLS = ("max", "avg", "maxabs", "rand")

_REQUIRED = object()
_CONV = {
    "channels": (int, True, _REQUIRED),
    "filters": (int, True, _REQUIRED),
    "filterSize": (int, True, _REQUIRED),
    "padding": (int, True, 0),
    "stride": (int, True, 1),
    "groups": (int, True, 1),
    "randSparse": (bool, True, False),
    "filterChannels": (int, True, None),
    "initW": (float, True, None),
    "initB": (float, False, None),
}
_SPATIAL_NORM = {
    "channels": (int, False, _REQUIRED),
    "size": (int, False, _REQUIRED),
    # cuda-convnet 1 syntax (example-layers/): sizeX for size, scale and pow here.
    "scale": (float, False, None),
    "pow": (float, False, None),
}
# type -> {key: (parser, one value per input, default)}; a default of None
# means "absent unless given", _REQUIRED that the key must be there. Keys not
# listed are kept, parsed by `parse_value`.
SPECS = {
    "data": {"dataIdx": (int, False, _REQUIRED)},
    "conv": {**_CONV, "sharedBiases": (bool, False, True), "partialSum": (int, False, None)},
    "local": _CONV,
    "pool": {
        "channels": (int, False, _REQUIRED),
        "pool": (str, False, _REQUIRED),
        "sizeX": (int, False, _REQUIRED),
        "stride": (int, False, _REQUIRED),
        "start": (int, False, 0),
        "outputsX": (int, False, 0),
    },
    "cmrnorm": {"channels": (int, False, _REQUIRED), "size": (int, False, _REQUIRED)},
    "rnorm": _SPATIAL_NORM,
    "cnorm": _SPATIAL_NORM,
    "fc": {
        "outputs": (int, False, _REQUIRED),
        "initW": (float, True, None),
        "initB": (float, False, None),
    },
    "hs": {"keep": (float, False, _REQUIRED)},
    "neuron": {"neuron": (str, False, _REQUIRED)},
    "softmax": {},
    "concat": {},
    "cost.logreg": {},
}
_COMMON = {"gpu": (int, False, None), "neuron": (str, False, None)}
# Exact input counts; types not listed take one or more.
_INPUT_COUNT = {"pool": 1, "hs": 1, "softmax": 1, "neuron": 1, "cost.logreg": 2}
_INPUT_COUNT.update(dict.fromkeys(NORM_TYPES, 1))


_INT = re.compile(r"[-+]?\d+")
_FLOAT = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_BOOLS = {"1": True, "true": True, "yes": True, "on": True}
_BOOLS.update({"0": False, "false": False, "no": False, "off": False})
_NAMES = {int: "an integer", float: "a number", bool: "a boolean (0/1, true/false)"}


def parse_scalar(text, kind):
    """One value as `kind` (int, float, bool or str); ValueError naming what was expected.

    >>> parse_scalar(".03", float), parse_scalar("true", bool)
    (0.03, True)
    """
    text = text.strip()
    if kind is str:
        return text
    if kind is bool and text.lower() in _BOOLS:
        return _BOOLS[text.lower()]
    if kind is int and _INT.fullmatch(text):
        return int(text)
    if kind is float and _FLOAT.fullmatch(text):
        return float(text)
    raise ValueError(f"must be {_NAMES[kind]}")


def parse_value(text):
    """A value of a key no spec lists: an int, a float, a string, or a tuple of them.

    >>> parse_value("0.001,0.1"), parse_value("initw.makew(conv1a)")
    ((0.001, 0.1), 'initw.makew(conv1a)')
    """

    def one(item):
        item = item.strip()
        for kind in (int, float):
            try:
                return parse_scalar(item, kind)
            except ValueError:
                pass
        return item

    # A comma inside brackets belongs to a call or schedule, not a list.
    if "," in text and not re.search(r"[\[(]", text):
        return tuple(one(item) for item in text.split(","))
    return one(text)


def parse_neuron(text):
    """`"relu"` -> `("relu", ())`, `"tanh[1.7,0.66]"` -> `("tanh", (1.7, 0.66))`; None if unknown.

    >>> parse_neuron("tanh[1.7159,0.6666]"), parse_neuron("softrelu")
    (('tanh', (1.7159, 0.6666)), None)
    """
    m = re.fullmatch(r"\s*(\w+)\s*(?:\[([^\]]*)\])?\s*", text)
    if not m or m.group(1) not in NEURONS:
        return None
    args = () if m.group(2) is None else tuple(m.group(2).split(","))
    try:
        args = tuple(parse_scalar(a, float) for a in args)
    except ValueError:
        return None
    return (m.group(1), args) if len(args) in NEURONS[m.group(1)] else None


def layer_params(kind, raw, where):
    """The def-file section of one layer parsed by `SPECS[kind]`.

    Args:
        kind: a type from `SUPPORTED_TYPES`.
        raw: `{key: raw string}` of the section.
        where: a `chm_text.Where` for the section, to raise errors with.

    Returns:
        `(inputs, params)`: input names in file order, and params with
        defaults filled in; keys that take one value per input are tuples.
    """
    raw = dict(raw)
    raw.pop("type", None)
    if kind == "data":
        inputs = ()
    elif "inputs" not in raw:
        where.fail("has no inputs= key", f"keys {', '.join(raw) or '(none)'}")
    else:
        inputs = tuple(item.strip() for item in raw.pop("inputs").split(","))
        if "" in inputs:
            where.fail("has an empty name in inputs=", ",".join(inputs), "inputs")
    count = _INPUT_COUNT.get(kind)
    if count is not None and len(inputs) != count:
        what = f"is a {kind} layer, which takes {count} input{'s' * (count > 1)}"
        where.fail(what, f"inputs={','.join(inputs)}", "inputs")
    if kind in ("rnorm", "cnorm") and "sizeX" in raw:
        if "size" in raw:
            where.fail("gives both size= and sizeX= (old cuda-convnet 1 syntax)", "both", "sizeX")
        raw["size"] = raw.pop("sizeX")
        where.key_alias("size", "sizeX")
    spec = {**_COMMON, **SPECS[kind]}
    params = {}
    for key, (parser, per_input, default) in spec.items():
        if key not in raw:
            if default is _REQUIRED:
                keys = ", ".join(k for k, v in spec.items() if v[2] is _REQUIRED)
                what = f"has no {key}= ({kind} layers need {keys})"
                where.fail(what, f"keys {', '.join(raw) or '(none)'}")
            if default is not None:
                params[key] = (default,) * len(inputs) if per_input else default
            continue
        items = raw[key].split(",") if per_input or parser is not str else [raw[key]]
        if per_input and len(items) != len(inputs):
            what = f"gives {len(items)} value(s) for {key}= but has {len(inputs)} input(s)"
            where.fail(what, f"{key}={raw[key]}, inputs={','.join(inputs)}", key)
        if not per_input and len(items) != 1:
            where.fail(f"takes one value for {key}=", f"{key}={raw[key]}", key)
        try:
            values = tuple(parse_scalar(item, parser) for item in items)
        except ValueError as e:
            where.fail(f"{key}= {e}", f"{key}={raw[key]}", key)
        params[key] = values if per_input else values[0]
    for key, text in raw.items():
        params.setdefault(key, parse_value(text))
    return inputs, params


def _image(shape, channels, source, where, key="channels"):
    """An input as (channels, size, size), checking `channels=` against it."""
    if len(shape) == 1 and channels > 0 and shape[0] % channels == 0:
        # cuda-convnet keeps every activation flat; a square image fits.
        side = math.isqrt(shape[0] // channels)
        if side * side * channels == shape[0]:
            shape = (channels, side, side)
    if len(shape) != 3:
        what = f"reads {source!r} as {channels}-channel square images, which it is not"
        where.fail(what, f"{source} outputs {shape}", key)
    if shape[0] != channels:
        what = f"says channels={channels} for input {source!r}, which has {shape[0]} channels"
        where.fail(what, f"channels={channels}, {source} outputs {shape}", key)
    if shape[1] != shape[2]:
        where.fail("needs square input images", f"{source} outputs {shape}")
    return shape


def _conv(p, inputs, shapes, where, local):
    filters, modules = set(), set()
    kernels = []
    for i, (source, shape) in enumerate(zip(inputs, shapes, strict=True)):
        _, size, _ = _image(shape, p["channels"][i], source, where)
        channels, groups, fsize = p["channels"][i], p["groups"][i], p["filterSize"][i]
        pad, stride = p["padding"][i], p["stride"][i]
        if p["randSparse"][i]:
            what = (
                "uses random sparse connectivity (randSparse), which alexnet-keras does not support"
            )
            where.fail(what, f"randSparse={p['randSparse']}", "randSparse")
        if min(groups, fsize, stride, p["filters"][i]) < 1 or pad < 0:
            what = "needs filters, filterSize, stride, groups >= 1 and padding >= 0"
            where.fail(what, f"input {i}: {p['filters'][i]}, {fsize}, {stride}, {groups}, {pad}")
        if channels % groups:
            what = f"has groups={groups}, which does not divide channels={channels}"
            where.fail(what, f"input {i}: channels={channels}, groups={groups}", "groups")
        if fsize > 2 * pad + size:
            what = f"has filterSize={fsize} larger than its {size}x{size} input plus padding {pad}"
            where.fail(what, f"input {source!r}: {shape}", "filterSize")
        filters.add(p["filters"][i] * groups)  # filters= counts one group
        modules.add(1 + math.ceil((2 * pad + size - fsize) / stride))
        kernels.append(channels // groups * fsize * fsize)
    if len(filters) != 1 or len(modules) != 1:
        what = "has inputs that give differently sized outputs (outputs are summed)"
        where.fail(what, f"filters*groups {sorted(filters)}, output sizes {sorted(modules)}")
    (f,), (m,) = filters, modules
    if local:
        weights = tuple((m * m, k, f) for k in kernels) + ((f * m * m,),)
    else:
        bias = (f,) if p["sharedBiases"] else (f * m * m,)
        weights = tuple((k, f) for k in kernels) + (bias,)
    return (f, m, m), weights


def _pool(p, source, shape, where):
    c, size, _ = _image(shape, p["channels"], source, where)
    if p["pool"] not in POOLS:
        where.fail(f"has pool={p['pool']}, expected one of {', '.join(POOLS)}", p["pool"], "pool")
    if not 1 <= p["sizeX"] <= size or not 1 <= p["stride"] <= p["sizeX"]:
        what = f"needs 1 <= stride <= sizeX <= {size} (its input size)"
        where.fail(what, f"sizeX={p['sizeX']}, stride={p['stride']}, start={p['start']}")
    out = p["outputsX"]
    if out <= 0:
        out = math.ceil((size - p["start"] - p["sizeX"]) / p["stride"]) + 1
    return (c, out, out)


def _norm(kind, p, source, shape, where):
    c, size, _ = _image(shape, p["channels"], source, where)
    top = c if kind == "cmrnorm" else size
    if not 1 <= p["size"] <= top:
        over = "channels" if kind == "cmrnorm" else "input size"
        where.fail(f"needs 1 <= size <= {top} (its {over})", f"size={p['size']}", "size")
    return shape if len(shape) == 3 else (c, size, size)


def output_and_weights(kind, params, inputs, shapes, where, image_shape):
    """What a layer outputs and the weight arrays it stores (cuda-convnet layout).

    Args:
        kind: the layer type.
        params: from `layer_params`.
        inputs: input layer names; `shapes` their output shapes.
        where: as in `layer_params`.
        image_shape: `(channels, size, size)` of the dataIdx=0 data layer.

    Returns:
        `(output_shape, weight_shapes)`: conv gives one
        `(filterChannels*filterSize**2, filters*groups)` matrix per input and
        a bias; local one `(modules, filterChannels*filterSize**2, filters)`
        per input and a `(filters*modules,)` bias; fc one `(in_features_i,
        outputs)` per input and an `(outputs,)` bias; other types `()`.
    """
    for source, shape in zip(inputs, shapes, strict=True):
        if shape == ():
            where.fail(f"reads {source!r}, a cost layer, which has no output", source, "inputs")
    if kind == "data":
        if params["dataIdx"] == 0:
            return image_shape, ()
        if params["dataIdx"] == 1:
            return (1,), ()  # one label index per image
        what = "has a dataIdx alexnet-keras does not know (0: images, 1: labels)"
        where.fail(what, f"dataIdx={params['dataIdx']}", "dataIdx")
    if kind in ("conv", "local"):
        return _conv(params, inputs, shapes, where, local=kind == "local")
    if kind == "fc":
        if params["outputs"] < 1:
            where.fail("needs outputs >= 1", f"outputs={params['outputs']}", "outputs")
        n = params["outputs"]
        return (n,), tuple((math.prod(s), n) for s in shapes) + ((n,),)
    if kind == "pool":
        return _pool(params, inputs[0], shapes[0], where), ()
    if kind in NORM_TYPES:
        return _norm(kind, params, inputs[0], shapes[0], where), ()
    if kind == "hs" and not 0 < params["keep"] <= 1:
        where.fail("needs 0 < keep <= 1", f"keep={params['keep']}", "keep")
    if kind in ("hs", "neuron"):
        return shapes[0], ()
    if kind in ("softmax", "concat"):
        return (sum(math.prod(s) for s in shapes),), ()
    return (), ()  # cost.logreg

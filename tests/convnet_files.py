"""Writes cuda-convnet checkpoints and `batches.meta` byte for byte as Python 2 did.

cuda-convnet saved `{"model_state": ..., "op": OptionsParser}` with Python 2's
`cPickle` at protocol 2 (`docs/formats.md` §2). The opcodes are emitted here
by hand, independently of Python 3's `pickle`, so the reader is tested against
the real format:

- a Python 2 `str` (keys, names, array bytes) is SHORT_BINSTRING/BINSTRING,
  which Python 3 can only read as `latin1`; never the unicode opcodes;
- numpy arrays are `numpy.core.multiarray._reconstruct(ndarray, (0,), 'b')`
  + BUILD `(1, shape, dtype, fortran, raw bytes)`, the bytes in the array's
  own memory order and `fortran` set as numpy's reduce sets it (F- but not
  C-contiguous): fc weights are Fortran, conv arrays C;
- `options.OptionsParser` / `options.Option` are Python 2 old-style
  instances: MARK, GLOBAL, OBJ, then BUILD with their `__dict__`;
- a repeated object (a layer dict inside another layer's `inputLayers`, the
  float32 dtype, the `_reconstruct` global) is a memo GET, as cPickle writes.

cPickle also skips the memo for temporaries it holds the only reference to;
this writer memoizes every memoizable object, which changes memo numbers but
no structure. Readers must not depend on either.
"""

import gzip
import math
import pathlib
import pickle
import struct
import zipfile

import numpy as np

# Protocol-2 opcodes. Python 2's cPickle writes no others.
PY2_OPCODES = frozenset(
    "PROTO STOP MARK POP NONE NEWTRUE NEWFALSE BININT BININT1 BININT2 INT LONG1 BINFLOAT "
    "SHORT_BINSTRING BINSTRING BINUNICODE EMPTY_TUPLE TUPLE1 TUPLE2 TUPLE3 TUPLE EMPTY_LIST "
    "APPEND APPENDS EMPTY_DICT SETITEM SETITEMS GLOBAL REDUCE BUILD OBJ NEWOBJ BINPUT "
    "LONG_BINPUT BINGET LONG_BINGET".split()
)
_BATCH = 1000  # cPickle's APPENDS / SETITEMS batch size


class Global:
    """A class or function named in the pickle, e.g. `Global("options", "StringOptionParser")`."""

    def __init__(self, module, name):
        self.module, self.name = module, name


class Instance:
    """A Python 2 old-style instance: `Instance("options", "Option", {...})`."""

    def __init__(self, module, name, state):
        self.cls, self.state = Global(module, name), state


class Raw:
    """Opcodes written verbatim; they must leave exactly one object on the stack."""

    def __init__(self, data):
        self.data = data


class Py2Pickler:
    """Streams a protocol-2 pickle the way Python 2's cPickle wrote one."""

    def __init__(self, file):
        self.file = file
        self.memo = {}
        self._alive = []  # memo keys use id(); keep the objects alive

    def dump(self, obj):
        self.file.write(b"\x80\x02")
        self.save(obj)
        self.file.write(b".")

    # memo -----------------------------------------------------------------
    def _put(self, key):
        index = len(self.memo)
        self.memo[key] = index
        self.file.write(b"q" + bytes([index]) if index < 256 else b"r" + struct.pack("<I", index))

    def _get(self, key):
        if key not in self.memo:
            return False
        index = self.memo[key]
        self.file.write(b"h" + bytes([index]) if index < 256 else b"j" + struct.pack("<I", index))
        return True

    def _id(self, obj):
        self._alive.append(obj)
        return ("id", id(obj))

    # scalars ----------------------------------------------------------------
    def _int(self, v):
        if 0 <= v < 256:
            self.file.write(b"K" + bytes([v]))
        elif 0 <= v < 65536:
            self.file.write(b"M" + struct.pack("<H", v))
        elif -(2**31) <= v < 2**31:
            self.file.write(b"J" + struct.pack("<i", v))
        else:
            self.file.write(b"I%d\n" % v)  # a Python 2 int beyond 32 bits

    def _str(self, data, memo=True):
        """A Python 2 `str`; equal short strings share a memo entry (Python 2 interned them)."""
        data = data.encode("latin1") if isinstance(data, str) else bytes(data)
        key = ("str", data)
        if memo and self._get(key):
            return
        if len(data) < 256:
            self.file.write(b"U" + bytes([len(data)]) + data)
        else:
            self.file.write(b"T" + struct.pack("<i", len(data)) + data)
        self._put(key if memo else ("data", len(self.memo)))

    def _global(self, g):
        key = ("global", g.module, g.name)
        if not self._get(key):
            self.file.write(b"c" + f"{g.module}\n{g.name}\n".encode("ascii"))
            self._put(key)

    # containers ---------------------------------------------------------------
    def _tuple(self, items):
        if not items:
            self.file.write(b")")
            return
        if len(items) > 3:
            self.file.write(b"(")
        for item in items:
            self.save(item)
        self.file.write(b"t" if len(items) > 3 else bytes([0x84 + len(items)]))
        self._put(("tuple", len(self.memo)))

    def _batched(self, items, one, many):
        for start in range(0, len(items), _BATCH):
            batch = items[start : start + _BATCH]
            if len(batch) > 1:
                self.file.write(b"(")
            for item in batch:
                for part in item:
                    self.save(part)
            self.file.write(many if len(batch) > 1 else one)

    def _list(self, obj):
        key = self._id(obj)
        if self._get(key):
            return
        self.file.write(b"]")
        self._put(key)
        self._batched([(x,) for x in obj], b"a", b"e")

    def _dict(self, obj):
        key = self._id(obj)
        if self._get(key):
            return
        self.file.write(b"}")
        self._put(key)
        self._batched(list(obj.items()), b"s", b"u")

    # numpy ------------------------------------------------------------------------
    def _dtype(self, dt):
        key = ("dtype", dt.str)
        if self._get(key):  # numpy's built-in descrs are singletons: cPickle memoizes them
            return
        self._global(Global("numpy", "dtype"))
        self._tuple([dt.str[1:], 0, 1])
        self.file.write(b"R")
        self._put(key)
        order = "|" if dt.itemsize == 1 else "<"
        self._tuple([3, order, None, None, None, -1, -1, 0])
        self.file.write(b"b")

    def _array(self, a):
        key = self._id(a)
        if self._get(key):  # the same array twice (cuda-convnet's weightSource sharing)
            return
        if a.dtype.kind not in "biuf" or a.dtype.byteorder == ">":
            raise TypeError(f"only little-endian numeric arrays, not {a.dtype}")
        self._global(Global("numpy.core.multiarray", "_reconstruct"))
        self._global(Global("numpy", "ndarray"))
        self._tuple([0])
        self._str("b")
        self.file.write(b"\x87")  # TUPLE3 (ndarray, (0,), 'b')
        self._put(("tuple", len(self.memo)))
        self.file.write(b"R")
        self._put(key)
        # numpy's PyArray_ISFORTRAN: F-contiguous and not C-contiguous.
        fortran = a.flags.f_contiguous and not a.flags.c_contiguous
        self.file.write(b"(")
        self._int(1)
        self._tuple(list(a.shape))
        self._dtype(a.dtype)
        self.file.write(b"\x88" if fortran else b"\x89")
        raw = a.T if fortran else np.ascontiguousarray(a)  # the bytes in memory order
        raw = np.ascontiguousarray(raw)
        self.file.write(b"T" + struct.pack("<i", raw.nbytes))
        self.file.write(memoryview(raw.reshape(-1)).cast("B"))
        self._put(("data", len(self.memo)))
        self.file.write(b"t")
        self._put(("tuple", len(self.memo)))
        self.file.write(b"b")

    def _instance(self, obj):
        key = self._id(obj)
        if self._get(key):
            return
        self.file.write(b"(")
        self._global(obj.cls)
        self.file.write(b"o")  # OBJ: old-style instance, no __init__ call
        self._put(key)
        self.save(obj.state)
        self.file.write(b"b")

    def save(self, obj):
        if obj is None:
            self.file.write(b"N")
        elif isinstance(obj, bool):
            self.file.write(b"\x88" if obj else b"\x89")
        elif isinstance(obj, int):
            self._int(obj)
        elif isinstance(obj, float):
            self.file.write(b"G" + struct.pack(">d", obj))
        elif isinstance(obj, (str, bytes)):
            self._str(obj)
        elif isinstance(obj, tuple):
            self._tuple(list(obj))
        elif isinstance(obj, list):
            self._list(obj)
        elif isinstance(obj, dict):
            self._dict(obj)
        elif isinstance(obj, np.ndarray):
            self._array(obj)
        elif isinstance(obj, Instance):
            self._instance(obj)
        elif isinstance(obj, Global):
            self._global(obj)
        elif isinstance(obj, Raw):
            self.file.write(obj.data)
        else:
            raise TypeError(f"cannot write {type(obj).__name__}")


def py2_dumps(obj):
    """The bytes of `cPickle.dumps(obj, 2)` for `obj` built from this module's types."""
    import io

    out = io.BytesIO()
    Py2Pickler(out).dump(obj)
    return out.getvalue()


# ----------------------------------------------------------------------------
# Options, layers, checkpoints.

DEFAULT_OPTIONS = {
    "load_file": "",
    "train_batch_range": list(range(0, 3)),
    "test_batch_range": [3],
    "dp_type": "imagenet",
    "testing_freq": 50,
    "num_epochs": 90,
    "data_path": "/storage/imagenet/batches",
    "save_path": "/storage/checkpoints",
    "max_filesize_mb": 0,
    "num_gpus": 2,
    "test_only": 0,
    "zip_save": 0,
    "gpu": [0, 1],
    "minibatch_size": 128,
    "layer_def": "./layers/layers-145.cfg",
    "layer_params": "./layers/layer-params-145.cfg",
    "crop_border": 16,
    "color_noise": 0.0,
    "multiview_test": 0,
    "logreg_name": "logprob",
    "conserve_mem": 0,
}


def _parser(name, value):
    if name.endswith("_batch_range"):
        return Global("options", "RangeOptionParser")
    if isinstance(value, list):
        return Instance(
            "options",
            "ListOptionParser",
            {"parsers": Global("options", "IntegerOptionParser"), "sepchar": ","},
        )
    kind = {bool: "Boolean", int: "Integer", float: "Float"}.get(type(value), "String")
    return Global("options", f"{kind}OptionParser")


def options_parser(options):
    """An `options.OptionsParser` instance holding one `options.Option` per item."""
    state = {}
    for name, value in options.items():
        letter = name.replace("_", "-")
        state[name] = Instance(
            "options",
            "Option",
            {
                "letter": letter,
                "name": name,
                "desc": name.replace("_", " ").capitalize(),
                "parser": _parser(name, value),
                "set_once": name in ("layer_def", "crop_border"),
                "default": value,
                "excuses": [],
                "requires": [],
                "save": True,
                "value": value,
                "value_given": True,
                "prefixed_letter": ("--" if len(letter) > 1 else "-") + letter,
            },
        )
    return Instance("options", "OptionsParser", {"options": state})


def _with_input_layers(layers, layers_as):
    """Copies of the layer dicts, `inputLayers` pointing at the copies (shared references)."""
    out = {name: dict(layer) for name, layer in layers.items()}
    order = list(out)
    for layer in out.values():
        if "inputs" in layer:
            names = list(layer["inputs"])
            layer["inputLayers"] = [out[x] for x in names]
            if layers_as == "list":
                layer["inputs"] = [order.index(x) for x in names]
    return out if layers_as == "dict" else [out[name] for name in order]


def checkpoint_object(
    layers,
    *,
    epoch=1,
    batchnum=1,
    layers_as="dict",
    options=None,
    train_outputs=None,
    test_outputs=None,
):
    """The dict cuda-convnet pickles: `{"model_state": ..., "op": OptionsParser}`."""
    if layers_as not in ("dict", "list"):
        raise ValueError(f"layers_as must be 'dict' or 'list'. Received: {layers_as!r}")
    costs = ({"logprob": [2.3, 0.9, 0.7]}, 128)
    state = {
        "layers": _with_input_layers(layers, layers_as),
        "train_outputs": [costs] if train_outputs is None else train_outputs,
        "test_outputs": [costs] if test_outputs is None else test_outputs,
        "epoch": epoch,
        "batchnum": batchnum,
    }
    top = {"model_state": state}
    if options is not False:
        top["op"] = options_parser(DEFAULT_OPTIONS if options is None else options)
    return top


def write_pickle(path, obj, container="plain", compresslevel=1):
    """Writes `obj` as Python 2 would: plain, a zip with member `data`, or gzip."""
    path = pathlib.Path(path)
    if container == "plain":
        with open(path, "wb") as f:
            Py2Pickler(f).dump(obj)
    elif container == "zip":
        method = zipfile.ZIP_DEFLATED
        with zipfile.ZipFile(path, "w", method, compresslevel=compresslevel) as archive:
            with archive.open("data", "w", force_zip64=True) as f:
                Py2Pickler(f).dump(obj)
    elif container == "gzip":
        with gzip.open(path, "wb", compresslevel=compresslevel) as f:
            Py2Pickler(f).dump(obj)
    else:
        raise ValueError(f"container must be plain, zip or gzip. Received: {container!r}")
    return path


def write_checkpoint(
    path,
    layers,
    *,
    epoch=1,
    batchnum=1,
    container="plain",
    layers_as="dict",
    options=None,
    compresslevel=1,
    **state,
):
    """Writes a checkpoint in cuda-convnet's format.

    Args:
        path: the file; for `container="dir"`, the checkpoint directory, in
            which the file `f"{epoch}.{batchnum}"` is written (plain).
        layers: `{name: layer dict}` in topological order (`layers_from_net`).
            `inputLayers` is added as references to the other layer dicts.
        container: "plain", "zip" (member `data`), "gzip" or "dir".
        layers_as: "dict" (CHM) or "list" (cuda-convnet 1, integer `inputs`).
        options: `{name: value}` for `op`; None for `DEFAULT_OPTIONS`, False
            for no `op` at all.
        state: `train_outputs`, `test_outputs`.

    Returns:
        The file written.
    """
    obj = checkpoint_object(
        layers, epoch=epoch, batchnum=batchnum, layers_as=layers_as, options=options, **state
    )
    path = pathlib.Path(path)
    if container == "dir":
        path.mkdir(parents=True, exist_ok=True)
        return write_pickle(path / f"{epoch}.{batchnum}", obj)
    return write_pickle(path, obj, container, compresslevel)


def write_batches_meta(path, mean_chw, label_names, **extra):
    """A cuda-convnet `batches.meta`: `data_mean` as a CHW-flattened `(N, 1)` float32 column."""
    mean_chw = np.asarray(mean_chw, np.float32)
    meta = {
        "data_mean": mean_chw.reshape(-1, 1),
        "label_names": list(label_names),
        "num_vis": mean_chw.size,
        "num_cases_per_batch": 10000,
        **extra,
    }
    return write_pickle(path, meta)


# ----------------------------------------------------------------------------
# Layer dicts from a chm_cfg.ChmNet, with the keys layer.py stores.

_NORM_DEFAULTS = {  # layer-params-145 values, for nets read without a params file
    "cmrnorm": {"scale": 1e-4, "pow": 0.75, "minDiv": 2.0},
    "rnorm": {"scale": 1e-3, "pow": 0.75, "minDiv": 1.0},
    "cnorm": {"scale": 1e-3, "pow": 0.75, "minDiv": 1.0},
}


def _neuron(text):
    base, _, rest = text.partition("[")
    values = [float(v) for v in rest.rstrip("]").split(",")] if rest else []
    params = dict(zip("ab", values, strict=False))
    return {"type": base, "params": params, "usesActs": base != "ident", "usesInputs": False}


def _common(layer, outputs):
    return {
        "name": layer.name,
        "type": layer.type,
        "outputs": outputs,
        "gpu": layer.params.get("gpu", 0),
        "requiresParams": layer.type in ("conv", "local", "fc", "hs"),
        "usesActs": True,
        "usesInputs": True,
        "forceOwnActs": True,
        "gradConsumer": layer.type in ("conv", "local", "fc"),
        "actsTarget": -1,
        "actsGradTarget": -1,
        "conserveMem": 0,
        "quantF": {"type": "default", "params": {}},
        "quantB": {"type": "default", "params": {}},
    }


def _weight_keys(layer, config, n):
    cfg = (config or {}).get("layers", {}).get(layer.name, {})
    sched = {"type": "default", "params": {}}
    return {
        "initW": list(layer.params.get("initW", (0.01,) * n)),
        "initB": float(layer.params.get("initB", 0.0)),
        "initWFunc": "",
        "initBFunc": "",
        "epsW": list(cfg.get("epsW", (0.001,) * n)),
        "epsB": cfg.get("epsB", 0.002),
        "momW": list(cfg.get("momW", (0.9,) * n)),
        "momB": cfg.get("momB", 0.9),
        "wc": list(cfg.get("wc", (0.0,) * n)),
        "wball": list(cfg.get("wball", (0.0,) * n)),
        "superEps": 0.0,
        "superMom": 0.0,
        "schedW": dict(sched),
        "schedB": dict(sched),
        "weightSource": [""] * n,
        "weightSourceLayers": [""] * n,
        "weightSourceMatrixIndices": [-1] * n,
        "wcNormMin": [0.0] * n,
        "wcNormMax": [0.0] * n,
    }


def _random(rng, shape, std, order="C"):
    a = rng.standard_normal(shape, dtype=np.float32)
    a *= np.float32(std)
    return np.asfortranarray(a) if order == "F" else a


def _conv(layer, shapes, rng, config, with_inc, local):
    p, n = layer.params, len(layer.inputs)
    d = _weight_keys(layer, config, n)
    filters = layer.output_shape[0]  # already x groups, as layer.py stores it
    modules_x = layer.output_shape[1]
    channels, sizes = list(p["channels"]), list(p["filterSize"])
    groups = list(p["groups"])
    d.update(
        channels=channels,
        padding=[-x for x in p["padding"]],  # layer.py stores -padding
        stride=list(p["stride"]),
        filterSize=sizes,
        groups=groups,
        randSparse=list(p["randSparse"]),
        filterChannels=[c // g for c, g in zip(channels, groups, strict=True)],
        filterPixels=[s * s for s in sizes],
        imgSize=[s[1] for s in shapes],
        imgPixels=[s[1] * s[2] for s in shapes],
        filters=filters,
        modulesX=modules_x,
        modules=modules_x * modules_x,
        partialSum=p.get("partialSum", 0),
        sharedBiases=p.get("sharedBiases", True),
        neuron="",
    )
    d["weightsPerFilter"] = [
        c * s for c, s in zip(d["filterChannels"], d["filterPixels"], strict=True)
    ]
    d["filterConns"] = [[] for _ in range(n)]
    d["overSample"] = [1] * n
    weights = []
    for i, shape in enumerate(layer.weight_shapes[:-1]):
        if local:  # the file keeps (modules*filterChannels*filterPixels, filters)
            shape = (shape[0] * shape[1], shape[2])
        weights.append(_random(rng, shape, d["initW"][i]))
    bias_rows = layer.weight_shapes[-1][0]
    d["weights"], d["biases"] = weights, _random(rng, (bias_rows, 1), 0.1)
    if with_inc:
        d["weightsInc"] = [np.zeros_like(w) for w in weights]
        d["biasesInc"] = np.zeros_like(d["biases"])
    return d


def _fc(layer, rng, config, with_inc):
    n = len(layer.inputs)
    d = _weight_keys(layer, config, n)
    outputs = layer.params["outputs"]
    d["weightsPerFilter"] = [s[0] for s in layer.weight_shapes[:-1]]
    d["neuron"] = ""
    # layer.py: make_weights(..., order='F'), make_biases(1, outputs, order='F')
    weights = [_random(rng, s, d["initW"][i], "F") for i, s in enumerate(layer.weight_shapes[:-1])]
    d["weights"], d["biases"] = weights, _random(rng, (1, outputs), 0.1, "F")
    if with_inc:
        d["weightsInc"] = [np.zeros_like(w, order="F") for w in weights]
        d["biasesInc"] = np.zeros_like(d["biases"], order="F")
    return d


def _other(layer, shapes, config):
    p, shape = layer.params, shapes[0] if shapes else ()
    cfg = (config or {}).get("layers", {}).get(layer.name, {})
    if layer.type == "data":
        return {"dataIdx": p["dataIdx"]}
    if layer.type == "pool":
        return {
            "channels": p["channels"],
            "sizeX": p["sizeX"],
            "start": p["start"],
            "stride": p["stride"],
            "outputsX": layer.output_shape[1],
            "pool": p["pool"],
            "imgSize": shape[1],
            "imgPixels": shape[1] * shape[2],
            "neuron": "",
        }
    if layer.type in _NORM_DEFAULTS:
        values = {**_NORM_DEFAULTS[layer.type], **cfg}
        per_term = p["size"] if layer.type == "cmrnorm" else p["size"] ** 2
        d = {
            "channels": p["channels"],
            "size": p["size"],
            "scale": values["scale"] / per_term,  # layer.py stores scale/size (or /size**2)
            "pow": values["pow"],
            "imgSize": shape[1],
            "imgPixels": shape[1] * shape[2],
        }
        if layer.type == "cmrnorm":
            d.update(minDiv=values["minDiv"], blocked=False)
        return d
    if layer.type == "neuron":
        return {"neuron": _neuron(p["neuron"]), "src_layer": p["source"]}
    if layer.type == "hs":
        return {"keep": p["keep"], "enable": cfg.get("enable", True)}
    if layer.type == "cost.logreg":
        return {"coeff": cfg.get("coeff", 1.0), "topk": cfg.get("topk", 1)}
    return {}


def layers_from_net(net, *, seed=0, with_inc=False):
    """Layer dicts for every layer of a `chm_cfg.ChmNet`, as cuda-convnet's layer.py stores them.

    Weights are seeded float32 normals of the net's `weight_shapes` (conv C
    order, fc Fortran order, biases `(F, 1)` / `(1, out)`); `padding` is
    negated, `filters` is the total over groups, norm `scale` is divided by
    the size. With `with_inc`, the `...Inc` momentum buffers (zeros) are
    added, which doubles the size. Deterministic for a given `seed`.
    """
    rng = np.random.default_rng(seed)
    config, shapes, layers = net.config, {}, {}
    for layer in net.layers:
        shapes[layer.name] = layer.output_shape
        in_shapes = [shapes[x] for x in layer.inputs]
        outputs = math.prod(layer.output_shape) if layer.output_shape else 0
        d = _common(layer, outputs)
        if layer.inputs:
            d["inputs"] = list(layer.inputs)
            d["numInputs"] = [math.prod(s) for s in in_shapes]
        if layer.type in ("conv", "local"):
            d.update(_conv(layer, in_shapes, rng, config, with_inc, layer.type == "local"))
        elif layer.type == "fc":
            d.update(_fc(layer, rng, config, with_inc))
        else:
            d.update(_other(layer, in_shapes, config))
        layers[layer.name] = d
    # After detaching, the source layer keeps its neuron= string (formats.md §2.3).
    for layer in net.layers:
        if layer.type == "neuron" and layer.params.get("source") in layers:
            layers[layer.params["source"]]["neuron"] = layer.params["neuron"]
    return layers


# ----------------------------------------------------------------------------
# A permissive Python 3 reader, to check the writer against the real `pickle`.


class _Py3Option:
    def __setstate__(self, state):
        self.__dict__.update(state)


_PY3_STUBS = {}


class PermissiveUnpickler(pickle.Unpickler):
    """`pickle.Unpickler` with `options.*` mapped to plain classes; everything else as usual.

    Not safe: it resolves any global. Only for files these tests wrote.
    """

    def find_class(self, module, name):
        if module == "options":
            if name not in _PY3_STUBS:
                _PY3_STUBS[name] = type(name, (_Py3Option,), {})
            return _PY3_STUBS[name]
        if module.startswith("numpy.core"):  # numpy 2 warns on the old name
            module = "numpy._core" + module[len("numpy.core") :]
        return super().find_class(module, name)


def permissive_loads(data):
    import io

    return PermissiveUnpickler(io.BytesIO(data), encoding="latin1").load()

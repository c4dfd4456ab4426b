"""cuda-convnet "parameter files" of the CHM AlexNet release: parsed, checked, summarised.

Alex Krizhevsky's 2012 code describes a net in two INI-like files: a layer
definition file (`layers-145.cfg`: `[name]` sections with `type=`, `inputs=`
and the shape hyper-parameters) and a layer parameter file
(`layer-params-145.cfg`: learning rates, weight decay, normalisation
constants). `read_net` turns a definition file into a `ChmNet`: the layers in
topological order with cuda-convnet's own output sizes (ceil mode), weight
shapes and parameter counts, and `neuron=` keys detached into `<name>_neuron`
layers as `layer.py` does (`docs/formats.md` §1.2-1.3). `training_config`
reads a parameter file against its definition file. Layer types alexnet-keras
cannot build (blur, nailbed, treefc, ...) are refused by name, and every
error names the file, the line and the layer. No Keras is imported.
`cfg_summary.summary` prints a net as a table.
"""

import dataclasses
import math
import pathlib

from alexnet_keras.cuda_convnet import cfg_rules as rules
from alexnet_keras.cuda_convnet.cfg_params import read_training_config
from alexnet_keras.cuda_convnet.cfg_text import CfgText, Where, read_cfg
from alexnet_keras.cuda_convnet.era import decide as decide_era

__all__ = ["ChmNet", "Layer", "parse_cfg", "read_net", "training_config"]

DEF_FILE = "a cuda-convnet layer definition file"
PARAMS_FILE = "a cuda-convnet layer parameter file"


@dataclasses.dataclass(frozen=True)
class Layer:
    """One layer of a `ChmNet`.

    Attributes:
        name: the section name; a detached neuron is `f"{source}_neuron"`.
        type: the cfg type (`conv`, `pool`, `neuron`, ...).
        inputs: input layer names, after neuron detachment rewired them.
        params: the def file's keys parsed (`chm_layers.SPECS`), defaults
            filled in; keys with one value per input are tuples (`filters`,
            `channels`, `padding` as written, not negated, ...). The `neuron`
            key moves to the detached layer, whose params are `{"neuron":
            "relu", "source": name}`. `gpu` is inherited from the first
            input when not written, as cuda-convnet does.
        output_shape: `(channels, height, width)`, `(features,)`, or `()`
            for cost layers; labels are `(1,)`.
        weight_shapes: cuda-convnet's arrays (`chm_layers.output_and_weights`).
        param_count: the number of values in those arrays.
    """

    name: str
    type: str
    inputs: tuple
    params: dict
    output_shape: tuple
    weight_shapes: tuple = ()
    param_count: int = 0


@dataclasses.dataclass(frozen=True)
class ChmNet:
    """A cuda-convnet net read from its layer definition file.

    Attributes:
        layers: `Layer`s in topological order, file order where free; a
            detached neuron layer follows its source.
        source: the def file read.
        image_size: the side of the square images of the dataIdx=0 layer.
        config: `training_config` of the params file given to `read_net`.
        comments: the def file's comment lines, e.g. its stated error rate.
        notes: how the image size was chosen and old syntax was read.
        texts: the def and params files' texts as parsed (None without a
            params file); a weights file stores them without reading again.
        semantics: `"2011"` or `"2012"`, the cuda-convnet the net computes
            with (`era.decide`): what an average pool divides by.
    """

    layers: tuple
    source: str
    image_size: int
    config: dict | None = None
    comments: tuple = ()
    notes: tuple = ()
    texts: tuple = ()
    semantics: str = "2012"

    @property
    def pool_divisor(self):
        """`ConvnetPool2D`'s `divisor` for this net's era."""
        return "window" if self.semantics == "2011" else "clipped"

    @property
    def image_shape(self):
        """`(C, H, W)` of the images: the output of the dataIdx=0 data layer."""
        return next(x.output_shape for x in self.layers
                    if x.type == "data" and x.params["dataIdx"] == 0)  # fmt: skip

    def layer(self, name):
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"{self.source}: no layer {name!r}")

    @property
    def names(self):
        return tuple(layer.name for layer in self.layers)

    @property
    def param_count(self):
        return sum(layer.param_count for layer in self.layers)

    def consumers(self, name):
        """Names of the layers reading `name`, in order."""
        return tuple(layer.name for layer in self.layers if name in layer.inputs)


def parse_cfg(path):
    """Reads a cuda-convnet `.cfg` file into `{section: {key: raw value}}`, in file order.

    Comments (`#` or `;` lines, and a trailing ` # ...`) and blank lines are
    dropped; values stay strings.

    Example:

    >>> cfg = parse_cfg("../shared/data/chm-release/layers/layers-145.cfg")
    >>> cfg["conv3a"]["inputs"], cfg["conv3a"]["filters"]
    ('pool2a,pool2b', '192,192')

    Raises:
        ValueError: a missing or empty file, a file without sections, a
            duplicate section or key, a line that is not `[section]` or
            `key=value`; the message names the file and line.
    """
    cfg = read_cfg(path, "a cuda-convnet .cfg file")
    return {name: dict(keys) for name, keys in cfg.sections.items()}


def _layer_type(raw, where):
    kind = raw.get("type")
    if kind is None:
        where.fail("has no type= key", f"keys {', '.join(raw) or '(none)'}")
    if kind not in rules.SUPPORTED_TYPES:
        known = "alexnet-keras does not support" if kind in rules.CHM_TYPES else "is not known"
        where.fail(
            f"has type {kind!r}, which {known} (supported: {', '.join(rules.SUPPORTED_TYPES)})",
            f"type={kind}",
            "type",
        )
    return kind


@dataclasses.dataclass
class _Node:
    name: str
    type: str
    inputs: tuple
    params: dict
    where: Where
    order: float


def _detach_neurons(nodes):
    """A `neuron=` key becomes its own layer after the source; consumers read it instead."""
    for node in list(nodes.values()):
        text = node.params.pop("neuron", None) if node.type != "neuron" else None
        if node.type.startswith("cost.") or not text:
            continue  # CHM drops a cost layer's neuron= too
        if rules.parse_neuron(text) is None:
            supported = ", ".join(f"{n}[a,b]" if 2 in a else n for n, a in rules.NEURONS.items())
            node.where.fail(
                f"has neuron={text}, which alexnet-keras does not support (supported: {supported})",
                f"neuron={text}",
                "neuron",
            )
        name, i = f"{node.name}_neuron", 0
        while name in nodes:  # CHM's get_unused_layer_name
            i += 1
            name = f"{node.name}_neuron.{i}"
        for other in nodes.values():
            other.inputs = tuple(name if x == node.name else x for x in other.inputs)
        params = {"neuron": text, "source": node.name}
        where = Where(node.where.path, name, node.where.lines)
        nodes[name] = _Node(name, "neuron", (node.name,), params, where, node.order + 0.5)
    for node in nodes.values():
        if node.type == "neuron" and rules.parse_neuron(node.params["neuron"]) is None:
            node.where.fail(
                "has an unsupported neuron type", f"neuron={node.params['neuron']}", "neuron"
            )


def _topological(nodes):
    """File order, except that a layer waits for its inputs; a cycle is an error."""
    pending, done, ordered = sorted(nodes.values(), key=lambda n: n.order), set(), []
    while pending:
        ready = next((n for n in pending if set(n.inputs) <= done), None)
        if ready is None:
            names, node = [], pending[0]
            while node.name not in names:
                names.append(node.name)
                node = nodes[next(x for x in node.inputs if x not in done)]
            cycle = names[names.index(node.name) :] + [node.name]
            node.where.fail(
                "is in a cycle of inputs",
                " reads ".join(repr(x) for x in cycle),
                "inputs",
            )
        pending.remove(ready)
        done.add(ready.name)
        ordered.append(ready)
    return ordered


def _default_image_size(source, path, nodes):
    """224 for the ImageNet nets, 24 for CIFAR nets with `local` layers, else 32 (CIFAR): only
    the data provider knew the size."""
    on_disk = not isinstance(source, CfgText)  # a stored text has no folder to go by
    if on_disk and pathlib.Path(path).resolve().parent.name == "layers":
        return 224, "image size 224: the def file is in a layers/ folder (the ImageNet nets)"
    images = {n.name for n in nodes.values() if n.type == "data" and n.params["dataIdx"] == 0}
    for node in nodes.values():
        sizes = node.params.get("filterSize", ())
        if node.type in ("conv", "local") and set(node.inputs) & images and max(sizes) >= 11:
            return (
                224,
                f"image size 224: {node.name!r} reads the images with {max(sizes)}-pixel filters",
            )
    local = next((n.name for n in nodes.values() if n.type == "local"), None)
    if local:  # Methodology.wiki l.11: the conv-local nets train on 24x24 crops of CIFAR-10
        return 24, (
            f"image size 24: {local!r} is a local layer, and cuda-convnet's conv-local CIFAR nets "
            "read 24x24 crops of the 32x32 images (its cropped provider, --crop-border 4)"
        )
    return 32, "image size 32 (CIFAR): no layers/ folder and no 11-pixel filters on the images"


def read_net(layers_path, params_path=None, *, image_size=None, image_channels=3,
             semantics=None):  # fmt: skip
    """Reads a cuda-convnet layer definition file into a `ChmNet`.

    Args:
        layers_path: a `layers-*.cfg` file, or its text as a `cfg_text.CfgText`.
        params_path: its `layer-params-*.cfg` (or a `CfgText`); if given, read strictly
            against the def file and kept as `net.config`. For the few real
            files that need loose reading, call `training_config(...,
            strict=False)` and pass the result to `summary`.
        image_size: the side of the input images. The def file does not
            state it; by default it is 224 when the file is in a `layers/`
            folder or a conv on the images has filters of 11 pixels or more
            (the ImageNet nets), 24 when it has `local` layers (the conv-local
            nets, trained on 24x24 crops), else 32 (CIFAR-10). `net.notes` says which.
        image_channels: channels of the dataIdx=0 data layer.
        semantics: `"2011"` or `"2012"`, the cuda-convnet era whose average
            pool divisor the net uses; by default decided from the file
            (`era.decide`: 2011 for cuda-convnet 1 syntax and r331-r333's
            files, else 2012), and said in `net.notes`.

    Returns:
        A `ChmNet`.

    Example:

    >>> net = read_net("../shared/data/chm-release/layers/layers-145.cfg")
    >>> net.param_count, net.layer("conv1a").output_shape, net.layer("pool3a").output_shape
    (60965224, (48, 55, 55), (128, 6, 6))
    >>> net.layer("conv2a").inputs, net.consumers("conv2a")
    (('pool1a_neuron',), ('conv2a_neuron',))

    Raises:
        ValueError: one line naming the file, line and layer: an unsupported
            layer or neuron type, a missing key, a value that is not a
            number, an unknown input, a cycle, a `channels=` that differs
            from the input's channels, groups that do not divide channels,
            a per-input list whose length is not the number of inputs, and
            everything `parse_cfg` refuses.
    """
    cfg = read_cfg(layers_path, DEF_FILE)
    wheres = {name: Where(cfg.path, name, cfg.lines[name]) for name in cfg.sections}
    kinds = {name: _layer_type(raw, wheres[name]) for name, raw in cfg.sections.items()}
    nodes, notes, old_syntax = {}, [], []
    for order, (name, raw) in enumerate(cfg.sections.items()):
        inputs, params = rules.layer_params(kinds[name], raw, wheres[name])
        if kinds[name] in ("rnorm", "cnorm") and "sizeX" in raw:
            notes.append(f"{name}: cuda-convnet 1 syntax, sizeX= read as size=")
            old_syntax.append(name)
        nodes[name] = _Node(name, kinds[name], inputs, params, wheres[name], order)
    for node in nodes.values():
        for source in node.inputs:
            if source not in nodes:
                received = f"inputs={','.join(node.inputs)}"
                node.where.fail(f"reads an unknown layer {source!r}", received, "inputs")
    _detach_neurons(nodes)
    ordered = _topological(nodes)
    if image_size is None:
        image_size, why = _default_image_size(layers_path, cfg.path, nodes)
    elif isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"{cfg.path}: image_size must be a positive int. Received: {image_size!r}")
    else:
        why = f"image size {image_size} (given)"
    image_shape = (image_channels, image_size, image_size)
    layers, shapes, gpus = [], {}, {}
    for node in ordered:
        params = dict(node.params)
        if "gpu" not in params and node.inputs and gpus.get(node.inputs[0]) is not None:
            params["gpu"] = gpus[node.inputs[0]]
        gpus[node.name] = params.get("gpu")
        in_shapes = [shapes[x] for x in node.inputs]
        out, weights = rules.output_and_weights(
            node.type, params, node.inputs, in_shapes, node.where, image_shape
        )
        shapes[node.name] = out
        count = sum(math.prod(w) for w in weights)
        layers.append(Layer(node.name, node.type, node.inputs, params, out, weights, count))
    config, texts = None, (cfg.text, None)
    if params_path is not None:  # against the def file already read: each file is read once
        params_cfg = read_cfg(params_path, PARAMS_FILE)
        config, texts = read_training_config(cfg, params_cfg, True), (cfg.text, params_cfg.text)
    comments = tuple(text for _, text in cfg.comments)
    era, era_why = decide_era(cfg.text, old_syntax, semantics)
    if any(x.type == "cnorm" or x.params.get("pool") == "avg" for x in layers):
        notes.append(era_why)  # only window means (avg pools, cnorm) tell the eras apart
    return ChmNet(tuple(layers), str(cfg.path), image_size, config, comments, (why, *notes), texts,
                  era)  # fmt: skip


def training_config(layers_path, params_path, *, strict=True):
    """Reads a layer parameter file against its layer definition file.

    The def file is only read, not built, so this works for nets that
    `read_net` refuses too. Every section must name a def-file layer. Weight
    layers (conv, local, fc, treefc) get `epsW`, `momW`, `wc`, `wball` (one
    per input; `wc`/`wball` default to zeros as in cuda-convnet), `epsB`,
    `momB`, and `schedW`/`schedB` as `{"name", "args", "kwargs", "text"}`
    (default `"default"`; checked by `lr_schedule.read`, an older `sched=`
    sets both). A required value the file lacks (`epsW`, `epsB`,
    `momW`, `momB`, a cost's `coeff`, `hs`'s `enable`, a norm's
    `scale`/`pow`) is None: the caller decides. Norm layers get `size`,
    `scale`, `pow`, `minDiv` (default 1.0; always 1.0 for rnorm/cnorm, whose
    CHM kernel takes none) and `coefficient`, the per-term factor the kernel
    uses: scale/size for cmrnorm, scale/size**2 for rnorm and cnorm. Old
    cuda-convnet 1 files (scale/pow in the def file) are read too. Other keys
    are kept, parsed by `chm_layers.parse_value`.

    Args:
        layers_path: the `layers-*.cfg` file the params file belongs to.
        params_path: a `layer-params-*.cfg` file.
        strict: refuse a repeated section or key and a section for a layer
            the def file lacks. With False, read as CHM's Python 2
            ConfigParser did (a later section or key merges into or replaces
            an earlier one; extra sections are ignored) and say so in
            `notes`. Some real files need this (154 and 170-quant repeat
            sections; 115-jpeg and 117 have sections for layers their def
            file lacks).

    Returns:
        `{"source", "def_file", "layers": {name: {"type", ...}} in def-file
        order, "header": the comment lines above the first section,
        "comments", "results": (nll, top-1, top-5) from `logprob:` comment
        lines, "epochs": (epoch, note) from `epoch N:` comments, "notes"}`.

    Example:

    >>> cfg = training_config("../shared/data/chm-release/layers/layers-145.cfg",
    ...                       "../shared/data/chm-release/layers/layer-params-145.cfg")
    >>> cfg["layers"]["conv3a"]["epsW"], cfg["layers"]["rnorm1a"]["coefficient"]
    ((1e-05, 1e-05), 2e-05)
    >>> cfg["results"][0]
    (1.741473, 0.40664, 0.1821)

    Raises:
        ValueError: naming the file, line and layer: a value that is not a
            number, a per-input list whose length is not the layer's number
            of inputs, a schedule CHM would not build, and (if `strict`) a
            section for a layer the def file lacks or a repeated section or
            key.
    """
    defs = read_cfg(layers_path, DEF_FILE)
    return read_training_config(defs, read_cfg(params_path, PARAMS_FILE, not strict), strict)

"""A Keras functional model that mirrors a CHM cuda-convnet cfg net, layer for layer.

`build_model(net)` takes a `converters.chm_cfg.ChmNet` (`read_net(layers.cfg,
layer-params.cfg)`) and builds one Keras layer per cfg layer, with the cfg's
names: the two-GPU towers stay parallel branches (`conv1a`, `conv1b`, ...),
detached neurons are their own `<name>_neuron` layers, and a layer with
several inputs is a `Concatenate` (`<name>_inputs`) feeding one layer whose
weight stacks the per-input matrices in `inputs=` order. Images are NHWC;
sizes follow cuda-convnet (ceil mode, implicit bottom/right zeros; pools
clip their windows, and an average divides by the full or the clipped window
as the net's era says, `net.semantics`). The softmax fed to the
`cost.logreg` layer is the output.

Semantics that differ from stock Keras are in `convnet_layers` (pooling,
neurons, non-inverted `hs` dropout). Norm constants come from the
parameter file: `cmrnorm` is `LocalResponseNormalization(size, scale, pow,
minDiv)`, `rnorm` is `SpatialResponseNormalization(size, scale, pow)`, both
dividing `scale` as cuda-convnet does.

`local` is `ConvnetLocal2D` and `cnorm` `ContrastNormalization(size,
scale, pow)` (`local_layers`); the cnorm mean divides as the net's era
(`net.semantics` "2011": by `size**2`; "2012": by the clipped window).

Not built (refused by name): unshared conv biases, `maxabs`/`rand` pooling,
multi-input layers whose per-input geometry differs.
"""

import keras

from alexnet_keras.cuda_convnet.cfg_rules import parse_neuron
from alexnet_keras.cuda_convnet.layers import ConvnetDropout, ConvnetNeuron, ConvnetPool2D
from alexnet_keras.cuda_convnet.local_layers import ContrastNormalization, ConvnetLocal2D
from alexnet_keras.layers import (
    GroupedConv2D,
    LocalResponseNormalization,
    SpatialResponseNormalization,
)

__all__ = ["build_model"]


def _refuse(net, layer, what):
    return ValueError(
        f"{net.source}: layer '{layer.name}' {what}, which alexnet-keras cannot build"
    )


def _one(net, layer, key):
    """The value of a per-input key, which must be the same for every input."""
    values = layer.params[key]
    if len(set(values)) != 1:
        raise _refuse(net, layer, f"has per-input {key} {list(values)}")
    return values[0]


def _conv(net, layer, x):
    fs, pad, stride = (_one(net, layer, k) for k in ("filterSize", "padding", "stride"))
    groups = _one(net, layer, "groups")
    if len(layer.inputs) > 1 and groups > 1:
        raise _refuse(net, layer, "has several inputs and groups > 1")
    if layer.type == "local":
        return ConvnetLocal2D(layer.output_shape[0], fs, stride, pad, groups, name=layer.name)(x)
    n = net.layer(layer.inputs[0]).output_shape[1]
    channels, m = layer.output_shape[0], layer.output_shape[1]
    after = (m - 1) * stride + fs - n - pad  # cuda-convnet reads zeros beyond the image
    if pad or after:
        x = keras.layers.ZeroPadding2D(((pad, after), (pad, after)), name=f"{layer.name}_pad")(x)
    kwargs = dict(strides=stride, padding="valid", name=layer.name)
    if groups > 1:
        return GroupedConv2D(channels, fs, groups=groups, **kwargs)(x)
    return keras.layers.Conv2D(channels, fs, **kwargs)(x)


def _config(net, layer):
    """The layer's entry in the params file's training config (empty without one)."""
    return (net.config or {}).get("layers", {}).get(layer.name, {})


def _norm_constants(net, layer):
    config = _config(net, layer)
    if not config or config.get("scale") is None or config.get("pow") is None:
        raise ValueError(
            f"{net.source}: layer '{layer.name}' needs scale and pow from the layer parameter "
            "file; pass it to read_net"
        )
    return config


def _pool(net, layer, x):
    p = layer.params
    return ConvnetPool2D(p["pool"], p["sizeX"], p["stride"], p["start"], layer.output_shape[1],
                         divisor=net.pool_divisor, name=layer.name)(x)  # fmt: skip


def _fc(net, layer, xs):
    flat = []
    for name, x in zip(layer.inputs, xs, strict=True):
        if len(net.layer(name).output_shape) == 3:
            x = keras.layers.Flatten(name=f"{layer.name}_flatten{len(flat)}")(x)
        flat.append(x)
    return keras.layers.Dense(layer.params["outputs"], name=layer.name)(_joined(layer, flat))


def _joined(layer, xs):
    if len(xs) == 1:
        return xs[0]
    return keras.layers.Concatenate(axis=-1, name=f"{layer.name}_inputs")(xs)


def _layer(net, layer, xs):
    kind, p = layer.type, layer.params
    if kind in ("conv", "local"):
        return _conv(net, layer, _joined(layer, xs))
    if kind == "fc":
        return _fc(net, layer, xs)
    if kind == "pool":
        return _pool(net, layer, xs[0])
    if kind == "cmrnorm":
        c = _norm_constants(net, layer)
        return LocalResponseNormalization(p["size"], c["scale"], c["pow"], c.get("minDiv", 1.0),
                                          name=layer.name)(xs[0])  # fmt: skip
    if kind == "rnorm":
        c = _norm_constants(net, layer)
        return SpatialResponseNormalization(p["size"], c["scale"], c["pow"], 1.0,
                                            name=layer.name)(xs[0])  # fmt: skip
    if kind == "cnorm":
        c = _norm_constants(net, layer)
        divisor = net.pool_divisor  # cnorm's mean follows the era like avg pooling
        return ContrastNormalization(p["size"], c["scale"], c["pow"], divisor,
                                     name=layer.name)(xs[0])  # fmt: skip
    if kind == "neuron":
        neuron, params = parse_neuron(p["neuron"])
        return ConvnetNeuron(neuron, params, name=layer.name)(xs[0])
    if kind == "hs":
        enable = _config(net, layer).get("enable", True)
        return ConvnetDropout(p["keep"], enable=enable is not False, name=layer.name)(xs[0])
    if kind == "softmax":
        return keras.layers.Activation("softmax", dtype="float32", name=layer.name)(xs[0])
    if kind == "concat":
        return keras.layers.Concatenate(axis=-1, name=layer.name)(xs)
    raise _refuse(net, layer, f"has type {kind}")


def _check_supported(net):
    """Refuses what cannot be built before anything is, whatever the params file says."""
    for layer in net.layers:
        if layer.type == "pool" and layer.params["pool"] not in ("max", "avg"):
            raise _refuse(net, layer, f"uses {layer.params['pool']} pooling")
        if layer.type == "conv" and not layer.params.get("sharedBiases", True):
            raise _refuse(net, layer, "has unshared biases (sharedBiases=0)")


def build_model(net, *, name=None):
    """Builds the Keras model of a cfg net.

    Args:
        net: a `ChmNet` from `chm_cfg.read_net(layers_cfg, params_cfg)`; the
            parameter file supplies the norm constants.
        name: the model name; defaults to the def file's stem.

    Returns:
        A `keras.Model` from the image input (`(S, S, C)`, named like the
        cfg's data layer) to the softmax that the cost layer reads (or the
        net's last layer).

    Raises:
        ValueError: a layer this builder does not support, or missing norm
            constants; the message names the file and the layer.

    Example:

    >>> from alexnet_keras.cuda_convnet.cfg_net import read_net
    >>> from alexnet_keras.cuda_convnet.cfg_model import build_model
    >>> folder = "../shared/data/chm-release/example-layers/"
    >>> net = read_net(folder + "layers-80sec.cfg", folder + "layer-params-80sec.cfg")
    >>> model = build_model(net)
    >>> model.count_params() == net.param_count, model.output_shape
    (True, (None, 10))
    """
    _check_supported(net)
    tensors, inputs, costs = {}, [], []
    for layer in net.layers:
        if layer.type == "data":
            if layer.params["dataIdx"] == 0:
                c, h, w = layer.output_shape
                tensors[layer.name] = keras.Input((h, w, c), name=layer.name)
                inputs.append(tensors[layer.name])
            continue
        if layer.type.startswith("cost."):
            costs += [tensors[i] for i in layer.inputs if i in tensors]
            continue
        tensors[layer.name] = _layer(net, layer, [tensors[i] for i in layer.inputs])
    if len(inputs) != 1:
        raise ValueError(f"{net.source}: expected one image data layer. Received: {len(inputs)}")
    outputs = costs or [tensors[net.layers[-1].name]]
    stem = name or str(net.source).rsplit("/", 1)[-1].removesuffix(".cfg")
    return keras.Model(inputs[0], outputs[0] if len(outputs) == 1 else outputs,
                       name=stem.replace(".", "_"))  # fmt: skip

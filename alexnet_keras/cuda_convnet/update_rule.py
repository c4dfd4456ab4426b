"""Training a CHM cfg net with its own layer-parameter file: cuda-convnet's update rule.

cuda-convnet 1 (`src/layer.cu`, `src/weights.cu`) updates each weight matrix
`W` of a layer with learning rate `eps`, momentum `mom` and decay `wc` as

    inc = mom * inc + (eps / numCases) * sum_cases(dlogprob/dW) - wc * eps * W
    W  += inc

with the gradient of `coeff * log p(label)` summed over the minibatch, so
`eps` acts on the batch *mean* of the gradient and the decay is coupled to
the layer's own `eps`. Biases use `epsB`/`momB` and are not decayed. That is
SGD with momentum on the mean cross-entropy, a per-variable learning-rate
factor `eps * coeff` and an L2 term `wc / coeff` added to the kernel's
gradient, which is what `Trainer`'s per-variable factors express; a layer
with several inputs gets per-input factors over the kernel's input axis.

Weights start as cuda-convnet's `initW * randn` (biases `initB`, default 0).

CHM's `schedW`/`schedB` schedules (`lr_schedule`, from the release's
`src/lr.cu`) make `eps` a function of training progress, and with noise
the gradient step and the decay step each draw their own rate
(`src/weights.cu` l.146-197); `rate_schedule` gives the trainer those
per-step multipliers.

The params files of the CIFAR nets state manual learning-rate drops in
comments ("Reduce all learning rates by factor of 10 after 120 epochs. Then
another factor of 10 after 10 more epochs."); `recipe` reads them into
milestones, since cuda-convnet itself did this by restarting by hand.
"""

import re

import numpy as np

from alexnet_keras.cuda_convnet.cfg_rules import BUILT_WEIGHT_TYPES

__all__ = ["build", "gradient_factors", "init_weights", "rate_schedule", "recipe"]

_FIRST_DROP = re.compile(r"factor of ([\d.]+) after (\d+) epochs", re.I)
_NEXT_DROP = re.compile(r"another factor of ([\d.]+) after (\d+) more epochs", re.I)


def recipe(net):
    """The run settings a params file implies: momentum, milestones, epochs.

    Args:
        net: a `ChmNet` read with its params file (`cfg_net.read_net(layers, params)`).

    Returns:
        `{"momentum", "schedule", "milestones", "gamma", "epochs"}`;
        `epochs` is None when the file states no schedule. After the last
        stated drop, the run continues for as many epochs as the gap before
        it (18pct: drops at 120 and 130, 140 epochs), since the files do
        not say.

    Example:

    >>> from alexnet_keras.cuda_convnet.cfg_net import read_net
    >>> folder = "../shared/data/chm-release/example-layers/"
    >>> r = recipe(read_net(folder + "layers-18pct.cfg", folder + "layer-params-18pct.cfg"))
    >>> r["milestones"], r["gamma"], r["epochs"], r["momentum"]
    ([120, 130], 0.1, 140, 0.9)

    Raises:
        ValueError: naming the file: weight layers with different momenta
            (the trainer has one), a nonzero `wball`, or a missing
            `epsW`/`epsB`/`momW`/`momB`; a net read without its params file.
            (`schedW`/`schedB` are checked when the file is read, and
            followed by `rate_schedule`.)
    """
    if net.config is None:
        raise ValueError(f"{net.source}: read without its layer-params file, which training needs")
    config, source = net.config, net.config["source"]
    momenta = set()
    for name, entry in _weight_entries(net):
        for key in ("epsW", "epsB", "momW", "momB"):
            if entry.get(key) is None:
                raise ValueError(f"{source}: layer '{name}' has no {key}=, which training needs")
        if any(entry["wball"]):
            raise ValueError(f"{source}: layer '{name}' has wball={entry['wball']}, not supported")
        momenta |= set(entry["momW"]) | {entry["momB"]}
    if len(momenta) > 1:
        raise ValueError(
            f"{source}: the weight layers use momenta {sorted(momenta)}; the trainer has one"
        )
    text = " ".join(config["comments"])  # the header lines are among them
    first, milestones, gamma = _FIRST_DROP.search(text), [], None
    if first:
        gamma, milestones = 1.0 / float(first.group(1)), [int(first.group(2))]
        for m in _NEXT_DROP.finditer(text):
            if abs(1.0 / float(m.group(1)) - gamma) > 1e-12:
                raise ValueError(f"{source}: the stated drops use different factors")
            milestones.append(milestones[-1] + int(m.group(2)))
        gap = milestones[-1] - (milestones[-2] if len(milestones) > 1 else 0)
        epochs = milestones[-1] + gap
    else:
        epochs = None
    return {
        "momentum": momenta.pop() if momenta else 0.9,
        "schedule": "step" if milestones else "constant",
        "milestones": milestones,
        "gamma": gamma if gamma is not None else 0.1,
        "epochs": epochs,
    }


def _weight_entries(net):
    for layer in net.layers:
        if layer.type in BUILT_WEIGHT_TYPES:
            yield layer.name, net.config["layers"][layer.name]


def build(net, num_classes, seed):
    """The cfg net's Keras model for training (logits out) and the full model.

    The returned model ends at the input of the softmax the cost layer
    reads, so the trainer's cross-entropy works on logits; it shares its
    layers with `cfg_model.build_model(net)`, the full model (softmax out)
    whose weights the run saves.

    Args:
        net: the `ChmNet`, read with its params file.
        num_classes: the dataset's classes; the net's outputs must match.
        seed: for `init_weights`.

    Returns:
        `(model, full)`.

    Raises:
        ValueError: naming the file: the net's classes differ from the
            dataset's, the cost does not read a softmax, or anything
            `cfg_model.build_model` refuses.
    """
    import keras

    from alexnet_keras.cuda_convnet.cfg_model import build_model

    full = build_model(net)
    probs = full.layers[-1]
    if not isinstance(probs, keras.layers.Activation) or probs.get_config()["activation"] != (
        "softmax"
    ):
        raise ValueError(f"{net.source}: the cost layer must read a softmax layer to train")
    outputs = full.output_shape[-1]
    if outputs != num_classes:
        raise ValueError(
            f"{net.source}: the net has {outputs} outputs and the dataset {num_classes} classes"
        )
    model = keras.Model(full.input, probs.input, name=f"{full.name}_logits")
    init_weights(full, net, seed)
    return model, full


# The kernel axis that holds the inputs' rows: Dense (in, out), Conv2D (y, x, c, f),
# ConvnetLocal2D (module, y * fs + x, c, f).
_INPUT_AXIS = {"fc": 0, "conv": 2, "local": 2}


def _input_sizes(net, layer):
    """Rows of the kernel's input axis per input, in `inputs=` order."""
    sizes = []
    for name in layer.inputs:
        shape = net.layer(name).output_shape
        if layer.type == "fc":
            sizes.append(int(np.prod(shape)))
        else:
            sizes.append(shape[0] // layer.params["groups"][0])
    return sizes


def _per_input(values, sizes, kernel_shape, axis):
    """A scalar when the inputs agree, else factors broadcast over the kernel's input axis."""
    if len(set(values)) == 1:
        return float(values[0])
    shape = [1] * len(kernel_shape)
    shape[axis] = kernel_shape[axis]
    return np.repeat(np.asarray(values, np.float32), sizes).reshape(shape)


def init_weights(model, net, seed):
    """cuda-convnet's init: kernels `initW * N(0, 1)` per input, biases `initB` (default 0)."""
    rng = np.random.default_rng([0 if seed is None else seed, 2011])
    for layer in net.layers:
        if layer.type not in BUILT_WEIGHT_TYPES:
            continue
        target = model.get_layer(layer.name)
        kernel, bias = target.get_weights()
        stds = layer.params.get("initW") or (0.01,) * len(layer.inputs)
        axis = _INPUT_AXIS[layer.type]
        std = _per_input(stds, _input_sizes(net, layer), kernel.shape, axis)
        kernel = (rng.standard_normal(kernel.shape) * std).astype(kernel.dtype)
        bias = np.full(bias.shape, layer.params.get("initB") or 0.0, bias.dtype)
        target.set_weights([kernel, bias])


def gradient_factors(model, net):
    """Per trainable variable of `model`: `(lr factor, L2 factor)`, from the params file.

    Kernels: `(epsW * coeff, wc / coeff)`, per input when a layer's inputs
    differ; biases: `(epsB * coeff, 0)`. `coeff` is the logreg cost's.
    """
    coeff, out = _coeff(net), []
    for v, layer, entry in _owners(model, net):
        if v.path.split("/")[-1] == "bias":
            out.append((entry["epsB"] * coeff, 0.0))
            continue
        sizes, axis = _input_sizes(net, layer), _INPUT_AXIS[layer.type]
        eps = _per_input(entry["epsW"], sizes, v.shape, axis)
        wc = _per_input(entry["wc"], sizes, v.shape, axis)
        out.append((eps * coeff, wc / coeff))
    return out


def _coeff(net):
    config = net.config["layers"]
    costs = [e.get("coeff") for e in config.values() if e["type"].startswith("cost.")]
    coeff = float(costs[0]) if costs and costs[0] is not None else 1.0
    if coeff <= 0:
        raise ValueError(f"{net.config['source']}: the cost's coeff must be positive")
    return coeff


def _owners(model, net):
    """Per trainable variable of `model`: `(variable, cfg layer, params-file entry)`."""
    config = net.config["layers"]
    for v in model.trainable_variables:
        parts = v.path.split("/")
        name = next((p for p in parts if p in config), None)
        layer = net.layer(name) if name else None
        if layer is None or layer.type not in BUILT_WEIGHT_TYPES:
            raise ValueError(f"{net.source}: no cfg layer owns the variable {v.path}")
        yield v, layer, config[name]


def rate_schedule(model, net, seed):
    """The params file's `schedW`/`schedB` as a `lr_schedule.RateSchedule`, or None.

    Args:
        model: the model `build` made (its trainable variables, in order).
        net: the `ChmNet`, read with its params file.
        seed: the run's seed, for the schedules' noise.

    Returns:
        None when every layer has the default (constant) schedule, else the
        per-step multipliers of each variable's rate, with `notes`: one
        line per distinct `(schedW, schedB)` pair naming its layers, and
        the params file's notes on schedules written in older forms.

    Example:

    >>> from alexnet_keras.cuda_convnet.cfg_net import read_net
    >>> f = "../shared/data/chm-release/layers-cifar/"
    >>> net = read_net(f + "layers-18pct.cfg", f + "layer-params-18pct-noisylr.cfg")
    >>> model, _ = build(net, 10, 0)
    >>> rates = rate_schedule(model, net, seed=0)
    >>> rates.notes[0].split(": ")[1:]
    ['conv1, conv2, conv3, fc10', 'weights linear[tgtFactor=1,noiseStdev=1], biases default']
    """
    from alexnet_keras.cuda_convnet.lr_schedule import Matrix, RateSchedule, read

    variables, used = [], {}
    for v, layer, entry in _owners(model, net):
        w, b = read(entry["schedW"])[0], read(entry["schedB"])[0]
        used.setdefault((w.text, b.text), []).append(layer.name)
        if v.path.split("/")[-1] == "bias":
            variables.append(([Matrix(b, entry["epsB"])], ()))
            continue
        sizes, axis = _input_sizes(net, layer), 0 if layer.type == "fc" else 2
        shape = [1] * len(v.shape)
        shape[axis] = v.shape[axis]
        shape = () if len(sizes) == 1 else tuple(shape)
        matrices = [Matrix(w, eps, n) for eps, n in zip(entry["epsW"], sizes, strict=True)]
        variables.append((matrices, shape))
    notes = tuple(
        f"lr schedules: {', '.join(dict.fromkeys(names))}: weights {w}, biases {b}"
        for (w, b), names in used.items()
    )  # then how the file's older forms were read, naming their lines
    notes += tuple(n for n in net.config["notes"] if re.match(r"[^:]+: sched[WB]?=", n))
    rates = RateSchedule(variables, seed, notes)
    return None if rates.is_constant() else rates

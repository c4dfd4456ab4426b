"""The model a run trains: initial weights, a new head, frozen layers, per-variable factors."""

import os

from alexnet_keras.variants import WEIGHTED_LAYERS as WEIGHTED

__all__ = ["WEIGHTED", "build_model", "freeze", "gradient_factors"]


def _weights_path(weights):
    from alexnet_keras import registry

    if weights is None:
        return None
    if not os.path.exists(weights) and weights in registry.release_names():
        found = registry.converted_path(weights)
        if found is None:
            raise ValueError(
                f"--weights {weights}: not converted yet. Run `alexnet-keras convert {weights}` "
                f"(downloads and verifies the release) or `alexnet-keras convert FILE` on a "
                f"downloaded copy, or pass --weights none to start from random weights"
            )
        return str(found)
    if not os.path.isfile(weights):
        raise ValueError(f"--weights {weights}: no such file or known release")
    return weights


def build_model(config, num_classes):
    """The Keras model (fc8 logits), the initial weights' metadata and the preprocessing."""
    import alexnet_keras
    from alexnet_keras import variants, weights

    path = _weights_path(config["weights"])
    meta = weights.read_metadata(path) if path else None
    variant = config["variant"] or (meta["variant"] if meta else "bvlc")
    if meta and meta["variant"] != variant:
        raise ValueError(f"{path}: holds {meta['variant']} weights. Received: --variant {variant}")
    spec = variants.get_variant(variant)
    size = config["input_size"] or (meta["input_size"] if meta else spec.default_size)
    model = alexnet_keras.AlexNet(
        variant=variant,
        classes=num_classes,
        input_shape=(size, size, 3),
        classifier_activation=None,
    )
    notes = []
    caffe_init(model, config["seed"], only=None if path is None else ("fc8",))
    if path:
        arrays = weights.read_arrays(path)
        for name in WEIGHTED:
            layer = model.get_layer(name)
            got = [a.shape for a in arrays.get(name, [])]
            want = [tuple(w.shape) for w in layer.weights]
            if name == "fc8" and got != want:
                notes.append(
                    f"fc8: {meta['classes']} classes in {path}, {num_classes} here; new head"
                )
                continue
            if got != want:
                raise ValueError(f"{path}: layer '{name}' expects {want}. Received: {got}")
            layer.set_weights(arrays[name])
        if config["trainable_from"] is None and meta["classes"] != num_classes:
            notes.append("the whole network trains; pass --trainable-from fc8 for a linear probe")
    preprocessing = (meta or {}).get("preprocessing") or {
        "color_order": spec.color_order,
        "mean": list(spec.mean),
    }
    return model, dict(path=path, meta=meta, variant=variant, input_size=size), preprocessing, notes


# BVLC's models/bvlc_alexnet/train_val.prototxt: gaussian weights (std 0.01, fc6 and
# fc7 0.005) and biases 0 or 0.1. The paper (section 5) used std 0.01 and biases 1;
# BVLC's readme reports 0.1 trains better. Keras' default glorot init with the paper's
# lr 0.01 on 0..255 inputs diverges within a hundred steps.
_CAFFE_INIT = {"conv1": (0.01, 0.0), "conv2": (0.01, 0.1), "conv3": (0.01, 0.0),
               "conv4": (0.01, 0.1), "conv5": (0.01, 0.1), "fc6": (0.005, 0.1),
               "fc7": (0.005, 0.1), "fc8": (0.01, 0.0)}  # fmt: skip


def caffe_init(model, seed, only=None):
    """Initialises the weighted layers as BVLC's AlexNet recipe does (seeded, reproducible)."""
    import numpy as np

    rng = np.random.default_rng([0 if seed is None else seed, 2012])
    for name, (std, bias) in _CAFFE_INIT.items():
        layer = model.get_layer(name)
        kernel, b = layer.get_weights()
        if only is None or name in only:
            layer.set_weights(
                [(rng.standard_normal(kernel.shape) * std).astype(kernel.dtype),
                 np.full(b.shape, bias, b.dtype)]
            )  # fmt: skip


def freeze(model, trainable_from):
    """Freezes every weighted layer before `trainable_from`."""
    if trainable_from is None:
        return
    for name in WEIGHTED[: WEIGHTED.index(trainable_from)]:
        model.get_layer(name).trainable = False


def _owner(variable):
    # Keras paths look like "alexnet_bvlc/fc8/kernel" or "fc8/kernel".
    parts = variable.path.split("/")
    return next((p for p in parts if p in WEIGHTED), parts[0]), parts[-1]


def gradient_factors(model, config, new_head):
    """Per trainable variable: (lr multiplier, weight decay), Caffe's lr_mult and decay_mult."""
    mults = dict(config["lr_mults"] or {})
    if new_head:
        mults.setdefault("fc8", config["head_lr_mult"])
    out = []
    for v in model.trainable_variables:
        layer, kind = _owner(v)
        is_bias = kind == "bias"
        mult = float(mults.get(layer, 1.0)) * (config["bias_lr_mult"] if is_bias else 1.0)
        decay = 0.0 if is_bias and not config["decay_biases"] else config["weight_decay"]
        out.append((mult, decay))
    return out


# ----------------------------------------------------------------------------- the loop

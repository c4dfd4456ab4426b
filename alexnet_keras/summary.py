"""The layer table that `alexnet-keras summary` prints."""

from alexnet_keras.model import AlexNet
from alexnet_keras.variants import get_variant

__all__ = ["layer_table"]


def _describe(layer):
    config = layer.get_config()
    parts = []
    if "kernel_size" in config:
        k, s = config["kernel_size"], config["strides"]
        parts.append(f"{k[0]}x{k[1]}/{s[0]} {config['padding']}")
        if config.get("groups", 1) > 1:
            parts.append(f"groups={config['groups']}")
    if "pool_size" in config:
        k, s = config["pool_size"], config["strides"]
        parts.append(f"max {k[0]}x{k[1]}/{s[0]} {config['padding']}")
    if "padding" in config and isinstance(config["padding"], (list, tuple)):
        (top, bottom), (left, right) = config["padding"]
        parts.append(f"pad top/bottom {top}/{bottom}, left/right {left}/{right}")
    if "size" in config and "alpha" in config:
        groups = config.get("groups", 1)
        parts.append(
            f"size={config['size']} alpha={config['alpha']:g} beta={config['beta']:g} "
            f"k={config['bias']:g}" + (f" groups={groups}" if groups > 1 else "")
        )
    if "rate" in config:
        parts.append(f"rate={config['rate']}")
    return ", ".join(parts)


def layer_table(variant="bvlc", input_size=None, classes=1000):
    """Returns the printable layer table of one AlexNet.

    Example:

    >>> from alexnet_keras.summary import layer_table
    >>> print(layer_table("bvlc").splitlines()[-1])
    Total params: 60,965,224
    """
    spec = get_variant(variant)
    size = input_size or spec.default_size
    model = AlexNet(variant=variant, input_shape=(size, size, 3), classes=classes)
    rows = [("layer", "type", "output shape", "params", "details")]
    for layer in model.layers:
        shape = "x".join(str(d) for d in layer.output.shape[1:])
        rows.append(
            (layer.name, type(layer).__name__, shape, f"{layer.count_params():,}", _describe(layer))
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [
        f"AlexNet variant '{spec.name}': {spec.description}",
        f"Source: {spec.source}",
        f"Input: {size}x{size}x3, {spec.color_order} 0..255 minus the mean; {classes} classes",
        "",
    ]
    for r in rows:
        lines.append(
            "  ".join(
                [
                    r[0].ljust(widths[0]),
                    r[1].ljust(widths[1]),
                    r[2].rjust(widths[2]),
                    r[3].rjust(widths[3]),
                    r[4],
                ]
            ).rstrip()
        )
    lines += ["", f"Total params: {model.count_params():,}"]
    return "\n".join(lines)

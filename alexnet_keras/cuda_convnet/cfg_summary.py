"""A cfg net as text: the layer table and the training config (`alexnet-keras chm summary`)."""

__all__ = ["summary"]


def _text(value):
    if isinstance(value, tuple):
        return ",".join(_text(v) for v in value)
    if isinstance(value, dict):
        return value.get("text", str(value))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _table(rows):
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def summary(net, config=None):
    """A layer table (name, type, inputs, output shape, parameters), then the training config.

    Args:
        net: a `ChmNet`.
        config: a `cfg_net.training_config`; default `net.config`.

    Example:

    >>> from alexnet_keras.cuda_convnet.cfg_net import read_net
    >>> net = read_net("../shared/data/chm-release/example-layers/layers-80sec.cfg",
    ...                "../shared/data/chm-release/example-layers/layer-params-80sec.cfg")
    >>> text = summary(net)
    >>> print(text.splitlines()[0])  # doctest: +ELLIPSIS
    ../shared/.../layers-80sec.cfg: 17 layers, 145,578 parameters, image size 32 (CIFAR)...2011...
    >>> print(text[text.index("name "):])  # doctest: +ELLIPSIS
    name          type         inputs        output    params
    data          data                       3x32x32   0
    labels        data                       1         0
    conv1         conv         data          32x32x32  2,432
    conv1_neuron  neuron       conv1         32x32x32  0
    pool1         pool         conv1_neuron  32x16x16  0
    ...
    logprob       cost.logreg  labels,probs  -         0
    <BLANKLINE>
    training config from ...layer-params-80sec.cfg:
    # 26% error on CIFAR-10 in 80 seconds - layer parameter file
    conv1    epsW=0.001 epsB=0.002 momW=0.9 momB=0.9 wc=0.004 wball=0 schedW=default schedB=default
    ...
    logprob  coeff=1 topk=1
    """
    config = net.config if config is None else config
    lines = [f"{net.source}: {len(net.layers)} layers, {net.param_count:,} parameters, "
             + "; ".join(net.notes)]  # fmt: skip
    rows = [("name", "type", "inputs", "output", "params")]
    for layer in net.layers:
        shape = "x".join(map(str, layer.output_shape)) or "-"
        rows.append(
            (layer.name, layer.type, ",".join(layer.inputs), shape, f"{layer.param_count:,}")
        )
    lines += _table(rows)
    if config:
        lines += ["", f"training config from {config['source']}:"]
        lines += [f"# {text}" for text in config["header"]]
        rows = []
        for name, entry in config["layers"].items():
            values = (f"{k}={_text(v)}" for k, v in entry.items() if k != "type" and v is not None)
            rows.append((name, " ".join(values)))
        lines += _table(rows) if rows else []
        for nll, *errors in config["results"]:
            lines.append(f"result in comments: logprob {nll}, error " + ", ".join(map(str, errors)))
    return "\n".join(lines)

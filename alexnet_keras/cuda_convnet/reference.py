"""A plain float64 NumPy forward pass of any cuda-convnet cfg net, for `--verify-images`.

Written from cuda-convnet's semantics (`docs/formats.md` §1-§3), in its own
layouts: activations are images-last `(C, H, W, numCases)`, conv weights are
`(C*fs*fs, F)` matrices with rows `c*fs*fs + y*fs + x`, fc weights
`(in, out)` over the CHW flatten, one matrix per input, summed. It walks the
graph of a parsed cfg net (`chm_cfg.read_net`) and reads the checkpoint's own
arrays; it shares nothing with the Keras models or the mappers but the pick
of a matrix by input name (`checkpoint.matrix_for_input`, one line), so
agreement between the two is evidence that the conversion is right.

- conv: `1 + ceil((2p + size - fs) / stride)` modules; a pixel outside the
  image reads 0 (`filter_acts.cu`'s bounds test); groups split the channels.
- pool: `outputsX` windows from `start + i*stride`, clipped at the border;
  the average divides by the clipped window's pixel count (2012: CHM's
  `AvgPooler()`), or by `sizeX**2` whatever the clipping (2011: r331-r333's
  `AvgPooler(_sizeX*_sizeX)` returning `a/_num`), as `net.semantics` says.
- cmrnorm: `x * (minDiv + scale/size * sum_{f-size//2 ...} x^2) ** -pow` over
  the layer's own channels (one GPU half); rnorm: `1 + scale/size**2 * sum`
  over a clipped `size x size` window starting at `-size//2`.
- local: the conv's sizes, but module `my*modulesX + mx` has its own
  `(C*fs*fs, F)` block of the `(modules*C*fs*fs, F)` matrix
  (`filter_acts.cu` l.85-87) and bias row `f*modules + m` (`layer.cu`
  l.559-561); cnorm: `x * (1 + scale/size**2 * sum (x - mean)^2) ** -pow`,
  mean over the same clipped window divided by its pixel count, or by
  size**2 for a net of the 2011 era (`layer.cu` l.916-921, `conv_util.cu`
  l.747-808).
- neurons as `layer.py` lists them; `hs` multiplies by `keep` (not inverted).
"""

import math

import numpy as np

from alexnet_keras.cuda_convnet.checkpoint import matrix_for_input

__all__ = ["forward", "logits_layer"]


def _conv(inputs, weights, bias, fs, stride, pad, groups):
    size = inputs[0].shape[1]
    modules = 1 + math.ceil((2 * pad + size - fs) / stride)
    n = inputs[0].shape[3]
    filters = weights[0].shape[1]
    out = np.zeros((filters, modules, modules, n))
    reach = (modules - 1) * stride + fs
    for image, w in zip(inputs, weights, strict=True):
        c = image.shape[0]
        padded = np.zeros((c, reach, reach, n))
        inner = image[:, : reach - pad, : reach - pad]
        padded[:, pad : pad + inner.shape[1], pad : pad + inner.shape[2]] = inner
        per_group, fc = filters // groups, c // groups
        w = w.reshape(fc, fs, fs, filters)
        for g in range(groups):
            chans, outs = slice(g * fc, (g + 1) * fc), slice(g * per_group, (g + 1) * per_group)
            for y in range(fs):
                for x in range(fs):
                    window = padded[chans, y : y + stride * modules : stride,
                                    x : x + stride * modules : stride]  # fmt: skip
                    out[outs] += np.einsum("chwn,cf->fhwn", window, w[:, y, x, outs])
    return out + bias.reshape(-1, 1, 1, 1)


def _pool(x, kind, size, stride, start, outputs, full_window=False):
    h = x.shape[1]
    out = np.empty((x.shape[0], outputs, outputs, x.shape[3]))
    for i in range(outputs):
        y0, y1 = max(start + i * stride, 0), min(start + i * stride + size, h)
        for j in range(outputs):
            x0, x1 = max(start + j * stride, 0), min(start + j * stride + size, h)
            window = x[:, y0:y1, x0:x1]
            if kind == "max":
                out[:, i, j] = window.max(axis=(1, 2))
            else:
                area = size * size if full_window else (y1 - y0) * (x1 - x0)
                out[:, i, j] = window.sum(axis=(1, 2)) / area
    return out


def _cmrnorm(x, size, scale, power, min_div):
    squares = np.concatenate([np.zeros((1,) + x.shape[1:]), np.cumsum(x**2, axis=0)])
    c = x.shape[0]
    lo = np.clip(np.arange(c) - size // 2, 0, c)
    hi = np.clip(np.arange(c) - size // 2 + size, 0, c)
    return x * (min_div + scale / size * (squares[hi] - squares[lo])) ** -power


def _rnorm(x, size, scale, power):
    _, h, w, _ = x.shape
    sums = np.zeros_like(x)
    first = -(size // 2)
    for y in range(h):
        y0, y1 = max(y + first, 0), min(y + first + size, h)
        for xx in range(w):
            x0, x1 = max(xx + first, 0), min(xx + first + size, w)
            sums[:, y, xx] = (x[:, y0:y1, x0:x1] ** 2).sum(axis=(1, 2))
    return x * (1.0 + scale / size**2 * sums) ** -power


def _local(inputs, weights, bias, fs, stride, pad, groups):
    size, n = inputs[0].shape[1], inputs[0].shape[3]
    modules = 1 + math.ceil((2 * pad + size - fs) / stride)
    filters = weights[0].shape[-1]
    out = np.zeros((filters, modules, modules, n))
    for image, w in zip(inputs, weights, strict=True):
        c = image.shape[0]
        fc, per_group = c // groups, filters // groups
        w = w.reshape(modules, modules, fc, fs, fs, filters)
        reach = max((modules - 1) * stride + fs, pad + size)
        padded = np.zeros((c, reach, reach, n))  # pixels outside the image read 0
        padded[:, pad : pad + size, pad : pad + size] = image
        for my in range(modules):
            for mx in range(modules):
                y0, x0 = my * stride, mx * stride
                patch = padded[:, y0 : y0 + fs, x0 : x0 + fs]
                for g in range(groups):
                    outs = slice(g * per_group, (g + 1) * per_group)
                    out[outs, my, mx] += np.einsum("cyxn,cyxf->fn", patch[g * fc : (g + 1) * fc],
                                                   w[my, mx, :, :, :, outs])  # fmt: skip
    return out + bias.reshape(filters, modules, modules, 1)


def _cnorm(x, size, scale, power, full_window):
    _, h, w, _ = x.shape
    first = -(size // 2)
    diffs = np.empty_like(x)
    for y in range(h):
        y0, y1 = max(y + first, 0), min(y + first + size, h)
        for xx in range(w):
            x0, x1 = max(xx + first, 0), min(xx + first + size, w)
            window = x[:, y0:y1, x0:x1]
            count = size**2 if full_window else window.shape[1] * window.shape[2]
            diffs[:, y, xx] = x[:, y, xx] - window.sum(axis=(1, 2)) / count
    sums = np.zeros_like(x)
    for y in range(h):
        y0, y1 = max(y + first, 0), min(y + first + size, h)
        for xx in range(w):
            x0, x1 = max(xx + first, 0), min(xx + first + size, w)
            sums[:, y, xx] = (diffs[:, y0:y1, x0:x1] ** 2).sum(axis=(1, 2))
    return x * (1.0 + scale / size**2 * sums) ** -power


def _neuron(text, x):
    name, _, rest = text.partition("[")
    a, b = (float(v) for v in rest.rstrip("]").split(",")) if rest else (1.0, 1.0)
    return {
        "relu": lambda: np.maximum(x, 0.0),
        "ident": lambda: x,
        "logistic": lambda: 1.0 / (1.0 + np.exp(-x)),
        "tanh": lambda: a * np.tanh(b * x),
        "abs": lambda: np.abs(x),
    }[name]()


def _features(x):
    """A `(numCases, features)` view with CHW feature order, as cuda-convnet's fc sees it."""
    return x.reshape(-1, x.shape[-1]).T if x.ndim == 4 else x


def forward(net, images, layers):
    """Every layer's output for a batch of images.

    Args:
        net: a `ChmNet` from `chm_cfg.read_net(layers_cfg, params_cfg)`.
        images: `(C, H, W, numCases)` float images, mean already subtracted.
        layers: `{name: {"weights": [per-input matrix], "biases": array}}` in
            cuda-convnet's layouts (`cuda_convnet.layer_arrays`).

    Returns:
        `{name: activation}`: `(C, H, W, numCases)` for maps and
        `(numCases, outputs)` for fc, softmax and concat.

    Raises:
        ValueError: a layer type this reference does not compute.

    Example:

    >>> import numpy as np
    >>> from alexnet_keras.cuda_convnet.cfg_net import read_net
    >>> from alexnet_keras.cuda_convnet.reference import forward, logits_layer
    >>> folder = "../shared/data/chm-release/example-layers/"
    >>> net = read_net(folder + "layers-80sec.cfg", folder + "layer-params-80sec.cfg")
    >>> rng = np.random.default_rng(0)
    >>> layers = {x.name: {"weights": [rng.standard_normal(s) * 0.01 for s in x.weight_shapes[:-1]],
    ...                    "biases": np.zeros(x.weight_shapes[-1])}
    ...           for x in net.layers if x.weight_shapes}
    >>> acts = forward(net, rng.standard_normal((3, 32, 32, 4)) * 50, layers)
    >>> acts["pool3"].shape, acts[logits_layer(net)].shape, acts["probs"].sum(axis=1).round(6)
    ((64, 4, 4, 4), (4, 10), array([1., 1., 1., 1.]))
    """
    config, acts = (net.config or {}).get("layers", {}), {}
    for layer in net.layers:
        p, kind = layer.params, layer.type
        ins = [acts[i] for i in layer.inputs if i in acts]
        if kind == "data":
            if p["dataIdx"] == 0:
                acts[layer.name] = np.asarray(images, np.float64)
            continue
        if kind.startswith("cost."):
            continue
        arrays = layers.get(layer.name, {})
        if kind in ("conv", "local"):
            bias = np.asarray(arrays["biases"], np.float64)
            step = _local if kind == "local" else _conv
            out = step(ins, _matrices(net, layer, arrays), bias, p["filterSize"][0],
                       p["stride"][0], p["padding"][0], p["groups"][0])  # fmt: skip
        elif kind == "fc":
            out = sum(_features(x) @ w
                      for x, w in zip(ins, _matrices(net, layer, arrays), strict=True))  # fmt: skip
            out = out + np.asarray(arrays["biases"], np.float64).reshape(1, -1)
        elif kind == "pool":
            out = _pool(ins[0], p["pool"], p["sizeX"], p["stride"], p["start"],
                        layer.output_shape[1], net.semantics == "2011")  # fmt: skip
        elif kind == "cmrnorm":
            c = config[layer.name]
            out = _cmrnorm(ins[0], p["size"], c["scale"], c["pow"], c["minDiv"])
        elif kind == "rnorm":
            c = config[layer.name]
            out = _rnorm(ins[0], p["size"], c["scale"], c["pow"])
        elif kind == "cnorm":
            c = config[layer.name]
            out = _cnorm(
                ins[0], p["size"], c["scale"], c["pow"], full_window=net.semantics == "2011"
            )
        elif kind == "neuron":
            out = _neuron(p["neuron"], ins[0])
        elif kind == "hs":
            out = p["keep"] * ins[0]
        elif kind == "softmax":
            z = np.exp(ins[0] - ins[0].max(axis=1, keepdims=True))
            out = z / z.sum(axis=1, keepdims=True)
        elif kind == "concat":
            out = np.concatenate([_features(x) for x in ins], axis=1)
        else:
            raise ValueError(f"{net.source}: the numpy reference has no {kind} layer")
        acts[layer.name] = out
    return acts


def _matrices(net, layer, arrays):
    """The layer's matrices in its `inputs=` order, each picked by input name.

    Arrays without `inputs` (as in the example above) are in the net's order.
    """
    named = arrays if "inputs" in arrays else {**arrays, "inputs": list(layer.inputs)}
    return [np.asarray(matrix_for_input(named, name, layer.name, net.source), np.float64)
            for name in layer.inputs]  # fmt: skip


def logits_layer(net):
    """The name of the layer the cost's softmax reads (the logits)."""
    cost = next(layer for layer in net.layers if layer.type.startswith("cost."))
    softmax = next(net.layer(i) for i in cost.inputs if net.layer(i).type == "softmax")
    return softmax.inputs[0]

"""Independent float64 NumPy forward passes of AlexNet, for parity tests.

Written from the sources' semantics, never from `alexnet_keras`:

- `caffe_forward`: Caffe's layers (`conv_layer`, `lrn_layer.cpp`,
  `pooling_layer.cpp`, `inner_product_layer`) in NCHW with Caffe's blob
  layouts: conv weights OIHW, group-major outputs; conv sizes floor, pooling
  ceil with the window clipped; LRN `k + alpha/n * sum`; fc over the NCHW
  flatten.
- `cuda_convnet_forward`: the CHM `layers-145.cfg` net as two GPU towers, in
  cuda-convnet's layouts (`formats.md` §1-§3): conv weights `(C*fs*fs, F)`
  with rows `c*fs*fs + y*fs + x`, one matrix per input, summed; module count
  `1 + ceil((2p + size - fs) / stride)` with out-of-range pixels read as 0;
  `cmrnorm` `minDiv + scale/size * sum` within one GPU's channels; the
  same-map `rnorm` `1 + scale/size**2 * sum` over a clipped window; fc rows
  in CHW order; `hs` multiplies by `keep` at test time; `fc2048bb` takes its
  inputs reversed.

Both can rescale each weighted layer on the fly (`calibrate`) so activations
keep a chosen spread: random weights then exercise LRN in its non-linear range
instead of vanishing or exploding.
"""

import math

import numpy as np


def numeric_grad(f, x, coords, eps=1e-3):
    """Central differences of scalar `f` (float64) at a few coordinates of `x`."""
    out = []
    for idx in coords:
        xp, xm = x.copy(), x.copy()
        xp[idx] += eps
        xm[idx] -= eps
        out.append((f(xp) - f(xm)) / (2 * eps))
    return np.array(out)


# --------------------------------------------------------------------------- Caffe


def _calibrate(out, w, b, target):
    """Scales a layer so its output has std `target`; returns the scaled triple."""
    if target is None:
        return out, w, b
    f = target / out.std()
    return out * f, w * f, b * f


def caffe_conv(x, w, b, stride=1, pad=0, group=1):
    """x (N,C,H,W), w (O, C/group, kh, kw); output size floor-rounded (Caffe)."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    ho = (h + 2 * pad - kh) // stride + 1
    wo = (wd + 2 * pad - kw) // stride + 1
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.empty((n, o, ho, wo))
    og = o // group
    for g in range(group):
        xs = xp[:, g * cg : (g + 1) * cg]
        cols = np.empty((n, cg, kh, kw, ho, wo))
        for i in range(kh):
            for j in range(kw):
                cols[:, :, i, j] = xs[
                    :, :, i : i + stride * ho : stride, j : j + stride * wo : stride
                ]
        wm = w[g * og : (g + 1) * og].reshape(og, -1)
        out[:, g * og : (g + 1) * og] = np.einsum(
            "ok,nkp->nop", wm, cols.reshape(n, -1, ho * wo)
        ).reshape(n, og, ho, wo)
    return out + b[None, :, None, None]


def caffe_lrn(x, size=5, alpha=1e-4, beta=0.75, k=1.0, divide_alpha=True):
    """ACROSS_CHANNELS LRN; the window is clipped at the channel edges."""
    c = x.shape[1]
    sq = x**2
    half = (size - 1) // 2
    s = np.zeros_like(x)
    for ch in range(c):
        lo, hi = max(0, ch - half), min(c, ch + half + 1)
        s[:, ch] = sq[:, lo:hi].sum(axis=1)
    a = alpha / size if divide_alpha else alpha
    return x * (k + a * s) ** -beta


def caffe_max_pool(x, kernel=3, stride=2):
    """Ceil-mode max pooling with the window clipped at the border (pad 0)."""
    n, c, h, w = x.shape

    def out_size(s):
        o = math.ceil((s - kernel) / stride) + 1
        return o - 1 if (o - 1) * stride >= s else o

    ho, wo = out_size(h), out_size(w)
    out = np.empty((n, c, ho, wo))
    for i in range(ho):
        for j in range(wo):
            y0, x0 = i * stride, j * stride
            out[:, :, i, j] = x[:, :, y0 : min(y0 + kernel, h), x0 : min(x0 + kernel, w)].max(
                axis=(2, 3)
            )
    return out


def caffe_forward(x, params, order="lrn_pool", lrn_divide_alpha=True, calibrate=None, trace=None):
    """Caffe AlexNet logits.

    Args:
        x: (N, 3, H, W) BGR, mean subtracted.
        params: {layer: [W, b]} in Caffe layout (conv OIHW, fc (out, in)).
        order: "lrn_pool" (bvlc_alexnet) or "pool_lrn" (CaffeNet).
        lrn_divide_alpha: False plants the classic alpha-not-divided bug.
        calibrate: optional {layer: target std}; rescales `params` in place.
        trace: optional dict that receives per-layer statistics.
    """
    trace = {} if trace is None else trace

    def conv(name, h, **kw):
        w, b = params[name]
        out = caffe_conv(h, w, b, **kw)
        out, params[name][0], params[name][1] = _calibrate(out, w, b, (calibrate or {}).get(name))
        trace[name] = out.std()
        return out

    def block(h, name):
        if order == "lrn_pool":
            n = caffe_lrn(h, divide_alpha=lrn_divide_alpha)
            trace[f"norm{name}_ratio"] = _lrn_ratio(h, n)
            return caffe_max_pool(n)
        p = caffe_max_pool(h)
        n = caffe_lrn(p, divide_alpha=lrn_divide_alpha)
        trace[f"norm{name}_ratio"] = _lrn_ratio(p, n)
        return n

    relu = lambda h: np.maximum(h, 0)  # noqa: E731
    h = block(relu(conv("conv1", x, stride=4)), 1)
    h = block(relu(conv("conv2", h, pad=2, group=2)), 2)
    h = relu(conv("conv3", h, pad=1))
    h = relu(conv("conv4", h, pad=1, group=2))
    h = caffe_max_pool(relu(conv("conv5", h, pad=1, group=2)))
    trace["pool5_shape"] = h.shape[1:]
    h = h.reshape(h.shape[0], -1)  # Caffe flattens C, H, W
    for name in ("fc6", "fc7", "fc8"):
        w, b = params[name]
        out = h @ w.T + b
        out, params[name][0], params[name][1] = _calibrate(out, w, b, (calibrate or {}).get(name))
        trace[name] = out.std()
        h = relu(out) if name != "fc8" else out  # dropout is the identity at test time
    return h


def _lrn_ratio(before, after):
    """Mean |after|/|before| where the input is not ~0: how much LRN bites."""
    mask = np.abs(before) > 1e-3 * np.abs(before).max()
    return float(np.mean(np.abs(after[mask]) / np.abs(before[mask])))


def random_caffe_params(rng, classes=1000):
    shapes = {
        "conv1": (96, 3, 11, 11),
        "conv2": (256, 48, 5, 5),
        "conv3": (384, 256, 3, 3),
        "conv4": (384, 192, 3, 3),
        "conv5": (256, 192, 3, 3),
        "fc6": (4096, 9216),
        "fc7": (4096, 4096),
        "fc8": (classes, 4096),
    }
    return {
        k: [rng.standard_normal(s) / math.sqrt(np.prod(s[1:])), 0.1 * rng.standard_normal(s[0])]
        for k, s in shapes.items()
    }


# ------------------------------------------------------------------- cuda-convnet


def cc_conv(inputs, weights, bias, fs, stride=1, pad=0):
    """Multi-input cuda-convnet conv on CHW images; results of the inputs are summed.

    weights[i] is (C_i*fs*fs, F) with row c*fs*fs + y*fs + x; modules are
    1 + ceil((2*pad + size - fs) / stride) and pixels outside the image read 0.
    """
    size = inputs[0].shape[1]
    mods = 1 + math.ceil((2 * pad + size - fs) / stride)
    total = None
    for img, w in zip(inputs, weights, strict=True):
        c = img.shape[0]
        extra = (mods - 1) * stride + fs - (size + 2 * pad)
        xp = np.pad(img, ((0, 0), (pad, pad + max(extra, 0)), (pad, pad + max(extra, 0))))
        cols = np.empty((c, fs, fs, mods, mods))
        for y in range(fs):
            for x in range(fs):
                cols[:, y, x] = xp[
                    :, y : y + stride * mods : stride, x : x + stride * mods : stride
                ]
        out = w.T @ cols.reshape(c * fs * fs, mods * mods)
        total = out if total is None else total + out
    return (total + bias.reshape(-1, 1)).reshape(-1, mods, mods)


def cc_cmrnorm(x, size, scale, power, min_div):
    """cmrnorm over the channels of one GPU; `scale` as written in the cfg."""
    c = x.shape[0]
    sq = x**2
    s = np.zeros_like(x)
    for f in range(c):
        lo = f - size // 2
        s[f] = sq[max(0, lo) : min(c, lo + size)].sum(axis=0)
    return x * (min_div + (scale / size) * s) ** -power


def cc_rnorm(x, size, scale, power):
    """Same-map response norm: clipped size x size window starting at -size//2."""
    _, h, w = x.shape
    sq = x**2
    s = np.zeros_like(x)
    lo = -(size // 2)
    for y in range(h):
        for xx in range(w):
            y0, x0 = max(0, y + lo), max(0, xx + lo)
            s[:, y, xx] = sq[:, y0 : y + lo + size, x0 : xx + lo + size].sum(axis=(1, 2))
    return x * (1.0 + (scale / size**2) * s) ** -power


def cc_max_pool(x, size_x=3, stride=2, start=0):
    _, h, _ = x.shape
    out = math.ceil((h - start - size_x) / stride) + 1
    res = np.empty((x.shape[0], out, out))
    for i in range(out):
        for j in range(out):
            y0, x0 = start + i * stride, start + j * stride
            res[:, i, j] = x[:, y0 : min(y0 + size_x, h), x0 : min(x0 + size_x, h)].max(axis=(1, 2))
    return res


def cc_fc(inputs, weights, bias):
    """Sum over inputs of flatten(CHW) @ W_i, plus bias (1, out)."""
    total = sum(inp.reshape(-1) @ w for inp, w in zip(inputs, weights, strict=True))
    return total + bias.reshape(-1)


# The layers of layers-145.cfg with weights, by name: (inputs, per-input rows-shape).
CHM145 = {
    "conv1a": ["data"], "conv1b": ["data"],
    "conv2a": ["pool1a_neuron"], "conv2b": ["pool1b_neuron"],
    "conv3a": ["pool2a", "pool2b"], "conv3b": ["pool2a", "pool2b"],
    "conv4a": ["conv3a_neuron"], "conv4b": ["conv3b_neuron"],
    "conv5a": ["conv4a_neuron"], "conv5b": ["conv4b_neuron"],
    "fc2048a": ["pool3a_neuron", "pool3b_neuron"], "fc2048b": ["pool3a_neuron", "pool3b_neuron"],
    "fc2048ba": ["hs1a", "hs1b"], "fc2048bb": ["hs1b", "hs1a"],
    "fc1000": ["hs2a", "hs2b"],
}  # fmt: skip


def random_chm_layers(rng, classes=1000):
    """A layers-145-shaped cuda-convnet `layers` dict with random weights."""
    rows = {  # rows of each input's matrix, and outputs
        "conv1": ([3 * 121], 48), "conv2": ([48 * 25], 128), "conv3": ([128 * 9] * 2, 192),
        "conv4": ([192 * 9], 192), "conv5": ([192 * 9], 128),
        "fc2048": ([4608] * 2, 2048), "fc2048b": ([2048] * 2, 2048),
        "fc1000": ([2048] * 2, classes),
    }  # fmt: skip
    layers = {}
    for name, inputs in CHM145.items():
        key = name if name == "fc1000" else name[:-1]
        in_rows, out = rows[key]
        fan_in = sum(in_rows)
        layers[name] = {
            "inputs": inputs,
            "weights": [rng.standard_normal((r, out)) / math.sqrt(fan_in) for r in in_rows],
            "biases": 0.1 * rng.standard_normal((1, out)),
        }
    return layers


def cuda_convnet_forward(
    image, layers, lrn_per_gpu=True, min_div=2.0, keep=0.5, calibrate=None, trace=None
):
    """Logits of the CHM layers-145 net for one CHW RGB image (mean subtracted).

    `lrn_per_gpu=False` plants the bug of one LRN window across both halves.
    `calibrate` ({layer: target std}) rescales `layers` in place, one scale per
    a/b pair so the two towers stay comparable.
    """
    trace = {} if trace is None else trace
    acts = {"data": image}
    relu = lambda h: np.maximum(h, 0)  # noqa: E731

    def run(names, fn):
        outs = {n: fn(n) for n in names}
        stem = names[0][:-1] if len(names) == 2 else names[0]
        target = (calibrate or {}).get(stem)
        if target is not None:
            f = target / np.std(np.concatenate([o.ravel() for o in outs.values()]))
            for n in names:
                outs[n] = outs[n] * f
                layers[n]["weights"] = [w * f for w in layers[n]["weights"]]
                layers[n]["biases"] = layers[n]["biases"] * f
        trace[stem] = float(np.std(np.concatenate([o.ravel() for o in outs.values()])))
        acts.update(outs)

    def conv(fs, stride=1, pad=0):
        return lambda n: cc_conv(
            [acts[i] for i in layers[n]["inputs"]], layers[n]["weights"], layers[n]["biases"],
            fs, stride, pad,
        )  # fmt: skip

    def fc(n):
        return cc_fc(
            [acts[i] for i in layers[n]["inputs"]], layers[n]["weights"], layers[n]["biases"]
        )

    def cmrnorm(src_a, src_b):
        if lrn_per_gpu:
            return (
                cc_cmrnorm(acts[src_a], 5, 1e-4, 0.75, min_div),
                cc_cmrnorm(acts[src_b], 5, 1e-4, 0.75, min_div),
            )
        both = cc_cmrnorm(np.concatenate([acts[src_a], acts[src_b]]), 5, 1e-4, 0.75, min_div)
        return np.split(both, 2)

    run(["conv1a", "conv1b"], conv(11, stride=4))  # no neuron: LRN sees pre-ReLU values
    acts["rnorm1a"], acts["rnorm1b"] = cmrnorm("conv1a", "conv1b")
    trace["norm1_ratio"] = _lrn_ratio(acts["conv1a"], acts["rnorm1a"])
    for h in "ab":
        acts[f"pool1{h}_neuron"] = relu(cc_max_pool(acts[f"rnorm1{h}"]))
    run(["conv2a", "conv2b"], conv(5, pad=2))
    for h in "ab":
        acts[f"conv2{h}_neuron"] = relu(acts[f"conv2{h}"])
    acts["rnorm2a"], acts["rnorm2b"] = cmrnorm("conv2a_neuron", "conv2b_neuron")
    trace["norm2_ratio"] = _lrn_ratio(acts["conv2a_neuron"], acts["rnorm2a"])
    for h in "ab":
        acts[f"cnorm2{h}"] = cc_rnorm(acts[f"rnorm2{h}"], 5, 1e-3, 0.75)
        acts[f"pool2{h}"] = cc_max_pool(acts[f"cnorm2{h}"])
    trace["cnorm2_ratio"] = _lrn_ratio(acts["rnorm2a"], acts["cnorm2a"])
    for i, (src_relu) in ((3, True), (4, True), (5, False)):
        run([f"conv{i}a", f"conv{i}b"], conv(3, pad=1))
        if src_relu:
            for h in "ab":
                acts[f"conv{i}{h}_neuron"] = relu(acts[f"conv{i}{h}"])
    for h in "ab":
        acts[f"pool3{h}_neuron"] = relu(cc_max_pool(acts[f"conv5{h}"]))
    run(["fc2048a", "fc2048b"], fc)
    for h in "ab":
        acts[f"hs1{h}"] = keep * relu(acts[f"fc2048{h}"])  # hs: not inverted, x keep at test
    run(["fc2048ba", "fc2048bb"], fc)
    for h in "ab":
        acts[f"hs2{h}"] = keep * relu(acts[f"fc2048b{h}"])
    run(["fc1000"], fc)
    return acts["fc1000"]


def _pool_windows(h, size_x, stride, start, outputs):
    """`(i, j, rows, cols)` of each output: the window from `start + i*stride`, clipped."""
    for i in range(outputs):
        for j in range(outputs):
            y0, x0 = start + i * stride, start + j * stride
            rows = slice(max(y0, 0), min(y0 + size_x, h))
            cols = slice(max(x0, 0), min(x0 + size_x, h))
            yield i, j, rows, cols


def _avg_divisor(size_x, rows, cols, divisor):
    # 2011 (r331-r333): `AvgPooler(_sizeX*_sizeX)` and `a/_num` in conv_util.cuh: always sizeX^2.
    # 2012 (r556+, CHM): `AvgPooler()` gets the region size: the pixels inside the image.
    if divisor == "window":
        return size_x * size_x
    return (rows.stop - rows.start) * (cols.stop - cols.start)


def cc_pool(x, pool, size_x, stride, start, outputs, divisor="clipped"):
    """cuda-convnet max/avg pooling: windows clipped at the border; avg divides by the clipped
    window's pixel count (`divisor="clipped"`, 2012) or by sizeX^2 (`"window"`, 2011)."""
    c, h, _ = x.shape
    res = np.empty((c, outputs, outputs))
    for i, j, rows, cols in _pool_windows(h, size_x, stride, start, outputs):
        win = x[:, rows, cols]
        if pool == "max":
            res[:, i, j] = win.max(axis=(1, 2))
        else:
            res[:, i, j] = win.sum(axis=(1, 2)) / _avg_divisor(size_x, rows, cols, divisor)
    return res


def cc_avg_pool_backward(grad, h, size_x, stride, start, divisor="clipped"):
    """The input gradient of cuda-convnet's average pool (`convLocalAvgUndo`): each output's
    gradient spread evenly over its window's pixels, divided as the forward divides
    (2011: `subsX*subsX`, `conv_util.cu` l.409, 419; 2012: the clipped area)."""
    c, outputs, _ = grad.shape
    out = np.zeros((c, h, h))
    for i, j, rows, cols in _pool_windows(h, size_x, stride, start, outputs):
        out[:, rows, cols] += (grad[:, i, j] / _avg_divisor(size_x, rows, cols, divisor))[
            :, None, None
        ]
    return out


_NEURONS = {
    "relu": lambda h, p: np.maximum(h, 0),
    "ident": lambda h, p: h,
    "logistic": lambda h, p: 1 / (1 + np.exp(-h)),
    "tanh": lambda h, p: (p or (1, 1))[0] * np.tanh((p or (1, 1))[1] * h),
    "abs": lambda h, p: np.abs(h),
}


def cuda_convnet_net_forward(net, image, layers, config):
    """Any cfg net (a `chm_cfg.ChmNet`) on one CHW image; returns every layer's activation.

    `layers` holds cuda-convnet arrays (`weights` per input in the layer's
    `inputs` order, `biases`); `config` is the net's training config (norm
    constants). The graph and hyper-parameters come from the parsed cfg; the
    arithmetic is cuda-convnet's, written here from its semantics.
    """
    acts = {}
    for layer in net.layers:
        p, kind = layer.params, layer.type
        ins = [acts[i] for i in layer.inputs if i in acts]
        if kind == "data":
            if p["dataIdx"] == 0:
                acts[layer.name] = image
            continue
        if kind == "conv":
            w = layers[layer.name]
            out = cc_conv(ins, w["weights"], w["biases"], p["filterSize"][0], p["stride"][0],
                          p["padding"][0])  # fmt: skip
        elif kind == "fc":
            w = layers[layer.name]
            out = cc_fc(ins, w["weights"], w["biases"])
        elif kind == "pool":
            divisor = "window" if net.semantics == "2011" else "clipped"
            out = cc_pool(ins[0], p["pool"], p["sizeX"], p["stride"], p["start"],
                          layer.output_shape[1], divisor)  # fmt: skip
        elif kind == "cmrnorm":
            c = config["layers"][layer.name]
            out = cc_cmrnorm(ins[0], p["size"], c["scale"], c["pow"], c["minDiv"])
        elif kind == "rnorm":
            c = config["layers"][layer.name]
            out = cc_rnorm(ins[0], p["size"], c["scale"], c["pow"])
        elif kind == "neuron":
            name, _, rest = p["neuron"].partition("[")
            params = tuple(float(v) for v in rest.rstrip("]").split(",")) if rest else ()
            out = _NEURONS[name](ins[0], params)
        elif kind == "hs":
            out = p["keep"] * ins[0]  # not inverted: x keep at test time
        elif kind == "softmax":
            e = np.exp(ins[0] - ins[0].max())
            out = e / e.sum()
        elif kind == "concat":
            out = np.concatenate([a.reshape(-1) for a in ins])
        else:  # cost layers
            continue
        acts[layer.name] = out
    return acts

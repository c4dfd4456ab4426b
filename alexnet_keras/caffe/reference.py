"""A plain float64 NumPy forward pass of Caffe's AlexNet, for `--verify-images`.

Written from Caffe's layer semantics (BVLC `src/caffe/layers/*.cpp`,
formats.md §4 and §7), in Caffe's own layouts: NCHW activations, conv
weights `(out, in/group, kh, kw)`, fc weights `(out, in)` over the NCHW
flatten. It shares nothing with the Keras model or the mapper, so agreement
between the two is evidence that the conversion is right.

- Convolution: cross-correlation, output size `floor((H + 2p - k) / s) + 1`,
  groups split the channels in order.
- Max pooling: output size `ceil((H - k) / s) + 1`, window clipped at the
  border (Caffe's default `round_mode: CEIL`).
- LRN (ACROSS_CHANNELS): `x * (k + alpha / n * sum_window x^2) ** -beta`,
  the window clipped at the first and last channel.
"""

import math

import numpy as np

__all__ = ["ALEXNET", "forward"]

# models/bvlc_alexnet/deploy.prototxt: (stride, pad, group) per conv.
_CONV = {"conv1": (4, 0, 1), "conv2": (1, 2, 2), "conv3": (1, 1, 1),
         "conv4": (1, 1, 2), "conv5": (1, 1, 2)}  # fmt: skip
ALEXNET = {"lrn": {"local_size": 5, "alpha": 1e-4, "beta": 0.75, "k": 1.0}, "pool": (3, 2)}


def conv(x, w, b, stride, pad, group):
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    kh, kw = w.shape[2:]
    win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))
    win = win[:, :, ::stride, ::stride]  # (N, C, Ho, Wo, kh, kw)
    outs = []
    for xs, ws in zip(np.split(win, group, axis=1), np.split(w, group, axis=0), strict=False):
        outs.append(np.einsum("nchwij,ocij->nohw", xs, ws, optimize=True))
    return np.concatenate(outs, axis=1) + b[None, :, None, None]


def max_pool(x, size, stride):
    h, w = x.shape[2:]
    ho = math.ceil((h - size) / stride) + 1
    wo = math.ceil((w - size) / stride) + 1
    # Pad with -inf so a clipped window takes the max of what it covers.
    x = np.pad(
        x,
        ((0, 0), (0, 0), (0, (ho - 1) * stride + size - h), (0, (wo - 1) * stride + size - w)),
        constant_values=-np.inf,
    )
    win = np.lib.stride_tricks.sliding_window_view(x, (size, size), axis=(2, 3))
    return win[:, :, ::stride, ::stride].max(axis=(4, 5))


def lrn(x, local_size, alpha, beta, k):
    half = local_size // 2
    sq = np.pad(x * x, ((0, 0), (half, half), (0, 0), (0, 0)))
    total = np.lib.stride_tricks.sliding_window_view(sq, local_size, axis=1).sum(axis=-1)
    return x * (k + alpha / local_size * total) ** -beta


def forward(blobs, images, order="lrn_pool", lrn_params=None):
    """AlexNet logits (fc8, before softmax) of Caffe-layout weights.

    Args:
        blobs: `{layer: [W, b]}` in Caffe layout (see `mapper.caffe_blobs`).
        images: `(N, C, H, W)` float, BGR, mean already subtracted.
        order: "lrn_pool" (bvlc_alexnet) or "pool_lrn" (CaffeNet).
        lrn_params: overrides `ALEXNET["lrn"]`.

    Returns:
        `(N, classes)` float64 logits.
    """
    lrn_params = {**ALEXNET["lrn"], **(lrn_params or {})}
    x = np.asarray(images, np.float64)
    for i in range(1, 6):
        name = f"conv{i}"
        x = np.maximum(conv(x, *blobs[name], *_CONV[name]), 0)
        if i in (1, 2):
            if order == "lrn_pool":
                x = max_pool(lrn(x, **lrn_params), *ALEXNET["pool"])
            else:
                x = lrn(max_pool(x, *ALEXNET["pool"]), **lrn_params)
    x = max_pool(x, *ALEXNET["pool"]).reshape(len(x), -1)  # NCHW flatten, as Caffe's fc6
    for name in ("fc6", "fc7"):
        w, b = blobs[name]
        x = np.maximum(x @ w.T + b, 0)
    w, b = blobs["fc8"]
    return x @ w.T + b

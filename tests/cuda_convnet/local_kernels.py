"""numpy transcriptions of cuda-convnet 1's `local` and `cnorm` kernels, in its layouts.

Written from the kernels (github `dnouri/cuda-convnet`), pixel by pixel, with
images `(C, H, W, numCases)`, sharing nothing with the Keras layers:

- local forward: `filterActs_YxX_color` with `conv=false` (`filter_acts.cu`
  l.85-87, 129-131): module `m = my * modulesX + mx` reads `x = -pad + mx *
  stride + p % fs`, `y = -pad + my * stride + p / fs`, zero outside, weight
  row `(m * fc + c) * fs * fs + p`; bias row `f * modules + m` (`layer.cu`
  l.559-561). Backward: `localImgActs` / `localWeightActs` are the exact
  adjoints of that sum, written here as the same loops run backwards.
- cnorm forward: `ContrastNormLayer::fpropActs` (`layer.cu` l.916-921) and
  `kCNorm_fewfilter` (`conv_util.cu` l.747-808); backward: `kRNormUndoPrelims`
  + `kRNormUndo` on the mean differences (`conv_util.cu` l.1592-1700,
  2214-2217).
"""

import math

import numpy as np


def modules(size, fs, stride, pad):
    """cuda-convnet's module count per side (`layer.py` l.890)."""
    return 1 + math.ceil((2 * pad + size - fs) / stride)


def _local_pixels(size, fs, stride, pad, groups, channels, filters):
    """Yields `(m, my, mx, f, c, channel, p, y, x)` for every in-image read of the local kernel."""
    mods = modules(size, fs, stride, pad)
    fc, fg = channels // groups, filters // groups
    for my in range(mods):
        for mx in range(mods):
            for f in range(filters):
                g = f // fg
                for c in range(fc):
                    for p in range(fs * fs):
                        y, x = -pad + my * stride + p // fs, -pad + mx * stride + p % fs
                        if 0 <= y < size and 0 <= x < size:
                            yield my * mods + mx, my, mx, f, c, g * fc + c, p, y, x


def np_local(images, w, b, fs, stride, pad, groups, filters):
    """Forward: images `(C, S, S, N)`, w `(modules*fc*fs*fs, F)`, b `(F*modules, 1)`."""
    channels, size = images.shape[0], images.shape[1]
    mods, fc = modules(size, fs, stride, pad), channels // groups
    out = np.zeros((filters, mods, mods, images.shape[3]))
    for m, my, mx, f, c, ch, p, y, x in _local_pixels(size, fs, stride, pad, groups, channels,
                                                      filters):  # fmt: skip
        out[f, my, mx] += w[(m * fc + c) * fs * fs + p, f] * images[ch, y, x]
    return out + b.reshape(filters, mods, mods, 1)


def np_local_grads(images, w, grads, fs, stride, pad, groups, filters):
    """`(d images, d w, d b)` for output gradients `(F, modules, modules, N)`."""
    channels, size = images.shape[0], images.shape[1]
    fc = channels // groups
    gi, gw = np.zeros_like(images), np.zeros_like(w)
    for m, my, mx, f, c, ch, p, y, x in _local_pixels(size, fs, stride, pad, groups, channels,
                                                      filters):  # fmt: skip
        row = (m * fc + c) * fs * fs + p
        gi[ch, y, x] += w[row, f] * grads[f, my, mx]
        gw[row, f] += (images[ch, y, x] * grads[f, my, mx]).sum()
    return gi, gw, grads.sum(axis=3).reshape(-1, 1)


def _window(i, size, n):
    first = i - size // 2  # convLocalPool(start=-size/2): C's -size/2 truncates toward 0
    return range(max(first, 0), min(first + size, n))


def np_cnorm(images, size, scale, power, full_window):
    """`(y, meanDiffs, denoms)`; scale is the cfg's, divided by size**2 as layer.py does."""
    scale = scale / size**2
    n = images.shape[1]
    diffs, denoms = np.empty_like(images), np.empty_like(images)
    for y in range(n):
        for x in range(n):
            pixels = [(a, b) for a in _window(y, size, n) for b in _window(x, size, n)]
            total = sum(images[:, a, b] for a, b in pixels)
            diffs[:, y, x] = images[:, y, x] - total / (size**2 if full_window else len(pixels))
    for y in range(n):
        for x in range(n):
            squares = sum(
                diffs[:, a, b] ** 2 for a in _window(y, size, n) for b in _window(x, size, n)
            )
            denoms[:, y, x] = 1 + scale * squares
    return images * denoms**-power, diffs, denoms


def np_cnorm_grad(images, grads, size, scale, power, full_window):
    """cuda-convnet's gradient: convResponseNormUndo with inputs = meanDiffs."""
    acts, diffs, denoms = np_cnorm(images, size, scale, power, full_window)
    prelim = -2 * (scale / size**2) * power * grads * acts / denoms
    n, out = images.shape[1], np.empty_like(images)
    for y in range(n):
        ys = range(max(0, y + size // 2 - size + 1), min(n, y + size // 2 + 1))
        for x in range(n):
            xs = range(max(0, x + size // 2 - size + 1), min(n, x + size // 2 + 1))
            total = sum(prelim[:, a, b] for a in ys for b in xs)
            out[:, y, x] = diffs[:, y, x] * total + grads[:, y, x] * denoms[:, y, x] ** -power
    return out


def nhwc(a):
    """`(C, H, W, N)` -> float32 `(N, H, W, C)`."""
    return np.ascontiguousarray(a.transpose(3, 1, 2, 0)).astype(np.float32)


def chwn(a):
    """`(N, H, W, C)` -> float64 `(C, H, W, N)`."""
    return np.asarray(a, np.float64).transpose(3, 1, 2, 0)

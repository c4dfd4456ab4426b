"""ConvnetLocal2D (unshared weights) against a keras Conv2D of the same shape.

The default shape is `local3` of `layers-conv-local-13pct.cfg` on 24x24 crops
(input 6x6x64, 3x3 filters, padding 1, 32 filters) at batch 128. Forward and
forward+backward (gradients w.r.t. the input and the weights), each compiled
with `tf.function`; the two layers alternate, medians of `--repeats` calls per
round over `--rounds` rounds.

Usage:
    python benchmarks/bench_local.py [--batch 128] [--size 6] [--channels 64]
"""

import argparse
import json
import statistics
import sys
import time

import alexnet_keras  # noqa: F401  (first: sets the TF environment before TF loads)

# isort: split
import keras
import numpy as np
import tensorflow as tf

from alexnet_keras.cuda_convnet.local_layers import ConvnetLocal2D


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--size", type=int, default=6, help="input side (local3 at 24 crops: 6)")
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--filters", type=int, default=32)
    parser.add_argument("--filter-size", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", help="also write the medians here")
    return parser.parse_args(argv)


def _median_ms(fn, x, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for t in fn(x):
            t.numpy()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def _functions(layer, x, r):
    def fwd(v):
        return [layer(v)]

    def fwd_bwd(v):
        with tf.GradientTape() as tape:
            tape.watch(v)
            loss = tf.reduce_sum(layer(v) * r)
        return tape.gradient(loss, [v, *layer.trainable_variables])

    fns = (tf.function(fwd), tf.function(fwd_bwd))
    for fn in fns:
        fn(x)  # trace and warm up
    return fns


def main(argv=None):
    args = _parse(argv)
    fs, pad = args.filter_size, args.filter_size // 2
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(0, 1, (args.batch, args.size, args.size, args.channels)), "float32")
    layers = {
        "ConvnetLocal2D": ConvnetLocal2D(args.filters, fs, 1, pad),
        "keras Conv2D": keras.layers.Conv2D(args.filters, fs, padding="same"),
    }
    fns = {}
    for name, layer in layers.items():
        out = layer(x)
        r = tf.constant(rng.normal(size=out.shape), "float32")
        fns[name] = _functions(layer, x, r)
    times = {name: ([], []) for name in fns}
    for _ in range(args.rounds):
        for name, (fwd, fwd_bwd) in fns.items():
            times[name][0].append(_median_ms(fwd, x, args.repeats))
            times[name][1].append(_median_ms(fwd_bwd, x, args.repeats))
    print(f"input {tuple(x.shape)}, {fs}x{fs} filters, padding {pad}, {args.filters} filters")
    medians = {n: [statistics.median(t) for t in pair] for n, pair in times.items()}
    for name, (f, b) in medians.items():
        print(f"{name:15s} fwd {f:8.2f} ms   fwd+bwd {b:8.2f} ms")
    (lf, lb), (cf, cb) = medians["ConvnetLocal2D"], medians["keras Conv2D"]
    print(f"local / conv: fwd {lf / cf:.2f}x   fwd+bwd {lb / cb:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "medians_ms": medians}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""LocalResponseNormalization alone: TF's fused kernel vs the band-matmul path.

Forward and forward+backward (gradient w.r.t. the input) on AlexNet's two LRN
tensors at batch 64, both implementations alternated, medians of 5 calls per
round over 2 rounds.

Usage:
    python benchmarks/bench_lrn.py
"""

import statistics
import time

import alexnet_keras  # noqa: F401  (first: sets the TF environment before TF loads)

# isort: split
import numpy as np
import tensorflow as tf

from alexnet_keras.layers import LocalResponseNormalization

SHAPES = {"norm1 (conv1 output)": (64, 55, 55, 96), "norm2 (conv2 output)": (64, 27, 27, 256)}


def median_ms(fn, x, repeats=5):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(x).numpy()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main():
    for label, shape in SHAPES.items():
        rng = np.random.default_rng(0)
        x = tf.constant(rng.normal(0, 50, shape), tf.float32)
        r = tf.constant(rng.normal(size=shape), tf.float32)
        fns = {}
        for impl in ("kernel", "matmul"):
            layer = LocalResponseNormalization(implementation=impl)

            def grad(v, layer=layer, r=r):
                with tf.GradientTape() as tape:
                    tape.watch(v)
                    loss = tf.reduce_sum(layer(v) * r)
                return tape.gradient(loss, v)

            fwd, bwd = tf.function(lambda v, layer=layer: layer(v)), tf.function(grad)
            fwd(x), bwd(x)
            fns[impl] = (fwd, bwd)
        results = {impl: ([], []) for impl in fns}
        for _ in range(2):
            for impl, (fwd, bwd) in fns.items():
                results[impl][0].append(median_ms(fwd, x))
                results[impl][1].append(median_ms(bwd, x))
        for impl, (f, b) in results.items():
            print(f"{label:22s} {impl:7s} fwd {statistics.median(f):5.0f} ms   "
                  f"fwd+bwd {statistics.median(b):5.0f} ms")  # fmt: skip


if __name__ == "__main__":
    main()

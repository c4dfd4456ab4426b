"""What ending an epoch costs: the iterator's delete, tf.data autotuned or `prefetched`.

A trainer makes one iterator per epoch. With tf.data's autotuning on, deleting
it can wait for the autotuning thread's current sleep (the sleeps double from
10 ms), so an epoch of 21 s of steps can end 20 s later, at 40.95 s; which
epochs stall varies. `prefetched` (the tail of every pipeline here) turns
autotuning off. This runs epochs of cuda-convnet's CIFAR provider shape (a
gather of 128 32x32x3 images minus a mean, `--steps` batches) into a compiled
step of `--work` matmuls that keeps the cores busy, as training does,
alternating the two kinds epoch by epoch. It reports, per kind, the seconds of
steps and the seconds from the last step to the end of the loop (the delete),
medians and maxima over `--epochs` epochs each.

Usage:
    python benchmarks/bench_epoch_boundary.py [--epochs 3] [--steps 390] [--work 40]
"""

import argparse
import json
import statistics
import sys
import time

import alexnet_keras  # noqa: F401  (first: sets the TF environment before TF loads)

# isort: split
import numpy as np
import tensorflow as tf

from alexnet_keras.data.prefetch import prefetched

KINDS = ("autotuned", "prefetched")


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="epochs of each kind")
    parser.add_argument("--steps", type=int, default=390, help="batches of 128 per epoch")
    parser.add_argument("--work", type=int, default=40, help="matmuls per step")
    parser.add_argument("--json", help="also write the results here")
    return parser.parse_args(argv)


def _pipeline(kind, images, mean, steps, epoch):
    def gather(index):
        return tf.cast(tf.gather(images, index), tf.float32) - mean

    order = np.random.default_rng(epoch).permutation(len(images))[: steps * 128]
    ds = tf.data.Dataset.from_tensor_slices(order.astype(np.int64)).batch(128).map(gather)
    return ds.prefetch(tf.data.AUTOTUNE) if kind == "autotuned" else prefetched(ds)


def _step_fn(work):
    w = tf.constant(np.random.default_rng(1).normal(size=(32 * 32 * 3, 256)), tf.float32)

    @tf.function
    def step(x):
        h = tf.reshape(x, (-1, 32 * 32 * 3))
        for _ in range(work):
            h = h + tf.reduce_mean(tf.matmul(h, w))
        return tf.reduce_sum(h)

    return step


def _epoch(ds, step):
    """`(seconds of steps, seconds from the last step to the end of the loop)`."""
    began = last = time.perf_counter()
    for x in ds:
        step(x).numpy()
        last = time.perf_counter()
    return last - began, time.perf_counter() - last


def main(argv=None):
    args = _parse(argv)
    rng = np.random.default_rng(0)
    images = tf.constant(rng.integers(0, 256, (max(args.steps * 128, 128), 32, 32, 3), np.uint8))
    mean = tf.constant(rng.uniform(0, 255, (32, 32, 3)).astype(np.float32))
    step = _step_fn(args.work)
    step(tf.zeros((128, 32, 32, 3)))  # trace outside the timed epochs
    times = {kind: ([], []) for kind in KINDS}
    for epoch in range(args.epochs):
        for kind in KINDS:
            ds = _pipeline(kind, images, mean, args.steps, epoch)
            for out, t in zip(times[kind], _epoch(ds, step), strict=True):
                out.append(t)
    result = {kind: {"steps_s": statistics.median(s), "end_s_median": statistics.median(e),
                     "end_s_max": max(e), "end_s": e}
              for kind, (s, e) in times.items()}  # fmt: skip
    print(f"{args.epochs} epochs of each kind, {args.steps} steps, medians (max):")
    print(f"{'kind':12s}{'steps s':>10s}{'end of loop s':>22s}")
    for kind, r in result.items():
        end = f"{r['end_s_median']:.2f} ({r['end_s_max']:.2f})"
        print(f"{kind:12s}{r['steps_s']:10.2f}{end:>22s}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": result}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

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

`--loop keras-fit` runs the same batches (with labels) through Keras' own
`model.fit(ds, epochs=N)` instead, one kind after the other: a Keras model of
`--work` Dense layers. Keras makes one iterator per epoch as well, and drops the
last one when the next epoch starts, so the delete shows as the time from an
epoch's start to its first batch (reported for every epoch after the first).

Usage:
    python benchmarks/bench_epoch_boundary.py [--epochs 3] [--steps 390] [--work 40]
        [--loop iterator|keras-fit]
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
    parser.add_argument("--loop", choices=("iterator", "keras-fit"), default="iterator",
                        help="a loop over one iterator per epoch, or Keras model.fit")  # fmt: skip
    parser.add_argument("--json", help="also write the results here")
    return parser.parse_args(argv)


def _pipeline(kind, images, mean, steps, epoch):
    def gather(index):
        return tf.cast(tf.gather(images, index), tf.float32) - mean

    order = np.random.default_rng(epoch).permutation(len(images))[: steps * 128]
    ds = tf.data.Dataset.from_tensor_slices(order.astype(np.int64)).batch(128).map(gather)
    return _tail(kind, ds)


def _tail(kind, ds):
    """The pipeline's end: autotuned (`prefetch(AUTOTUNE)` alone) or `prefetched`."""
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


def _iterator_times(images, mean, args):
    """Per kind, (seconds of steps, seconds from the last step to the loop's end) per epoch,
    the kinds alternated epoch by epoch."""
    step = _step_fn(args.work)
    step(tf.zeros((128, 32, 32, 3)))  # trace outside the timed epochs
    times = {kind: ([], []) for kind in KINDS}
    for epoch in range(args.epochs):
        for kind in KINDS:
            ds = _pipeline(kind, images, mean, args.steps, epoch)
            for out, t in zip(times[kind], _epoch(ds, step), strict=True):
                out.append(t)
    return times


def _epoch(ds, step):
    """`(seconds of steps, seconds from the last step to the end of the loop)`."""
    began = last = time.perf_counter()
    for x in ds:
        step(x).numpy()
        last = time.perf_counter()
    return last - began, time.perf_counter() - last


def _fit_times(kind, images, mean, args):
    """`model.fit` over `args.epochs` epochs: (seconds of steps, seconds from each later
    epoch's start to its first batch), per epoch."""
    import keras

    count = args.steps * 128
    labels = tf.constant(np.random.default_rng(2).integers(0, 10, count).astype(np.int32))

    def gather(index):
        return tf.cast(tf.gather(images, index), tf.float32) - mean, tf.gather(labels, index)

    ds = _tail(kind, tf.data.Dataset.range(count).shuffle(count, seed=0).batch(128).map(gather))
    layers = [keras.layers.Dense(256, activation="relu") for _ in range(args.work)]
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(), *layers,
                              keras.layers.Dense(10)])  # fmt: skip
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    steps, starts, clock = [], [], {}

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            clock["begin"] = time.perf_counter()

        def on_train_batch_begin(self, batch, logs=None):
            if batch == 0:
                clock["first"] = time.perf_counter()
                if clock.get("epochs"):
                    starts.append(clock["first"] - clock["begin"])

        def on_epoch_end(self, epoch, logs=None):
            steps.append(time.perf_counter() - clock["first"])
            clock["epochs"] = clock.get("epochs", 0) + 1

    # the dataset shuffles itself; fit's own shuffle does not apply to a tf.data.Dataset
    model.fit(ds, epochs=args.epochs, verbose=0, callbacks=[Clock()], shuffle=False)
    return steps, starts or [0.0]


def main(argv=None):
    args = _parse(argv)
    rng = np.random.default_rng(0)
    images = tf.constant(rng.integers(0, 256, (max(args.steps * 128, 128), 32, 32, 3), np.uint8))
    mean = tf.constant(rng.uniform(0, 255, (32, 32, 3)).astype(np.float32))
    if args.loop == "keras-fit":
        times = {kind: _fit_times(kind, images, mean, args) for kind in KINDS}
    else:
        times = _iterator_times(images, mean, args)
    result = {kind: {"steps_s": statistics.median(s), "end_s_median": statistics.median(e),
                     "end_s_max": max(e), "end_s": e}
              for kind, (s, e) in times.items()}  # fmt: skip
    boundary = "epoch start to 1st batch s" if args.loop == "keras-fit" else "end of loop s"
    print(f"{args.loop}: {args.epochs} epochs of each kind, {args.steps} steps, medians (max):")
    print(f"{'kind':12s}{'steps s':>10s}{boundary:>30s}")
    for kind, r in result.items():
        end = f"{r['end_s_median']:.2f} ({r['end_s_max']:.2f})"
        print(f"{kind:12s}{r['steps_s']:10.2f}{end:>30s}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": result}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Where AlexNet's inference time goes: cumulative forward time up to each layer.

Times the model truncated after each layer (batch 64, bvlc at 227, medians of
5 calls); the difference between consecutive rows is that layer's share, and
the GFLOP/s column relates conv and fc layers to their multiply-adds.

Usage:
    python benchmarks/profile_layers.py [--batch 64] [--variant bvlc]
"""

import argparse
import statistics
import time

import alexnet_keras  # noqa: F401  (first: sets the TF environment before TF loads)

# isort: split
import keras
import numpy as np
import tensorflow as tf


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--variant", default="bvlc")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    model = alexnet_keras.AlexNet(variant=args.variant, classifier_activation=None)
    size = model.input_shape[1]
    x = tf.constant(np.random.default_rng(0).normal(0, 50, (args.batch, size, size, 3)), tf.float32)
    previous = 0.0
    print(f"{'layer':10s} {'cumulative ms':>14s} {'layer ms':>9s} {'GFLOP/s':>8s}")
    for layer in model.layers[1:]:
        head = keras.Model(model.input, layer.output)
        run = tf.function(lambda v, head=head: head(v, training=False))
        run(x).numpy()
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            run(x).numpy()
            times.append(time.perf_counter() - start)
        total = statistics.median(times)
        share = total - previous
        flops = ""
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)) and share > 0:
            out = layer.output.shape
            macs = np.prod(layer.kernel.shape) * (out[1] * out[2] if len(out) == 4 else 1)
            flops = f"{2 * macs * args.batch / share / 1e9:8.0f}"
        print(f"{layer.name:10s} {1000 * total:14.0f} {1000 * share:9.0f} {flops}")
        previous = total


if __name__ == "__main__":
    main()

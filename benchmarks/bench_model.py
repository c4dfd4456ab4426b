"""AlexNet training and inference throughput: Keras implementations vs PyTorch.

Measures `bvlc` at 227, batch 64 by default, on the current device, for:

- `keras`: `AlexNet(...)` as shipped: `GroupedConv2D` (implementation "auto": split
  grouped convs) and `LocalResponseNormalization` (TF's fused LRN kernel);
- `keras-native`: the same graph with `GroupedConv2D(implementation="native")`
  (one grouped `tf.nn.conv2d`; needs oneDNN on CPU);
- `keras-stock`: the same graph with stock `keras.layers.Conv2D(groups=2)`;
- `keras-lrnmatmul`: the shipped graph with `LocalResponseNormalization(implementation="matmul")`
  (band-matrix window sums, rsqrt powers);
- `keras-bf16`: the shipped graph under Keras' `mixed_bfloat16` policy (bf16 compute,
  float32 variables: `train --mixed-precision bf16`), for CPUs with AVX-512 BF16 or AMX;
- `torch-eager` and `torch-compile`: a PyTorch model of the same network with
  Caffe semantics (`LocalResponseNorm(5, 1e-4, 0.75, 1)`, ceil-mode pooling), when
  the `bench` extra (torch) is installed.

The implementations run in alternation, round after round, in this one process,
so machine noise spreads over all of them; the figures are medians over rounds
and steps. A large float32 matmul, timed in the same run, gives the machine's
peak; AlexNet counts as 0.724 GMAC forward per 227 image (computed from the
layers below), i.e. 1.45 GFLOP per inference image and 3 x 1.45 - 0.21 = 4.14
GFLOP per training image (no input gradient for conv1).

Usage:
    python benchmarks/bench_model.py [--batch 64] [--rounds 3] [--steps 5]
        [--only keras,torch-eager] [--json results.json]
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

import alexnet_keras  # noqa: F401  (first: sets TF_ENABLE_ONEDNN_OPTS before TF loads)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from alexnet_keras import AlexNet  # noqa: E402
from alexnet_keras.layers import GroupedConv2D, LocalResponseNormalization  # noqa: E402

SIZE = 227
CLASSES = 1000


def count_macs(model):
    """Multiply-accumulates of one forward pass, per layer with weights."""
    macs = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, h, w, cout = layer.output.shape
            kh, kw, cin_g, _ = layer.kernel.shape
            macs[layer.name] = h * w * kh * kw * cin_g * cout
        elif isinstance(layer, keras.layers.Dense):
            macs[layer.name] = int(np.prod(layer.kernel.shape))
    return macs


# ----------------------------------------------------------------------- Keras


MIXED = {"bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


def keras_model(kind):
    if kind in MIXED:  # mixed precision: bf16/fp16 compute, float32 variables
        previous = keras.mixed_precision.global_policy()
        keras.mixed_precision.set_global_policy(MIXED[kind])
        try:
            return AlexNet(variant="bvlc", classifier_activation=None)
        finally:
            keras.mixed_precision.set_global_policy(previous)
    model = AlexNet(variant="bvlc", classifier_activation=None)
    if kind == "shipped":
        return model

    def swap(layer):
        config = layer.get_config()
        if kind == "lrnmatmul" and isinstance(layer, LocalResponseNormalization):
            return LocalResponseNormalization.from_config({**config, "implementation": "matmul"})
        if not isinstance(layer, GroupedConv2D) or kind == "lrnmatmul":
            return layer.__class__.from_config(config)
        if kind == "native":
            return GroupedConv2D.from_config({**config, "implementation": "native"})
        config.pop("implementation")
        return keras.layers.Conv2D.from_config(config)  # stock: forced-XLA grouped conv

    return keras.models.clone_model(model, clone_function=swap)


class KerasBench:
    """A Keras model of `kind` (see `keras_model`), its train step and inference on one batch;
    `jit` compiles both with XLA."""

    def __init__(self, kind, batch, jit=False):
        self.model = keras_model(kind)
        self.opt = keras.optimizers.SGD(0.01, momentum=0.9)
        rng = np.random.default_rng(0)
        self.x = tf.constant(rng.normal(0, 50, (batch, SIZE, SIZE, 3)), tf.float32)
        self.y = tf.constant(rng.integers(0, CLASSES, batch), tf.int32)
        model, opt = self.model, self.opt

        @tf.function(jit_compile=jit)
        def train_step(x, y):
            with tf.GradientTape() as tape:
                logits = tf.cast(model(x, training=True), tf.float32)
                loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
            grads = tape.gradient(loss, model.trainable_variables)
            opt.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            return loss

        @tf.function(jit_compile=jit)
        def infer(x):
            return model(x, training=False)

        self._train, self._infer = train_step, infer

    def train(self):
        self._train(self.x, self.y).numpy()

    def infer(self):
        self._infer(self.x).numpy()


# --------------------------------------------------------------------- PyTorch


def torch_model():
    from torch import nn

    def conv(cin, cout, k, stride=1, pad=0, groups=1):
        return nn.Conv2d(cin, cout, k, stride=stride, padding=pad, groups=groups)

    def pool():
        return nn.MaxPool2d(3, 2, ceil_mode=True)  # Caffe rounds pooling up

    def lrn():
        return nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)  # divides alpha by size

    return nn.Sequential(
        conv(3, 96, 11, stride=4), nn.ReLU(), lrn(), pool(),
        conv(96, 256, 5, pad=2, groups=2), nn.ReLU(), lrn(), pool(),
        conv(256, 384, 3, pad=1), nn.ReLU(),
        conv(384, 384, 3, pad=1, groups=2), nn.ReLU(),
        conv(384, 256, 3, pad=1, groups=2), nn.ReLU(), pool(),
        nn.Flatten(),
        nn.Linear(9216, 4096), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(4096, CLASSES),
    )  # fmt: skip


class TorchBench:
    def __init__(self, compiled, batch):
        import torch

        self.torch = torch
        self.model = torch_model()
        self.runner = torch.compile(self.model) if compiled else self.model
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(batch, 3, SIZE, SIZE, generator=gen) * 50
        self.y = torch.randint(0, CLASSES, (batch,), generator=gen)
        self.loss = torch.nn.CrossEntropyLoss()

    def train(self):
        self.model.train()
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss(self.runner(self.x), self.y)
        loss.backward()
        self.opt.step()
        loss.item()

    def infer(self):
        self.model.eval()
        with self.torch.inference_mode():
            self.runner(self.x).sum().item()


# ------------------------------------------------------------------- harness


def time_calls(fn, n):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def matmul_peak(n=4096, repeats=5):
    """float32 GFLOP/s of an n x n matmul, per library; the best is the machine's peak."""
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    flop = 2 * n**3
    peaks = {}
    np.dot(a, a)
    peaks["numpy"] = flop / min(time_calls(lambda: np.dot(a, a), repeats)) / 1e9
    ta = tf.constant(a)
    tf.linalg.matmul(ta, ta).numpy()
    peaks["tensorflow"] = (
        flop / min(time_calls(lambda: tf.linalg.matmul(ta, ta).numpy(), repeats)) / 1e9
    )
    try:
        import torch

        t = torch.from_numpy(a)
        torch.mm(t, t)
        peaks["torch"] = flop / min(time_calls(lambda: torch.mm(t, t), repeats)) / 1e9
    except ImportError:
        pass
    return peaks


def cpu_flags():
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return "unknown"
    flags = set(text.split("flags", 1)[1].split("\n", 1)[0].split()) if "flags" in text else set()
    model = next(
        (ln.split(":", 1)[1].strip() for ln in text.splitlines() if "model name" in ln), ""
    )
    wanted = ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile"]
    return f"{model} [{' '.join(f for f in wanted if f in flags)}]"


def build_benches(names, batch):
    benches = {}
    for name in names:
        t = time.perf_counter()
        try:
            if name == "keras" or name.startswith("keras-"):
                bench = KerasBench(name.partition("-")[2] or "shipped", batch)
            else:
                bench = TorchBench(name == "torch-compile", batch)
            bench.train()  # first call: tracing / compiling, excluded from the timings
            bench.infer()
        except ImportError:
            print(f"  {name}: skipped (torch is not installed; pip install -e '.[bench]')")
            continue
        except Exception as e:  # noqa: BLE001 - report and go on with the others
            print(f"  {name}: failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
            continue
        print(f"  {name}: ready, first train+infer step {time.perf_counter() - t:.1f} s")
        benches[name] = bench
    return benches


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per round")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per implementation")
    parser.add_argument(
        "--only",
        default="keras,keras-native,keras-stock,keras-lrnmatmul,torch-eager,torch-compile",
        help="comma-separated implementations",
    )
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)

    try:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    print(f"machine: {platform.node()}, {os.cpu_count()} cores, {cpu_flags()}")
    print(
        f"tensorflow {tf.__version__}, keras {keras.__version__}, torch {torch_version}, "
        f"TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS')}, "
        f"GPUs: {len(tf.config.list_physical_devices('GPU'))}"
    )
    macs = count_macs(AlexNet(variant="bvlc"))
    gmac = sum(macs.values()) / 1e9
    train_gflop = 2 * 3 * gmac - 2 * macs["conv1"] / 1e9
    print(f"AlexNet bvlc @227: {gmac:.3f} GMAC forward; {2 * gmac:.2f} GFLOP/inference image, "
          f"{train_gflop:.2f} GFLOP/training image")  # fmt: skip
    print(f"batch {args.batch}, {args.rounds} rounds x {args.steps} timed steps, in alternation")

    peaks = matmul_peak()
    peak = max(peaks.values())
    print("float32 4096^3 matmul GFLOP/s: " + ", ".join(f"{k} {v:.0f}" for k, v in peaks.items()))

    print("building and warming up:")
    benches = build_benches([n for n in args.only.split(",") if n], args.batch)
    for bench in benches.values():
        for _ in range(args.warmup - 1):
            bench.train()
            bench.infer()

    train = {n: [] for n in benches}
    infer = {n: [] for n in benches}
    for r in range(args.rounds):
        for name, bench in benches.items():
            train[name] += time_calls(bench.train, args.steps)
            infer[name] += time_calls(bench.infer, args.steps)
            tr = args.batch / statistics.median(train[name][-args.steps :])
            inf = args.batch / statistics.median(infer[name][-args.steps :])
            print(
                f"  round {r + 1} {name:16s} train {tr:6.1f} img/s  infer {inf:6.1f} img/s",
                flush=True,
            )
    peaks_after = matmul_peak()
    print(
        "float32 matmul after the run: " + ", ".join(f"{k} {v:.0f}" for k, v in peaks_after.items())
    )
    peak = max(peak, *peaks_after.values())

    results = {}
    header = ("implementation", "train img/s", "infer img/s", "train % of peak")
    print("\n{:16s} {:>12s} {:>12s} {:>16s}".format(*header))
    for name in benches:
        tr = args.batch / statistics.median(train[name])
        inf = args.batch / statistics.median(infer[name])
        frac = tr * train_gflop / peak
        results[name] = {"train_img_s": tr, "infer_img_s": inf, "train_frac_peak": frac}
        print(f"{name:16s} {tr:12.1f} {inf:12.1f} {100 * frac:15.0f}%")
    print(f"(peak = best float32 matmul seen in this run: {peak:.0f} GFLOP/s)")

    ours = results.get("keras")
    if ours:
        print("\nratios, shipped Keras (keras) over the others (throughput):")
        for other in (
            "torch-eager",
            "torch-compile",
            "keras-stock",
            "keras-native",
            "keras-lrnmatmul",
            "keras-bf16",
        ):
            if other in results:
                train_ratio = ours["train_img_s"] / results[other]["train_img_s"]
                infer_ratio = ours["infer_img_s"] / results[other]["infer_img_s"]
                print(f"  vs {other:16s} train {train_ratio:.2f}x  infer {infer_ratio:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"peaks": peaks, "peak": peak, "train_gflop": train_gflop, "results": results,
                 "train_times": train, "infer_times": infer, "batch": args.batch},
                f, indent=1,
            )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

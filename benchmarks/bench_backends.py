"""AlexNet `bvlc` inference at 227 on each Keras backend, side by side.

Each backend runs in its own worker process (Keras picks its backend once, at
import), which builds `AlexNet()` as shipped, warms up, and then waits. The
parent asks the workers for one round each, in turn and in a rotated order from
round to round, so machine noise spreads over all of them; each round times
`--steps` calls of `model.predict_on_batch` on the same batch (TensorFlow: a
`tf.function`; JAX: `jax.jit`; PyTorch: eager, which is what Keras runs there).
The figures are medians over all timed steps. A backend that is not installed
is reported and left out.

`BACKEND@DIR` runs that backend on the package in another checkout `DIR` (an
older commit, say), beside this one: a before/after comparison of the same
backend, alternated in the same way.

Usage:
    python benchmarks/bench_backends.py [--batch 32] [--rounds 5] [--steps 3]
        [--backends tensorflow,jax,torch] [--json results.json]
    python benchmarks/bench_backends.py --backends tensorflow,tensorflow@/tmp/before [--train]

`--train` times `train_on_batch` (SGD with momentum) instead of inference.
"""

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

SIZE = 227
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def worker(batch, warmup, train=False):
    """The child: build, warm up, then time `steps` calls per `round <steps>` line on stdin."""
    # alexnet_keras first: it sets TensorFlow's environment defaults before TF loads.
    import alexnet_keras  # noqa: I001
    import keras

    model = alexnet_keras.AlexNet()
    rgb = np.random.default_rng(0).uniform(0, 255, (batch, SIZE, SIZE, 3)).astype("float32")
    x = alexnet_keras.preprocess_input(rgb)
    labels = np.arange(batch) % 1000
    if train:  # the step of `bench_model.py`'s training figures: SGD with momentum
        model.compile(keras.optimizers.SGD(0.01, momentum=0.9), "sparse_categorical_crossentropy")

    def step():
        return model.train_on_batch(x, labels) if train else model.predict_on_batch(x)

    for _ in range(warmup):
        step()
    print(json.dumps({"ready": keras.backend.backend()}), flush=True)
    for line in sys.stdin:
        times = []
        for _ in range(int(line.split()[1])):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        print(json.dumps({"times": times}), flush=True)


def start_worker(name, batch, warmup, train):
    backend, _, tree = name.partition("@")
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = os.pathsep.join([tree or ROOT, env.get("PYTHONPATH", "")])
    command = [sys.executable, os.path.abspath(__file__), "--worker", "--batch", str(batch),
               "--warmup", str(warmup)] + (["--train"] if train else [])  # fmt: skip
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=env, cwd=ROOT)  # fmt: skip
    return proc


def ask(proc, message):
    """The next JSON line of the worker, after sending `message` (if any)."""
    if message:
        proc.stdin.write(message + "\n")
        proc.stdin.flush()
    while True:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"a worker stopped (exit code {proc.wait()})")
        if line.startswith("{"):  # a library's own print to stdout is not an answer
            return json.loads(line)


def run(backends, batch, rounds, steps, warmup, train=False):
    """`{backend: [step seconds]}`, the workers started one at a time, then asked in turn."""
    procs = {}
    try:
        for backend in backends:
            procs[backend] = start_worker(backend, batch, warmup, train)
            assert ask(procs[backend], None)["ready"] == backend.partition("@")[0]
        times = {b: [] for b in backends}
        for r in range(rounds):
            order = backends[r % len(backends) :] + backends[: r % len(backends)]
            for backend in order:
                times[backend] += ask(procs[backend], f"round {steps}")["times"]
        return times
    finally:
        for proc in procs.values():
            proc.stdin.close()
            proc.wait(timeout=60)


def versions(backends):
    out = {"python": platform.python_version(), "machine": platform.processor() or "?",
           "cpus": os.cpu_count()}  # fmt: skip
    for name in ["keras", "tensorflow", *{b.partition("@")[0] for b in backends}]:
        if importlib.util.find_spec(name):
            from importlib.metadata import version

            out[name] = version({"jax": "jaxlib"}.get(name, name))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per round")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per worker")
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--train", action="store_true", help="time train_on_batch instead")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.batch, args.warmup, args.train)
        return 0
    backends = []
    for name in args.backends.split(","):
        if importlib.util.find_spec(name.partition("@")[0]) is None:
            print(f"{name}: not installed, left out")
        else:
            backends.append(name)
    times = run(backends, args.batch, args.rounds, args.steps, args.warmup, args.train)
    what = "training (train_on_batch)" if args.train else "inference (predict_on_batch)"
    print(f"AlexNet bvlc {SIZE}x{SIZE}, batch {args.batch}, {what}, "
          f"{args.rounds} rounds x {args.steps} steps, medians")  # fmt: skip
    rows = {}
    for backend, ts in times.items():
        median = statistics.median(ts)
        rows[backend] = {"median_s": median, "img_per_s": args.batch / median, "steps": len(ts)}
        print(f"  {backend:<11} {args.batch / median:7.1f} img/s   ({median * 1000:.0f} ms/batch)")
    if len(backends) == 2:
        a, b = backends
        print(f"  {a} / {b}: {rows[b]['median_s'] / rows[a]['median_s']:.3f} (throughput)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "versions": versions(backends), "results": rows}, f,
                      indent=1)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

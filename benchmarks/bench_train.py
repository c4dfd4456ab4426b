"""Trainer throughput against the raw Keras train step, in one process.

The raw step is `bench_model.py`'s: one `tf.function` forward+backward+SGD on a
fixed in-memory batch. The trainer step is what `alexnet-keras train` does per
step, through the public `Trainer` API: the next batch of the setup's real
input pipeline (`setups.alexnet_setup`: JPEG decode, resize, random crop,
flip, PCA lighting, preprocessing) through `Trainer.distribute`, then
`Trainer.train_step` (the learning-rate assignment, the `strategy.run` step
with weight decay and lr multipliers, and the reduced loss/accuracy). Both
alternate in rounds; the table gives medians.

Usage:
    python benchmarks/bench_train.py [--batch 64] [--rounds 3] [--steps 5]
        [--data ../shared/data/imagenet-sample]
"""

import argparse
import importlib.util
import pathlib
import statistics
import sys

import alexnet_keras  # noqa: F401  (first: sets the TF environment before TF loads)

# isort: split
import tensorflow as tf

from alexnet_keras import data
from alexnet_keras.training import config as train_config
from alexnet_keras.training import setups
from alexnet_keras.training.trainer import Trainer

HERE = pathlib.Path(__file__).resolve().parent


def bench_model():
    spec = importlib.util.spec_from_file_location("bench_model", HERE / "bench_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def trainer_steps(folder, batch, model_dir):
    """One step of `alexnet-keras train`'s loop per call: `Trainer.distribute` + `train_step`."""
    config = train_config.resolve(
        "train",
        {"dataset": f"folder:{folder}", "batch_size": batch, "model_dir": str(model_dir),
         "input_size": 227, "variant": "bvlc"},
    )  # fmt: skip
    strategy = tf.distribute.get_strategy()
    splits, info = data.open_dataset(config.dataset, seed=0)
    setup = setups.alexnet_setup(config, strategy, splits, info)
    trainer = Trainer(config, strategy, setup)
    state = {"epoch": 0, "iterator": iter(trainer.distribute(setup.make_train(0, 0))), "step": 0}

    def step():
        try:
            batch_ = next(state["iterator"])
        except StopIteration:
            state["epoch"] += 1
            state["iterator"] = iter(trainer.distribute(setup.make_train(state["epoch"], 0)))
            batch_ = next(state["iterator"])
        trainer.train_step(batch_, state["step"])
        state["step"] += 1

    return step


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--data", default=str(HERE.parents[1] / "shared/data/imagenet-sample"))
    parser.add_argument("--model-dir", default="/tmp/bench_train")
    args = parser.parse_args(argv)
    harness = bench_model()
    timed = harness.time_calls
    raw = harness.KerasBench("shipped", args.batch)
    trainer = trainer_steps(args.data, args.batch, args.model_dir)
    for fn in (raw.train, trainer):  # trace and warm up
        timed(fn, 2)
    results = {"raw step": [], "trainer": []}
    for _ in range(args.rounds):
        results["raw step"] += timed(raw.train, args.steps)
        results["trainer"] += timed(trainer, args.steps)
    rates = {k: args.batch / statistics.median(v) for k, v in results.items()}
    for name, rate in rates.items():
        print(f"{name:10s} {rate:6.1f} img/s (median of {len(results[name])} steps, batch "
              f"{args.batch})")  # fmt: skip
    print(f"trainer / raw step: {rates['trainer'] / rates['raw step']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

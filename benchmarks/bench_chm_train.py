"""Training speed of the CHM CIFAR-10 cfg nets: trainer step, raw step, stock-pooling twin.

For each cfg net (default: 80sec and 18pct), in one process, alternating in
rounds, batch 128, medians:

- raw step: one `tf.function` forward+backward+SGD of the cfg model's logits
  on a fixed in-memory batch;
- stock-pool twin: the same, with every `ConvnetPool2D` swapped for Keras'
  `MaxPooling2D`/`AveragePooling2D(padding="same")`: for these nets' sizes the
  same windows, and TF's average divides by the valid pixels, so it computes
  the 2012 (clipped-divisor) net and not 2011's full-window one: what the
  custom pooling layer costs over stock ops;
- trainer: what `alexnet-keras train --chm-layers` runs per step, through the
  public API (`setups.cfg_setup`, `Trainer.distribute`, `Trainer.train_step`):
  the next batch of cuda-convnet's CIFAR provider (mean-subtracted, in memory)
  distributed over the replicas, the lr assignment, the per-variable
  eps/decay factors and the reduced loss/accuracy.

Usage:
    python benchmarks/bench_chm_train.py [--nets 80sec,18pct] [--rounds 3] [--steps 10]
        [--data folder:../shared/data/cifar10-mini]
"""

import argparse
import importlib.util
import pathlib
import statistics
import sys
import tempfile

import alexnet_keras  # noqa: F401  (first: sets the TF environment before TF loads)

# isort: split
import keras
import numpy as np
import tensorflow as tf

from alexnet_keras import data
from alexnet_keras.cuda_convnet.layers import ConvnetPool2D
from alexnet_keras.training import config as train_config
from alexnet_keras.training import setups
from alexnet_keras.training.trainer import Trainer

HERE = pathlib.Path(__file__).resolve().parent
CFG = HERE.parents[1] / "shared/data/chm-release/example-layers"


def raw_step(model, batch):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal((batch, *model.input_shape[1:])) * 60, tf.float32)
    y = tf.constant(rng.integers(0, 10, batch), tf.int32)
    optimizer = keras.optimizers.SGD(0.001, momentum=0.9)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = tf.reduce_mean(
                keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
            )
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    return lambda: float(step())


def stock_twin(model):
    def swap(layer):
        if isinstance(layer, ConvnetPool2D):
            kind = (
                keras.layers.MaxPooling2D if layer.pool == "max" else keras.layers.AveragePooling2D
            )
            return kind(layer.size, layer.stride, padding="same", name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    return keras.models.clone_model(model, clone_function=swap)


def trainer_step(net_name, dataset, batch, model_dir):
    """The cfg net's model, and one step of `train --chm-layers`'s loop per call."""
    layers, params = CFG / f"layers-{net_name}.cfg", CFG / f"layer-params-{net_name}.cfg"
    config = train_config.resolve("train", {
        "dataset": dataset, "chm_layers": str(layers), "chm_params": str(params),
        "batch_size": batch, "model_dir": str(model_dir)})  # fmt: skip
    splits, info = data.open_dataset(dataset, data_dir=config.data_dir)
    strategy = tf.distribute.get_strategy()
    setup = setups.cfg_setup(config, strategy, splits, info)
    trainer = Trainer(config, strategy, setup)
    state = {"epoch": 0, "iterator": iter(trainer.distribute(setup.make_train(0))), "step": 0}

    def step():
        try:
            batch_ = next(state["iterator"])
        except StopIteration:
            state["epoch"] += 1
            state["iterator"] = iter(trainer.distribute(setup.make_train(state["epoch"])))
            batch_ = next(state["iterator"])
        trainer.train_step(batch_, state["step"])
        state["step"] += 1

    return setup.model, step


def time_calls():
    """`bench_model.time_calls` (wall-clock seconds per call; `tf.timestamp` fails under
    op determinism, which a seeded run leaves on)."""
    spec = importlib.util.spec_from_file_location("bench_model", HERE / "bench_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.time_calls


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nets", default="80sec,18pct")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--data", default=f"folder:{HERE.parents[1] / 'shared/data/cifar10-mini'}")
    args = parser.parse_args(argv)
    timed = time_calls()
    for name in args.nets.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            model, trainer = trainer_step(name, args.data, args.batch, tmp)
            fns = {"trainer": trainer, "raw step": raw_step(model, args.batch),
                   "stock-pool twin": raw_step(stock_twin(model), args.batch)}  # fmt: skip
            for fn in fns.values():
                timed(fn, 2)  # trace and warm up
            results = {k: [] for k in fns}
            for _ in range(args.rounds):
                for key, fn in fns.items():
                    results[key] += timed(fn, args.steps)
        rates = {k: args.batch / statistics.median(v) for k, v in results.items()}
        print(f"{name} (batch {args.batch}, median of {args.rounds * args.steps} steps):")
        for key, rate in rates.items():
            print(f"  {key:16s} {rate:7.0f} img/s  ({50000 / rate:5.1f} s per CIFAR-10 epoch)")
        ratio = rates["raw step"] / rates["stock-pool twin"]
        print(f"  trainer / raw step: {rates['trainer'] / rates['raw step']:.3f}; "
              f"raw / stock-pool twin: {ratio:.3f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

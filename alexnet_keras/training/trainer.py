"""The trainer: one custom loop for every `tf.distribute` strategy.

Keras 3 `fit` fails under `MultiWorkerMirroredStrategy` (keras#20585), so
fine-tuning and training run one loop everywhere: `strategy.run` per step,
per-replica losses scaled by the global batch, metrics summed across replicas.

- Optimisation is Caffe's: SGD with momentum, weight decay added to the
  gradient of kernels (biases optional), per-layer learning-rate multipliers,
  step / plateau (the paper's /10) / cosine schedules with warm-up.
- State: checkpoints (model, optimizer, dropout RNG, schedule, epoch, step
  within the epoch) every N steps and at each epoch's end. Running the same
  command again resumes exactly: the input pipeline is a pure function of
  (seed, epoch, index), so the resumed run sees the batches it would have.
  SIGTERM / SIGINT save a checkpoint and end the run cleanly.
- Logs: a progress line, `metrics.csv`, TensorBoard events, `config.yaml`.
- `cache_features`: with a frozen backbone, fc7 (or pool5) features are
  computed once and the head trains on them.
"""

import csv
import logging
import math
import os
import pathlib
import signal
import sys
import time

import numpy as np

from alexnet_keras.training import config_file
from alexnet_keras.training import config as train_config
from alexnet_keras.training.checkpoints import Checkpoints, is_chief
from alexnet_keras.training.schedules import Schedule
from alexnet_keras.training.strategies import make_strategy
from alexnet_keras.training.setups import build_model, freeze, gradient_factors

__all__ = ["DivergedError", "run"]

log = logging.getLogger("alexnet_keras")


# ----------------------------------------------------------------------------- setup


class DivergedError(RuntimeError):
    """The loss became NaN or infinite."""


class _Stop:
    """Turns SIGTERM / SIGINT into a flag the loop checks after each step."""

    def __init__(self):
        self.requested = None

    def __enter__(self):
        self.previous = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self.previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        self.requested = signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def _scalar(tag, value):
    """A TensorBoard scalar without the `tensorboard` package (TF 2.21 no longer pulls it in)."""
    import tensorflow as tf

    meta = tf.compat.v1.SummaryMetadata()
    meta.plugin_data.plugin_name = "scalars"
    tf.summary.write(tag, tf.constant(float(value), tf.float32), metadata=meta.SerializeToString())


def _progress(epoch, epochs, step, steps, loss, acc, rate, eta):
    line = (
        f"epoch {epoch + 1}/{epochs} step {step}/{steps} loss {loss:.4f} acc {acc:.3f} "
        f"{rate:.1f} img/s ETA {eta / 60:.1f} min"
    )
    if sys.stderr.isatty():
        sys.stderr.write("\r" + line + " " * 4)
    else:
        sys.stderr.write(line + "\n")
    sys.stderr.flush()


class Trainer:
    """Runs the loop for one model on dataset callables; used by `run`."""

    def __init__(self, config, strategy, model, factors, make_train, make_eval, steps, out):
        import keras
        import tensorflow as tf

        self.c, self.strategy, self.model, self.out = config, strategy, model, out
        self.make_train, self.make_eval, self.steps = make_train, make_eval, steps
        self.schedule = Schedule(config, steps)
        with strategy.scope():
            optimizer = keras.optimizers.SGD(
                learning_rate=config["lr"], momentum=config["momentum"]
            )
            if config["mixed_precision"] == "fp16":
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
            optimizer.build(model.trainable_variables)
        self.optimizer = optimizer
        # A zero decay skips the add; factors may be arrays (per-input cfg layers).
        self.factors = [(mult, decay if np.any(decay) else None) for mult, decay in factors]
        self.checkpoints = Checkpoints(
            strategy, model, optimizer, config["model_dir"], config["max_to_keep"]
        )
        self.global_batch = config["batch_size"]
        self._tf = tf
        self._train_step = self._make_train_step()
        self._eval_step = self._make_eval_step()

    def _make_train_step(self):
        import keras
        import tensorflow as tf

        model, opt, factors, strategy = self.model, self.optimizer, self.factors, self.strategy
        fp16 = self.c["mixed_precision"] == "fp16"

        def step_fn(x, y):
            with tf.GradientTape() as tape:
                logits = tf.cast(model(x, training=True), tf.float32)
                per_example = keras.losses.sparse_categorical_crossentropy(
                    y, logits, from_logits=True
                )
                loss = tf.nn.compute_average_loss(per_example, global_batch_size=self.global_batch)
                if fp16:
                    loss_for_grad = opt.scale_loss(loss)
            variables = model.trainable_variables
            grads = tape.gradient(loss_for_grad if fp16 else loss, variables)
            scale = tf.cast(opt.dynamic_scale, tf.float32) if fp16 else 1.0
            grads = [
                (g + decay * scale * tf.cast(v, g.dtype)) * mult if decay is not None else g * mult
                for g, v, (mult, decay) in zip(grads, variables, factors, strict=True)
            ]
            opt.apply_gradients(zip(grads, variables, strict=True))
            correct = tf.equal(tf.argmax(logits, -1, output_type=tf.int32), tf.cast(y, tf.int32))
            return (
                tf.reduce_sum(per_example),
                tf.reduce_sum(tf.cast(correct, tf.float32)),
                tf.cast(tf.size(y), tf.float32),
            )

        @tf.function
        def train_step(x, y):
            out = strategy.run(step_fn, args=(x, y))
            return [strategy.reduce("SUM", o, axis=None) for o in out]

        return train_step

    def _make_eval_step(self):
        import tensorflow as tf

        model, strategy = self.model, self.strategy

        def step_fn(x, y):
            y = tf.cast(y, tf.int32)
            if x.shape.rank == 5:  # ten crops: average the probabilities (Caffe's oversample)
                shape = tf.shape(x)
                flat = tf.reshape(x, tf.concat([[-1], shape[2:]], 0))
                probs = tf.nn.softmax(tf.cast(model(flat, training=False), tf.float32))
                probs = tf.reduce_mean(tf.reshape(probs, [shape[0], shape[1], -1]), axis=1)
            else:
                probs = tf.nn.softmax(tf.cast(model(x, training=False), tf.float32))
            loss = -tf.math.log(tf.gather(probs, y, batch_dims=1) + 1e-12)
            top5 = tf.math.in_top_k(y, probs, k=min(5, probs.shape[-1]))
            top1 = tf.equal(tf.argmax(probs, -1, output_type=tf.int32), y)
            f = lambda t: tf.reduce_sum(tf.cast(t, tf.float32))  # noqa: E731
            return f(loss), f(top1), f(top5), tf.cast(tf.size(y), tf.float32)

        @tf.function
        def eval_step(x, y):
            out = strategy.run(step_fn, args=(x, y))
            return [strategy.reduce("SUM", o, axis=None) for o in out]

        return eval_step

    def _distribute(self, ds):
        tf = self._tf
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA
        )
        return self.strategy.experimental_distribute_dataset(ds.with_options(options))

    def evaluate(self):
        totals = np.zeros(4)
        for i, (x, y) in enumerate(self._distribute(self.make_eval())):
            if self.c["eval_steps"] and i >= self.c["eval_steps"]:
                break
            totals += [float(t) for t in self._eval_step(x, y)]
        n = max(totals[3], 1)
        return {"val_loss": totals[0] / n, "val_top1": totals[1] / n, "val_top5": totals[2] / n}

    def fit(self, stop):
        c, tf = self.c, self._tf
        state = self.checkpoints.restore()
        if state is not None:
            self.schedule.load(state["schedule"])
            log.info(
                "resuming from %s: epoch %d, step %d",
                self.checkpoints.manager.latest_checkpoint,
                state["epoch"] + 1,
                state["step_in_epoch"],
            )
        state = state or {"epoch": 0, "step_in_epoch": 0, "global_step": 0}
        writer = (
            tf.summary.create_file_writer(str(self.out / "tensorboard")) if self.chief else None
        )
        while state["epoch"] < c["epochs"]:
            epoch, start_step = state["epoch"], state["step_in_epoch"]
            sums, seen, began = np.zeros(3), 0, time.perf_counter()
            batches = self._distribute(self.make_train(epoch, start_step))
            for step, (x, y) in enumerate(batches, start=start_step):
                if step >= self.steps:
                    break
                self.optimizer.learning_rate.assign(self.schedule(state["global_step"]))
                values = [float(t) for t in self._train_step(x, y)]
                if not math.isfinite(values[0]):
                    raise DivergedError(
                        f"training diverged at step {state['global_step'] + 1}: the loss is "
                        f"{values[0]}; lower --lr (now {self.schedule(state['global_step']):g}). "
                        f"The last good checkpoint in {self.checkpoints.folder} is kept"
                    )
                sums += values
                state.update(step_in_epoch=step + 1, global_step=state["global_step"] + 1)
                seen += c["batch_size"]
                if (step + 1) % c["log_every"] == 0 or step + 1 == self.steps:
                    rate = seen / (time.perf_counter() - began)
                    left = self.steps - step - 1 + (c["epochs"] - epoch - 1) * self.steps
                    _progress(epoch, c["epochs"], step + 1, self.steps, sums[0] / sums[2],
                              sums[1] / sums[2], rate, left * c["batch_size"] / rate)  # fmt: skip
                    if writer is not None:
                        with writer.as_default(step=state["global_step"]):
                            _scalar("train/loss", sums[0] / sums[2])
                            _scalar("train/accuracy", sums[1] / sums[2])
                            _scalar("train/lr", self.schedule(state["global_step"]))
                if stop.requested:
                    self._save(state)
                    log.warning("%s: checkpoint saved at step %d; exiting", stop.requested,
                                state["global_step"])  # fmt: skip
                    return "interrupted"
                if state["global_step"] % c["checkpoint_every"] == 0:
                    self._save(state)
            metrics = self.evaluate()
            self.schedule.end_epoch(metrics["val_top1"])
            seconds = time.perf_counter() - began
            row = {"epoch": epoch + 1, "step": state["global_step"],
                   "lr": self.schedule(state["global_step"] - 1),
                   "train_loss": sums[0] / max(sums[2], 1), "train_acc": sums[1] / max(sums[2], 1),
                   **metrics, "seconds": seconds, "img_per_s": seen / seconds}  # fmt: skip
            self._log_epoch(row, writer)
            state.update(epoch=epoch + 1, step_in_epoch=0)
            self._save(state)
        return "finished"

    @property
    def chief(self):
        return self.checkpoints.chief

    def _save(self, state):
        self.checkpoints.save({**state, "schedule": self.schedule.state()})

    def _log_epoch(self, row, writer):
        if sys.stderr.isatty():
            sys.stderr.write("\n")
        log.info(
            "epoch %d: train loss %.4f acc %.3f | val loss %.4f top-1 %.4f top-5 %.4f | %.0f s",
            row["epoch"], row["train_loss"], row["train_acc"], row["val_loss"], row["val_top1"],
            row["val_top5"], row["seconds"],
        )  # fmt: skip
        if not self.chief:
            return
        path = self.out / "metrics.csv"
        new = not path.exists()
        with open(path, "a", newline="") as f:
            out = csv.DictWriter(f, fieldnames=list(row))
            if new:
                out.writeheader()
            out.writerow(row)
        with writer.as_default(step=row["step"]):
            for key in ("val_loss", "val_top1", "val_top5"):
                _scalar(key.replace("_", "/", 1), row[key])
        writer.flush()


# ----------------------------------------------------------------------------- entry point


def _prepare_model_dir(config):
    out = pathlib.Path(config["model_dir"])
    saved_path = out / "config.yaml"
    if saved_path.exists():
        train_config.check_resume(config_file.load(saved_path), config, out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def run(config):
    """Trains or fine-tunes as `config` (from `train_config.resolve`) says.

    Returns:
        `{"status": "finished" | "interrupted", "model_dir", "weights", "metrics"}`.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    policy = keras.mixed_precision.global_policy()
    try:
        return _run(config)
    finally:  # the policy is process-wide; leave the caller's in place
        keras.mixed_precision.set_global_policy(policy)


def _run(config):
    import keras
    import tensorflow as tf

    from alexnet_keras.data import pipelines as data

    out = _prepare_model_dir(config)
    strategy = make_strategy(config["strategy"], config["cpu_devices"])
    if config["seed"] is not None:
        keras.utils.set_random_seed(config["seed"])
        tf.config.experimental.enable_op_determinism()
    if config["mixed_precision"]:
        keras.mixed_precision.set_global_policy(
            {"bf16": "mixed_bfloat16", "fp16": "mixed_float16"}[config["mixed_precision"]]
        )
    splits, info = data.open_dataset(
        config["dataset"],
        data_dir=config["data_dir"],
        seed=config["seed"],
        strict=config["strict_data"],
        holdout=config["holdout"],
    )
    log.info("%s", data.dataset_summary(info))
    parts = _chm_parts if config.get("chm_layers") else _alexnet_parts
    run = parts(config, strategy, splits, info, out)
    for note in run["notes"]:
        log.info("%s", note)
    if is_chief(strategy):
        text = config_file.dump(config, header=f"alexnet-keras {config['command']}: resolved")
        (out / "config.yaml").write_text(text)
    steps = run["steps"]
    if config["steps_per_epoch"]:
        steps = min(steps, config["steps_per_epoch"]) if steps else config["steps_per_epoch"]
    if steps < 1:
        raise ValueError(
            f"{config['dataset']}: {info.num_examples['train']} training images make no batch "
            f"of {config['batch_size']}; lower --batch-size"
        )
    trainer = Trainer(config, strategy, run["model"], run["factors"], run["make_train"],
                      run["make_eval"], steps, out)  # fmt: skip
    with _Stop() as stop:
        status = trainer.fit(stop)
    result = {"status": status, "model_dir": str(out), "weights": None, "metrics": None}
    if status == "finished" and trainer.chief:
        source = {"trained_by": f"alexnet-keras {config['command']}", "dataset": config["dataset"],
                  "initial_weights": config["weights"], "model_dir": str(out)}  # fmt: skip
        result["weights"] = str(run["save"](out / "model.weights.h5", source))
    rows = list(csv.DictReader(open(out / "metrics.csv"))) if (out / "metrics.csv").exists() else []
    result["metrics"] = rows[-1] if rows else None
    return result


def _alexnet_parts(config, strategy, splits, info, out):
    """AlexNet: the model, its factors, the augmenting pipelines and the saver."""
    from alexnet_keras import weights
    from alexnet_keras.data import pipelines as data

    classes = len(info.class_names)
    with strategy.scope():
        model, init, preprocessing, notes = build_model(config, classes)
        freeze(model, config["trainable_from"])
    new_head = init["meta"] is None or init["meta"]["classes"] != classes
    if new_head and init["meta"] is not None and (config["lr_mults"] or {}).get("fc8", 1) == 0:
        raise ValueError(
            f"{init['path']}: has {init['meta']['classes']} classes and {config['dataset']} has "
            f"{classes}, so fc8 starts from random weights and must train; lr_mults freezes it"
        )
    size, batch = init["input_size"], config["batch_size"]
    if config["cache_features"]:
        from alexnet_keras.training.feature_cache import head_trainer_inputs

        train_model, make_train, make_eval, steps = head_trainer_inputs(
            config, strategy, model, splits, info, size, preprocessing, out
        )
    else:
        train_model = model
        steps = info.num_examples["train"] // batch

        def make_train(epoch, skip):
            return data.train_pipeline(
                splits["train"], input_size=size, batch_size=batch, preprocessing=preprocessing,
                seed=config["seed"], epoch=epoch, skip_batches=skip, pca_std=config["pca_std"],
            )  # fmt: skip

        def make_eval():
            return data.eval_pipeline(
                splits["eval"], input_size=size, batch_size=batch, preprocessing=preprocessing,
                ten_crop=config["ten_crop"],
            )  # fmt: skip

    def save(path, source):
        source = {**source, "initial_weights": init["path"]}
        return weights.save_weights(
            model, path, variant=init["variant"], class_names=list(info.class_names),
            preprocessing=preprocessing, source=source,
        )  # fmt: skip

    factors = gradient_factors(train_model, config, new_head)
    return dict(model=train_model, factors=factors, make_train=make_train, make_eval=make_eval,
                steps=steps, save=save, notes=notes)  # fmt: skip


def _chm_parts(config, strategy, splits, info, out):
    """A cfg net: its model, the params file's factors, cuda-convnet's provider, the saver."""
    from alexnet_keras.cuda_convnet import update_rule as convnet_training
    from alexnet_keras.cuda_convnet.cfg_weights import save_mirror_weights
    from alexnet_keras.cuda_convnet.cifar_provider import MemoryProvider

    layers, params = config["chm_layers"], config["chm_params"]
    with strategy.scope():
        model, full, net = convnet_training.build(
            layers, params, len(info.class_names), config["seed"]
        )
    c, size, _ = net.image_shape
    provider = MemoryProvider(splits, config["dataset"], image_size=size, channels=c,
                              batch_size=config["batch_size"], seed=config["seed"])  # fmt: skip
    notes = list(net.notes)
    if config["milestones"]:  # as `recipe` read them from the params file, or --milestones
        epochs = ", ".join(map(str, config["milestones"]))
        notes.append(f"{params}: lr x{config['gamma']:g} after epochs {epochs}, "
                     f"{config['epochs']} epochs")  # fmt: skip
    notes.append(f"cuda-convnet CIFAR provider: {size}x{size}, 0..255 minus the per-pixel mean "
                 f"of {provider.num_train} training images, no crop, no flip")  # fmt: skip

    def save(path, source):
        arrays = {layer.name: full.get_layer(layer.name).get_weights()
                  for layer in net.layers if layer.type in ("conv", "fc")}  # fmt: skip
        mean = provider.mean.transpose(2, 0, 1)  # CHW, as batches.meta holds it
        return save_mirror_weights(
            net, arrays, path, class_names=list(info.class_names), mean=mean, source=source
        )

    return dict(model=model, factors=convnet_training.gradient_factors(model, net),
                make_train=provider.train, make_eval=provider.eval,
                steps=provider.steps_per_epoch(), save=save, notes=notes)  # fmt: skip

"""The trainer: the loop (`Trainer`), one custom loop for every `tf.distribute` strategy.

Keras 3 `fit` fails under `MultiWorkerMirroredStrategy` (keras#20585), so
fine-tuning and training run one loop everywhere: `strategy.run` per step,
per-replica losses scaled by the global batch, metrics summed across replicas.

- Optimisation is Caffe's: SGD with momentum, weight decay added to the
  gradient of kernels (biases optional), per-layer learning-rate multipliers,
  step / plateau (the paper's /10) / cosine schedules with warm-up; per-step
  multipliers per variable (`Setup.rate_schedule`, CHM's `schedW`/`schedB`).
- State: checkpoints (model, optimizer, dropout RNG, schedule, epoch, step
  within the epoch) every N steps and at each epoch's end. Running the same
  command again resumes exactly: the input pipeline is a pure function of
  (seed, epoch, index), so the resumed run sees the batches it would have.
  SIGTERM / SIGINT (turned into a flag by `run`) save a checkpoint and end
  the run cleanly.
- Logs: a progress line, `metrics.csv`, TensorBoard events.

`run.run` is the driver that builds what the loop needs (`setups.Setup`);
`Trainer.distribute` and `Trainer.train_step` are the loop's own step, public
so that `benchmarks/bench_train.py` times exactly what a run does.
"""

import csv
import logging
import math
import os
import pathlib
import time

import numpy as np

from alexnet_keras.files import write_error
from alexnet_keras.progress import Progress
from alexnet_keras.training.checkpoints import Checkpoints
from alexnet_keras.training.eval_step import eval_step
from alexnet_keras.training.precision import resolve_precision
from alexnet_keras.training.schedules import Schedule

__all__ = ["DivergedError", "Trainer"]

log = logging.getLogger("alexnet_keras")


class DivergedError(RuntimeError):
    """The loss became NaN or infinite."""


def _scalar(tag, value):
    """A TensorBoard scalar without the `tensorboard` package (TF 2.21 no longer pulls it in)."""
    import tensorflow as tf

    meta = tf.compat.v1.SummaryMetadata()
    meta.plugin_data.plugin_name = "scalars"
    tf.summary.write(tag, tf.constant(float(value), tf.float32), metadata=meta.SerializeToString())


def _scaled(g, v, factor, scale, rate):
    """`(g + decay * v) * mult`; a `rate` (`Setup.rate_schedule`) scales g and the decay."""
    import tensorflow as tf

    mult, decay = factor
    if decay is None:
        return g * mult if rate is None else g * rate[0] * mult
    d = decay * scale * tf.cast(v, g.dtype)
    return (g + d) * mult if rate is None else (g * rate[0] + d * rate[1]) * mult


class Trainer:
    """The training loop for one `setups.Setup` under one `tf.distribute` strategy.

    Args:
        config: the run's `TrainConfig` (rates, schedule, checkpoints, logging).
        strategy: the `tf.distribute` strategy the setup's model was built under.
        setup: the model, its per-variable factors, the dataset callables and
            the steps per epoch (`setups.alexnet_setup` / `setups.cfg_setup`).

    `fit` runs the epochs, resuming from the newest checkpoint in
    `config.model_dir`. `distribute` and `train_step` are one step of it:

        batches = iter(trainer.distribute(setup.make_train(epoch, 0)))
        loss_sum, correct, count = trainer.train_step(next(batches), global_step)

    Example:

    >>> import tempfile
    >>> import keras, tensorflow as tf
    >>> from alexnet_keras.training import config as train_config, setups
    >>> data = tf.data.Dataset.from_tensor_slices(
    ...     (tf.random.normal((8, 4)), tf.constant([0, 1] * 4))).batch(4)
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="fc8")])
    >>> config = train_config.resolve("train", {"dataset": "toy", "weights": "none",
    ...                                         "model_dir": tempfile.mkdtemp()})
    >>> setup = setups.Setup(model=model, factors=[(1.0, None), (1.0, None)],
    ...                      make_train=lambda epoch, skip: data.skip(skip),
    ...                      make_eval=lambda: data, steps=2)
    >>> trainer = Trainer(config, tf.distribute.get_strategy(), setup)
    >>> batch = next(iter(trainer.distribute(setup.make_train(0, 0))))
    >>> loss_sum, correct, count = trainer.train_step(batch, global_step=0)
    >>> float(count)
    4.0
    """

    def __init__(self, config, strategy, setup):
        import keras
        import tensorflow as tf

        model = setup.model
        self.config, self.strategy, self.setup, self.model = config, strategy, setup, model
        self.make_train, self.make_eval, self.steps = setup.make_train, setup.make_eval, setup.steps
        self.out = pathlib.Path(config.model_dir)
        self.schedule = Schedule(config, setup.steps)
        with strategy.scope():
            optimizer = keras.optimizers.SGD(learning_rate=config.lr, momentum=config.momentum)
            if resolve_precision(config.mixed_precision)[0] == "fp16":
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
            optimizer.build(model.trainable_variables)
        self.optimizer = optimizer
        # A zero decay skips the add; factors may be arrays (per-input cfg layers).
        self.factors = [(mult, decay if np.any(decay) else None) for mult, decay in setup.factors]
        self.checkpoints = Checkpoints(
            strategy, model, optimizer, config.model_dir, config.max_to_keep
        )
        self.global_batch = config.batch_size
        self._tf = tf
        self._train_step = self._make_train_step()
        self._eval_step = eval_step(model, strategy)

    def _make_train_step(self):
        import keras
        import tensorflow as tf

        model, opt, factors, strategy = self.model, self.optimizer, self.factors, self.strategy
        fp16 = resolve_precision(self.config.mixed_precision)[0] == "fp16"

        def step_fn(x, y, rates=None):
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
            each = zip(grads, variables, factors, rates or [None] * len(variables), strict=True)
            grads = [_scaled(g, v, factor, scale, rate) for g, v, factor, rate in each]
            opt.apply_gradients(zip(grads, variables, strict=True))
            correct = tf.equal(tf.argmax(logits, -1, output_type=tf.int32), tf.cast(y, tf.int32))
            return (
                tf.reduce_sum(per_example),
                tf.reduce_sum(tf.cast(correct, tf.float32)),
                tf.cast(tf.size(y), tf.float32),
            )

        @tf.function
        def train_step(x, y, rates=None):
            out = strategy.run(step_fn, args=(x, y, rates))
            return [strategy.reduce("SUM", o, axis=None) for o in out]

        return train_step

    def distribute(self, ds):
        """`ds` split over the strategy's replicas (auto-sharded by data across workers).

        tf.data's autotuning is turned off here too, for a setup whose datasets do not end
        in `data.prefetch.prefetched`: its thread can hold up every epoch's end by as long
        as the epoch's iterator lived (`prefetched` says why).
        """
        tf = self._tf
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA
        )
        options.autotune.enabled = False
        return self.strategy.experimental_distribute_dataset(ds.with_options(options))

    def train_step(self, batch, global_step):
        """One optimisation step on `batch` at the learning rate of step `global_step`.

        Args:
            batch: `(images, labels)`, an element of `distribute(...)`.
            global_step: the steps done before this one (sets the schedule's rate).

        Returns:
            float64 `[loss summed over the batch, correct predictions, examples]`,
            summed over the replicas.

        Raises:
            DivergedError: the loss is NaN or infinite.
        """
        self.optimizer.learning_rate.assign(self.schedule(global_step))
        x, y = batch
        rates = self.setup.rate_schedule
        rates = rates and rates(self.progress(global_step), global_step)
        rates = rates and [self._tf.constant(a) for a in rates]  # tensors: no retrace per step
        values = np.array([float(t) for t in self._train_step(x, y, rates)])
        if not math.isfinite(values[0]):
            raise DivergedError(
                f"training diverged at step {global_step + 1}: the loss is "
                f"{values[0]}; lower --lr (now {self.schedule(global_step):g}). "
                f"The last good checkpoint in {self.checkpoints.folder} is kept"
            )
        return values

    def progress(self, global_step):
        """Steps done / the run's steps, in [0, 1]: CHM's progress (`convnet.py` l.106-107)."""
        total = self.config.epochs * self.steps
        return min(1.0, max(0.0, global_step / total)) if total else 0.0

    def evaluate(self):
        """`{"val_loss", "val_top1", "val_top5"}` on the eval set, at most `config.eval_steps`
        batches, drawing a `validate:` progress line with an ETA (on stderr)."""
        cap = self.config.eval_steps
        total = self.setup.eval_images
        if cap:
            total = min(total or math.inf, cap * self.config.batch_size)
        meter = Progress(total, label="validate", unit="img", enabled=self.chief)
        totals = np.zeros(4)
        for i, (x, y) in enumerate(self.distribute(self.make_eval())):
            if cap and i >= cap:
                break
            totals += [float(t) for t in self._eval_step(x, y)]
            meter.update(int(totals[3]))
        meter.close()
        n = max(totals[3], 1)
        return {"val_loss": totals[0] / n, "val_top1": totals[1] / n, "val_top5": totals[2] / n}

    def fit(self, stop):
        """Trains to `config.epochs`, from the newest checkpoint if there is one.

        Args:
            stop: an object whose `requested` becomes true (the signal's name)
                when the run must end; checked after each step.

        Returns:
            `"finished"`, or `"interrupted"` after saving a checkpoint.
        """
        c = self.config
        state = self._restore()
        per_epoch = self.steps * c.batch_size
        done = state["epoch"] * per_epoch + state["step_in_epoch"] * c.batch_size
        meter = Progress(c.epochs * per_epoch, label="train", unit="img", interval=0, start=done)
        tf = self._tf
        writer = (
            tf.summary.create_file_writer(str(self.out / "tensorboard")) if self.chief else None
        )
        while state["epoch"] < c.epochs:
            began = time.perf_counter()
            trained = self._train_epoch(state, stop, meter, writer)
            if trained is None:
                return "interrupted"
            self._end_epoch(state, *trained, time.perf_counter() - began, writer)
            if stop.requested and state["epoch"] < c.epochs:  # it came during validation
                log.warning("%s: checkpoint saved at the end of epoch %d; exiting",
                            stop.requested, state["epoch"])  # fmt: skip
                return "interrupted"
        return "finished"

    def _restore(self):
        state = self.checkpoints.restore()
        if self.chief:
            self._trim_metrics(0 if state is None else state["epoch"])
        if state is None:
            return {"epoch": 0, "step_in_epoch": 0, "global_step": 0}
        self.schedule.load(state["schedule"])
        log.info(
            "resuming from %s: epoch %d, step %d",
            self.checkpoints.restored_from,
            state["epoch"] + 1,
            state["step_in_epoch"],
        )
        return state

    def _trim_metrics(self, epochs_done):
        """Drops the rows of `metrics.csv` past the restored epoch (they will be run again),
        and a row a kill cut short."""
        path = self.out / "metrics.csv"
        if not path.is_file():
            return
        with open(path, newline="", errors="replace") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            rows = [r for r in reader if header and len(r) == len(header)]
        keep = [r for r in rows if r[0].isdigit() and int(r[0]) <= epochs_done]
        if header and header[0] == "epoch" and keep:
            tmp = path.with_name("metrics.csv.tmp")
            with open(tmp, "w", newline="") as f:
                csv.writer(f).writerows([header, *keep])
            os.replace(tmp, path)
        else:
            path.unlink()

    def _train_epoch(self, state, stop, meter, writer):
        """The rest of `state["epoch"]`: `(loss, correct, count sums, images seen)`, or None
        when `stop` ended it (after saving a checkpoint)."""
        c = self.config
        epoch, start_step = state["epoch"], state["step_in_epoch"]
        sums, seen = np.zeros(3), 0
        batches = self.distribute(self.make_train(epoch, start_step))
        for step, batch in enumerate(batches, start=start_step):
            if step >= self.steps:
                break
            sums += self.train_step(batch, state["global_step"])
            state.update(step_in_epoch=step + 1, global_step=state["global_step"] + 1)
            seen += c.batch_size
            if (step + 1) % c.log_every == 0 or step + 1 == self.steps:
                self._log_step(state, sums, meter, writer)
            if stop.requested:
                self._save(state, "stop")
                log.warning("%s: checkpoint saved at step %d; exiting", stop.requested,
                            state["global_step"])  # fmt: skip
                return None
            if state["global_step"] % c.checkpoint_every == 0:
                self._save(state)
        return sums, seen

    def _log_step(self, state, sums, meter, writer):
        c, epoch, step = self.config, state["epoch"], state["step_in_epoch"]
        per_epoch = self.steps * c.batch_size
        meter.update(epoch * per_epoch + step * c.batch_size,
                     f"epoch {epoch + 1}/{c.epochs} step {step}/{self.steps} "
                     f"loss {sums[0] / sums[2]:.4f} acc {sums[1] / sums[2]:.3f}",
                     final=step == self.steps)  # fmt: skip
        if writer is not None:
            with writer.as_default(step=state["global_step"]):
                _scalar("train/loss", sums[0] / sums[2])
                _scalar("train/accuracy", sums[1] / sums[2])
                _scalar("train/lr", self.schedule(state["global_step"]))

    def _end_epoch(self, state, sums, seen, seconds, writer):
        """Evaluates, steps the plateau schedule, logs the epoch's row and saves a checkpoint."""
        metrics = self.evaluate()
        self.schedule.end_epoch(metrics["val_top1"])
        row = {"epoch": state["epoch"] + 1, "step": state["global_step"],
               "lr": self.schedule(state["global_step"] - 1),
               "train_loss": sums[0] / max(sums[2], 1), "train_acc": sums[1] / max(sums[2], 1),
               **metrics, "seconds": seconds, "img_per_s": seen / seconds}  # fmt: skip
        self._log_epoch(row, writer)
        state.update(epoch=state["epoch"] + 1, step_in_epoch=0)
        self._save(state, "epoch")

    @property
    def chief(self):
        return self.checkpoints.chief

    def _save(self, state, kind="step"):
        self.checkpoints.save({**state, "schedule": self.schedule.state()}, kind)

    def _log_epoch(self, row, writer):
        log.info(
            "epoch %d: train loss %.4f acc %.3f | val loss %.4f top-1 %.4f top-5 %.4f | %.0f s",
            row["epoch"], row["train_loss"], row["train_acc"], row["val_loss"], row["val_top1"],
            row["val_top5"], row["seconds"],
        )  # fmt: skip
        if not self.chief:
            return
        path = self.out / "metrics.csv"
        new = not path.exists()
        try:
            with open(path, "a", newline="") as f:
                out = csv.DictWriter(f, fieldnames=list(row))
                if new:
                    out.writeheader()
                out.writerow(row)
        except OSError as e:  # a write's error names no file
            raise (write_error(path, e) or e) from None
        try:
            with writer.as_default(step=row["step"]):
                for key in ("val_loss", "val_top1", "val_top5"):
                    _scalar(key.replace("_", "/", 1), row[key])
            writer.flush()
        except self._tf.errors.OpError as e:
            failure = write_error(self.out / "tensorboard", e)
            if failure is None:
                raise
            raise failure from None

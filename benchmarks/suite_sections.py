"""The sections of `benchmarks/suite.py`: each measures on the current device within a share
of the budget and returns table rows `{"setting", "value", "unit", "note"}`."""

import dataclasses
import os
import pathlib
import signal
import statistics
import threading
import time

import keras
import numpy as np
import tensorflow as tf
from bench_model import KerasBench  # beside this file: one train step and inference

from alexnet_keras import AlexNet

SIZE = 227
CLASSES = 1000


@dataclasses.dataclass
class Context:
    tiny: bool
    data: pathlib.Path
    tmp: pathlib.Path
    trainer_img_s: float | None = None  # the model section's, for the input section's ratio

    @property
    def gpus(self):
        return len(tf.config.list_physical_devices("GPU"))


def _row(setting, value, unit, note=""):
    return {"setting": setting, "value": value, "unit": unit, "note": note}


def timed(fn, share, max_calls):
    """Median seconds per call of `fn` after one untimed call, as many calls as `share` fits."""
    start = time.perf_counter()
    fn()  # tracing, compiling, autotuning
    first = time.perf_counter() - start
    times = []
    while len(times) < max_calls and (not times or sum(times) + first < share * 0.8):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def model(ctx, share):
    """Train and inference img/s: precision x XLA x batch."""
    if ctx.tiny:  # XLA's compile of the train step is the slow part here: inference only
        settings = [("float32", False, 2), ("bf16", False, 2)]
    else:
        precisions = ["float32", "bf16"] + (["fp16"] if ctx.gpus else [])
        settings = [(p, jit, b) for b in (128, 256) for jit in (False, True) for p in precisions]
    rows, end = [], time.perf_counter() + share
    for i, (precision, jit, batch) in enumerate(settings):
        part = (end - time.perf_counter()) / (len(settings) - i)
        name = f"bvlc@227 {precision} xla={'on' if jit else 'off'} b{batch}"
        if part < 1.0:
            rows.append(_row(name, None, "img/s", "skipped: out of budget"))
            continue
        bench = KerasBench("shipped" if precision == "float32" else precision, batch, jit=jit)
        train, infer = bench.train, bench.infer
        calls = 1 if ctx.tiny else 20
        train_img_s = batch / timed(train, part / 2, calls)
        infer_img_s = batch / timed(infer, part / 2, calls)
        if precision == "float32" and not jit and ctx.trainer_img_s is None:
            ctx.trainer_img_s = train_img_s
        rows += [_row(f"{name} train", train_img_s, "img/s"),
                 _row(f"{name} infer", infer_img_s, "img/s")]  # fmt: skip
    return rows


def mirrored(ctx, share):
    """The train step under MirroredStrategy over every local GPU (or the two logical CPUs)."""
    strategy = tf.distribute.MirroredStrategy()
    replicas = strategy.num_replicas_in_sync
    batch = (2 if ctx.tiny else 128) * replicas
    with strategy.scope():
        net = AlexNet(variant="bvlc", classifier_activation=None)
        opt = keras.optimizers.SGD(0.01, momentum=0.9)
        opt.build(net.trainable_variables)  # its slots, before the replicas' function
    rng = np.random.default_rng(0)
    x = rng.normal(0, 50, (batch, SIZE, SIZE, 3)).astype(np.float32)
    y = rng.integers(0, CLASSES, batch).astype(np.int32)
    ds = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors((x, y)).repeat())
    it = iter(ds)

    @tf.function
    def step(batch_):
        def replica(xb, yb):
            with tf.GradientTape() as tape:
                logits = net(xb, training=True)
                per = tf.nn.sparse_softmax_cross_entropy_with_logits(yb, logits)
                loss = tf.nn.compute_average_loss(per, global_batch_size=batch)
            grads = tape.gradient(loss, net.trainable_variables)
            opt.apply_gradients(zip(grads, net.trainable_variables, strict=True))
            return loss

        return strategy.reduce("SUM", strategy.run(replica, args=batch_), axis=None)

    seconds = timed(lambda: step(next(it)).numpy(), share, 2 if ctx.tiny else 20)
    return [_row(f"bvlc@227 float32 train, {replicas} replicas, b{batch}", batch / seconds,
                 "img/s")]  # fmt: skip


def eval_last_batch(ctx, share):
    """A distributed eval whose last batch has fewer images than replicas (tensorflow#48057)."""
    strategy = tf.distribute.MirroredStrategy()
    replicas = strategy.num_replicas_in_sync
    with strategy.scope():
        net = AlexNet(variant="bvlc")
    images = np.random.default_rng(1).uniform(0, 255, (replicas + 1, SIZE, SIZE, 3))
    ds = tf.data.Dataset.from_tensor_slices(images.astype(np.float32)).batch(replicas)
    seen = 0

    @tf.function
    def step(batch_):
        return strategy.run(lambda xb: net(xb, training=False), args=(batch_,))

    try:
        for batch_ in strategy.experimental_distribute_dataset(ds):
            out = strategy.experimental_local_results(step(batch_))
            seen += sum(int(t.shape[0]) for t in out)
        note = f"ok: the last batch had 1 image for {replicas} replicas"
    except (tf.errors.OpError, ValueError) as e:
        # The root error, not the graph's "Detected at node" trace. On 2 logical CPUs (TF
        # 2.21, oneDNN) the empty replica's conv1 returns its input's shape, and conv2's
        # split then fails: "split_dim 3 (size = 3) and num_split 2".
        lines = str(e).splitlines()
        root = next((ln for ln in lines if "(0)" in ln or "Incompatible" in ln), lines[0])
        note = f"failed: {' '.join(root.split())[:200]}"
    return [_row(f"eval, {replicas + 1} images in batches of {replicas}", seen, "images", note)]


def input(ctx, share):  # noqa: A001 - the section's name
    """`train_pipeline` img/s on real JPEGs, the crop's window only and the whole image."""
    from alexnet_keras.data import open_dataset, train_pipeline

    splits, _ = open_dataset(f"folder:{ctx.data}")
    batch = 4 if ctx.tiny else 128
    kw = dict(input_size=SIZE, batch_size=batch, preprocessing="bvlc")
    rows, cores = [], len(os.sched_getaffinity(0))
    for fused in (True, False):
        ds = train_pipeline(splits["train"], fused_crop=fused, **kw).repeat()
        it = iter(ds)
        seconds = timed(lambda it=it: next(it)[0].numpy(), share / 2, 2 if ctx.tiny else 30)
        rate = batch / seconds
        note = f"{rate / cores:.0f} img/s per core"
        if ctx.trainer_img_s:
            note += f"; {rate / ctx.trainer_img_s:.2f}x the float32 trainer"
        name = "window-only crop" if fused else "whole-image crop"
        rows.append(_row(f"train_pipeline {name}, b{batch}", rate, "img/s", note))
        del it
    return rows


def chm_80sec(ctx, share):
    """`train --chm-layers` 80sec, r434's x0.1 after 8 epochs: wall time and test error."""
    from alexnet_keras.training import config as train_config
    from alexnet_keras.training.run import run

    folder = ctx.data.parents[0] / "chm-release" / "example-layers"
    options = {
        "dataset": "cifar10", "data_dir": str(ctx.data.parents[0] / "tfds"),
        "chm_layers": str(folder / "layers-80sec.cfg"),
        "chm_params": str(folder / "layer-params-80sec.cfg"),
        "schedule": "step", "milestones": [8], "epochs": 10, "strategy": "one-device",
        "model_dir": str(ctx.tmp / "80sec"),
    }  # fmt: skip
    if ctx.tiny:
        options.update(epochs=1, steps_per_epoch=2, eval_steps=1)
    config = train_config.resolve("train", options)
    # The budget ends the run as Ctrl-C would: the epochs done so far are reported. (Tiny
    # settings are two steps: no timer, which could land before the trainer's handler.)
    timer = threading.Timer(max(share - 5, 1), os.kill, (os.getpid(), signal.SIGINT))
    start = time.perf_counter()
    if not ctx.tiny:
        timer.start()
    try:
        result = run(config)
    except KeyboardInterrupt:  # the budget ran out before the first epoch began
        return [_row("80sec r434 (10 epochs) wall", time.perf_counter() - start, "s",
                     "stopped by the budget before the first epoch")]  # fmt: skip
    finally:
        timer.cancel()
    wall = time.perf_counter() - start
    import csv

    rows = list(csv.DictReader(open(pathlib.Path(config.model_dir) / "metrics.csv")))
    errors = [100 * (1 - float(r["val_top1"])) for r in rows]
    reached = next((i for i, e in enumerate(errors) if e <= 26.0), None)
    note = f"{result['status']}, {len(rows)} epochs"
    if reached is not None:
        took = sum(float(r["seconds"]) for r in rows[: reached + 1])
        note += f"; <= 26 % after epoch {reached + 1}, {took:.0f} s of epochs"
    return [_row("80sec r434 (10 epochs) wall", wall, "s", note),
            _row("80sec test error at the end", errors[-1] if errors else None, "%")]  # fmt: skip


def serving(ctx, share):
    """The SavedModel's `serving_default` (JPEG bytes in) img/s, in process."""
    from alexnet_keras.serving.graph import ServingModule

    batch = 2 if ctx.tiny else 64
    files = sorted(ctx.data.glob("*/*.JPEG"))[:batch]
    blobs = tf.constant([f.read_bytes() for f in files])
    module = ServingModule(AlexNet(variant="bvlc"), preprocessing="bvlc",
                           labels=[str(i) for i in range(CLASSES)], top_k=5)  # fmt: skip
    seconds = timed(lambda: module.serve_bytes(blobs)["probabilities"].numpy(), share,
                    2 if ctx.tiny else 20)  # fmt: skip
    return [_row(f"serving_default, {batch} JPEGs a call", len(files) / seconds, "img/s")]

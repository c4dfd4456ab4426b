"""`--cache-features`: train the head on fc7 (or pool5) features computed once.

With the backbone frozen, every epoch would recompute the same forward pass
through conv1..fc7 (95 % of AlexNet's FLOPs). Instead the features of the
center crops (and, by default, of their mirror images, the cheap part of the
augmentation) are computed once, stored under `<model_dir>/features/`, and
the head (fc8, or fc6..fc8 for pool5 features) trains on them. The head's
layers are the model's own, so the trained weights land in the full model.
"""

import hashlib
import json
import logging
import pathlib
import time

import numpy as np

from alexnet_keras.features.extractor import layer_model, run_batches, view_forward
from alexnet_keras.files import write_error

__all__ = ["head_trainer_inputs"]

log = logging.getLogger("alexnet_keras")
_HEAD = {"fc7": ("drop7", "fc8"), "pool5": ("flatten", "fc6", "relu6", "drop6", "fc7", "relu7",
                                              "drop7", "fc8")}  # fmt: skip
_OUTPUT = {"fc7": "relu7", "pool5": "pool5"}
_NEEDS = {"fc7": "fc8", "pool5": "fc6"}


def _check(config):
    layer = config.feature_layer
    from alexnet_keras.variants import WEIGHTED_LAYERS as order

    frozen_until = config.trainable_from
    if frozen_until is None or order.index(frozen_until) < order.index(_NEEDS[layer]):
        raise ValueError(
            f"--cache-features with {layer} features needs everything below the head frozen: "
            f"pass --trainable-from {_NEEDS[layer]}"
            + (" (or --freeze-backbone)" if layer == "pool5" else "")
            + f". Received: trainable_from={frozen_until}"
        )


def _key(config, init_path, size, preprocessing):
    digest = hashlib.sha256()
    if init_path:
        digest.update(pathlib.Path(init_path).read_bytes()[: 1 << 20])  # cheap identity
    fields = ("dataset", "feature_layer", "cache_flip", "seed", "holdout")
    blob = json.dumps([getattr(config, k) for k in fields] + [size, preprocessing, str(init_path)])
    digest.update(blob.encode())
    return digest.hexdigest()[:16]


def _extract(extractor, ds, count, flip, path):
    """Writes the features of `ds` (and of its mirror images) to `path`; returns the labels."""
    import os

    import tensorflow as tf
    from numpy.lib.format import open_memmap

    shape = tuple(extractor.output_shape[1:])
    copies = 2 if flip else 1
    tmp = path.with_suffix(".tmp.npy")
    try:
        feats = open_memmap(tmp, mode="w+", dtype=np.float16, shape=(count * copies, *shape))
        # Reserve the blocks now: a memory map that meets a full disk later is a SIGBUS.
        with open(tmp, "r+b") as f:
            os.posix_fallocate(f.fileno(), 0, os.path.getsize(tmp))
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise (write_error(path, e, count * copies * int(np.prod(shape)) * 2) or e) from None
    labels = np.empty(count * copies, np.int32)
    began = time.perf_counter()
    one = view_forward(extractor)

    def forward(x):
        # Mirroring the preprocessed crop equals preprocessing the mirrored one.
        return [one(v).numpy() for v in ((x, tf.reverse(x, [2])) if flip else (x,))]

    def write(i, outputs, y, feats=feats):  # bound now: `feats` is deleted below
        for copy, out in enumerate(outputs):
            feats[copy * count + i : copy * count + i + len(out)] = out
            labels[copy * count + i : copy * count + i + len(out)] = y.numpy()

    # A CPU pass over CIFAR-10 takes many minutes: show it moving.
    i = run_batches(forward, ds, write, total=count, label=f"features {path.stem}")
    feats.flush()
    log.info("features %s: %d images in %.0f s", path.stem, i, time.perf_counter() - began)
    if i == count:
        del feats
        os.replace(tmp, path)
        return labels
    # Images that failed to decode were dropped by the pipeline: compact.
    keep = np.r_[0:i, count : count + i] if flip else np.arange(i)
    np.save(path, feats[keep])
    del feats
    tmp.unlink()
    return labels[keep]


def _features(config, model, splits, info, size, preprocessing, folder):
    from alexnet_keras import data

    extractor = layer_model(model, _OUTPUT[config.feature_layer])
    if (folder / "done.json").exists():
        log.info("reusing cached features in %s", folder)
    else:
        folder.mkdir(parents=True, exist_ok=True)
        for leftover in folder.glob("*.tmp.npy"):  # of a run killed while extracting
            leftover.unlink()
        for split in ("train", "eval"):
            ds = data.eval_pipeline(splits[split], input_size=size, batch_size=64,
                                    preprocessing=preprocessing)  # fmt: skip
            flip = config.cache_flip and split == "train"
            labels = _extract(
                extractor, ds, info.num_examples[split], flip, folder / f"{split}.npy"
            )
            np.save(folder / f"{split}_labels.npy", labels)
        (folder / "done.json").write_text(json.dumps({"dataset": config.dataset}))
    return {
        split: (np.load(folder / f"{split}.npy"), np.load(folder / f"{split}_labels.npy"))
        for split in ("train", "eval")
    }


def head_trainer_inputs(config, strategy, model, splits, info, size, preprocessing, out):
    """The head model and its cached-feature datasets for `training.Trainer`.

    Returns:
        `(head_model, make_train(epoch, skip), make_eval(), steps_per_epoch)`.
    """
    import keras
    import tensorflow as tf

    from alexnet_keras.data.prefetch import prefetched

    _check(config)
    key = _key(config, config.weights, size, preprocessing)
    features = _features(config, model, splits, info, size, preprocessing,
                         pathlib.Path(out) / "features" / key)  # fmt: skip
    with strategy.scope():
        inputs = keras.Input(shape=features["train"][0].shape[1:], name="features")
        x = inputs
        for name in _HEAD[config.feature_layer]:
            x = model.get_layer(name)(x)
        head = keras.Model(inputs, x, name="head")
    batch = config.batch_size
    train_x, train_y = features["train"]
    steps = len(train_y) // batch
    if config.steps_per_epoch:
        steps = min(steps, config.steps_per_epoch)

    def gather(x, y):
        def fn(idx):
            return x[idx].astype(np.float32), y[idx]

        return fn

    def batches(x, y, order, drop_remainder):
        fn = gather(x, y)

        @tf.autograph.experimental.do_not_convert
        def lookup(idx):
            fx, fy = tf.numpy_function(fn, [idx], (tf.float32, tf.int32))
            fx.set_shape((None, *x.shape[1:]))
            fy.set_shape((None,))
            return fx, fy

        ds = tf.data.Dataset.from_tensor_slices(order).batch(batch, drop_remainder=drop_remainder)
        return ds, lookup

    def make_train(epoch, skip):
        order = np.random.default_rng([config.seed, epoch]).permutation(len(train_y))
        ds, lookup = batches(train_x, train_y, order, True)
        ds = ds.skip(skip).map(lookup, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return prefetched(ds)

    eval_x, eval_y = features["eval"]

    def make_eval():
        ds, lookup = batches(eval_x, eval_y, np.arange(len(eval_y)), False)
        return prefetched(ds.map(lookup))

    return head, make_train, make_eval, steps

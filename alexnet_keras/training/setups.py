"""What a run trains: the model, its per-variable factors, its data and its saver, as a `Setup`.

`alexnet_setup` builds AlexNet from its initial weights (a new head, frozen
layers, Caffe's factors, the augmenting pipelines or cached features);
`cfg_setup` builds a CHM cfg net from its parsed cfg pair, with
cuda-convnet's update rule (`cuda_convnet.update_rule`) and CIFAR provider.
`trainer.Trainer` runs either.
"""

import dataclasses
import pathlib
from collections.abc import Callable

from alexnet_keras.cuda_convnet.cfg_rules import BUILT_WEIGHT_TYPES
from alexnet_keras.variants import WEIGHTED_LAYERS as WEIGHTED

__all__ = ["WEIGHTED", "InitialModel", "Setup", "alexnet_setup", "build_model", "cfg_setup",
           "eval_limit", "eval_sample", "freeze", "gradient_factors", "weights_path"]  # fmt: skip


@dataclasses.dataclass(frozen=True, kw_only=True)
class Setup:
    """Everything `trainer.Trainer` needs for one model.

    Attributes:
        model: the Keras model the loop trains; it outputs logits.
        factors: per trainable variable of `model`, `(lr multiplier, L2 decay)`;
            either may be an array broadcast over the kernel.
        make_train: `make_train(epoch, skip_batches)` -> a batched `tf.data.Dataset`
            of `(images, labels)`, a pure function of its arguments (resumable).
        make_eval: `make_eval()` -> the batched evaluation dataset.
        steps: batches per epoch.
        save_weights: `save_weights(path, source)` writes the final weights file,
            with metadata; returns its path.
        notes: lines the driver logs before training.
        eval_images: the images `make_eval` yields, if known (the validation
            progress line's total).
        rate_schedule: None, or `rate_schedule(progress, step)` -> per
            trainable variable a float32 array `(2, *shape)`: multipliers of
            its gradient step and its decay step at training progress
            `progress` (steps done / the run's steps) for step `step`, a
            pure function of both (`lr_schedule.RateSchedule`).
    """

    model: object
    factors: list
    make_train: Callable
    make_eval: Callable
    steps: int
    save_weights: Callable | None = None
    notes: tuple = ()
    eval_images: int | None = None
    rate_schedule: Callable | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class InitialModel:
    """AlexNet as a run starts it (`build_model`).

    Attributes:
        model: the Keras model (fc8 logits), its weights set.
        weights_path: the weights file it started from, or None (random).
        weights_meta: that file's metadata (`weights.read_metadata`), or None.
        variant: the AlexNet variant.
        input_size: the input side.
        preprocessing: `{"color_order", "mean"}`, the weights' own or the variant's.
        notes: lines for the log (a new head, what trains).
    """

    model: object
    weights_path: str | None
    weights_meta: dict | None
    variant: str
    input_size: int
    preprocessing: dict
    notes: tuple = ()


def weights_path(weights):
    """The initial weights file as a str (it goes into the run's metadata), or None.

    A release is downloaded, verified and converted like everywhere else
    (`pretrained.resolve`); `--weights none` (None here) means random weights.
    `run` calls it before it makes the run folder.
    """
    from alexnet_keras import pretrained

    path = pretrained.resolve(weights)
    return None if path is None else str(path)


_RESOLVE = object()


def build_model(config, num_classes, path=_RESOLVE):
    """AlexNet with `config.weights` loaded (a new fc8 if the classes differ), as an `InitialModel`.

    Args:
        config: the run's `TrainConfig`.
        num_classes: the dataset's classes.
        path: `config.weights` as `weights_path` resolved it already (None:
            random weights); default: resolved here.

    Raises:
        ValueError: naming the weights file: another variant than
            `config.variant`, or a layer of another shape.
    """
    from alexnet_keras import variants, weights
    from alexnet_keras.model import AlexNet

    path = weights_path(config.weights) if path is _RESOLVE else path
    meta = weights.read_metadata(path) if path else None
    variant = config.variant or (meta["variant"] if meta else "bvlc")
    if meta and meta["variant"] != variant:
        raise ValueError(f"{path}: holds {meta['variant']} weights. Received: --variant {variant}")
    spec = variants.get_variant(variant)
    size = config.input_size or (meta["input_size"] if meta else spec.default_size)
    model = AlexNet(
        variant=variant,
        classes=num_classes,
        input_shape=(size, size, 3),
        classifier_activation=None,
    )
    notes = []
    caffe_init(model, config.seed, only=None if path is None else ("fc8",))
    if path:
        arrays = weights.read_arrays(path)
        for name in WEIGHTED:
            layer = model.get_layer(name)
            got = [a.shape for a in arrays.get(name, [])]
            want = [tuple(w.shape) for w in layer.weights]
            if name == "fc8" and got != want:
                notes.append(
                    f"fc8: {meta['classes']} classes in {path}, {num_classes} here; new head"
                )
                continue
            if got != want:
                raise ValueError(f"{path}: layer '{name}' expects {want}. Received: {got}")
            layer.set_weights(arrays[name])
        if config.trainable_from is None and meta["classes"] != num_classes:
            notes.append("the whole network trains; pass --trainable-from fc8 for a linear probe")
    preprocessing = (meta or {}).get("preprocessing") or spec.preprocessing
    return InitialModel(
        model=model,
        weights_path=path,
        weights_meta=meta,
        variant=variant,
        input_size=size,
        preprocessing=preprocessing,
        notes=tuple(notes),
    )


# BVLC's models/bvlc_alexnet/train_val.prototxt: gaussian weights (std 0.01, fc6 and
# fc7 0.005) and biases 0 or 0.1. The paper (section 5) used std 0.01 and biases 1;
# BVLC's readme reports 0.1 trains better. Keras' default glorot init with the paper's
# lr 0.01 on 0..255 inputs diverges within a hundred steps.
_CAFFE_INIT = {"conv1": (0.01, 0.0), "conv2": (0.01, 0.1), "conv3": (0.01, 0.0),
               "conv4": (0.01, 0.1), "conv5": (0.01, 0.1), "fc6": (0.005, 0.1),
               "fc7": (0.005, 0.1), "fc8": (0.01, 0.0)}  # fmt: skip


def caffe_init(model, seed, only=None):
    """Initialises the weighted layers as BVLC's AlexNet recipe does (seeded, reproducible)."""
    import numpy as np

    rng = np.random.default_rng([0 if seed is None else seed, 2012])
    for name, (std, bias) in _CAFFE_INIT.items():
        layer = model.get_layer(name)
        kernel, b = layer.get_weights()
        if only is None or name in only:
            layer.set_weights(
                [(rng.standard_normal(kernel.shape) * std).astype(kernel.dtype),
                 np.full(b.shape, bias, b.dtype)]
            )  # fmt: skip


def freeze(model, trainable_from):
    """Freezes every weighted layer before `trainable_from`."""
    if trainable_from is None:
        return
    for name in WEIGHTED[: WEIGHTED.index(trainable_from)]:
        model.get_layer(name).trainable = False


def _owner(variable):
    # Keras paths look like "alexnet_bvlc/fc8/kernel" or "fc8/kernel".
    parts = variable.path.split("/")
    return next((p for p in parts if p in WEIGHTED), parts[0]), parts[-1]


def gradient_factors(model, config, new_head):
    """Per trainable variable: (lr multiplier, weight decay), Caffe's lr_mult and decay_mult."""
    mults = dict(config.lr_mults or {})
    if new_head:
        mults.setdefault("fc8", config.head_lr_mult)
    out = []
    for v in model.trainable_variables:
        layer, kind = _owner(v)
        is_bias = kind == "bias"
        mult = float(mults.get(layer, 1.0)) * (config.bias_lr_mult if is_bias else 1.0)
        decay = 0.0 if is_bias and not config.decay_biases else config.weight_decay
        out.append((mult, decay))
    return out


def eval_limit(config):
    """The images of a validation pass: `--eval-steps` batches; unset, `config.EVAL_IMAGES`
    (a whole number of batches); None for `--eval-steps 0` (all)."""
    from alexnet_keras.training.config import EVAL_IMAGES

    if config.eval_steps is None:
        return -(-EVAL_IMAGES // config.batch_size) * config.batch_size
    return config.eval_steps * config.batch_size or None


def eval_sample(split, count):
    """At most `count` images of `split`, spread over it (None: all of them).

    An image folder's split is sorted by class, so its first images would be
    a few classes: it is sampled every k-th file. A TFDS split is in its
    prepared (shuffled) order, and reading every record to keep one in k
    would read the whole split: its first `count` records are taken.

    Example:

    >>> from alexnet_keras.data import open_dataset
    >>> splits, info = open_dataset("folder:../shared/data/cifar10-mini")
    >>> sample = eval_sample(splits["eval"], 20)
    >>> len(sample), sorted({int(y) for _, y in sample}) == list(range(10))
    (20, True)
    """
    from alexnet_keras.data import Split

    if count is None or len(split) <= count:
        return split
    if not split.is_path:
        return split.take(count)
    stride = -(-len(split) // count)
    return Split(references=split.references.shard(stride, 0),
                 size=-(-len(split) // stride), is_path=True, decode=split.decode)  # fmt: skip


def alexnet_setup(config, strategy, splits, info, initial_weights=_RESOLVE):
    """AlexNet: the model (or its head on cached features), factors, pipelines and saver.

    Args:
        config: the run's `TrainConfig`.
        strategy: the variables are made in its scope.
        splits, info: `data.open_dataset(config.dataset, ...)`.
        initial_weights: `weights_path(config.weights)`, if resolved already.

    Returns:
        A `Setup`.

    Raises:
        ValueError: a new head (other classes than the weights') that
            `lr_mults` freezes, and what `build_model` refuses.
    """
    from alexnet_keras import data, weights

    classes = len(info.class_names)
    with strategy.scope():
        init = build_model(config, classes, initial_weights)
        freeze(init.model, config.trainable_from)
    meta = init.weights_meta
    new_head = meta is None or meta["classes"] != classes
    if new_head and meta is not None and (config.lr_mults or {}).get("fc8", 1) == 0:
        raise ValueError(
            f"{init.weights_path}: has {meta['classes']} classes and {config.dataset} has "
            f"{classes}, so fc8 starts from random weights and must train; lr_mults freezes it"
        )
    size, batch, preprocessing = init.input_size, config.batch_size, init.preprocessing
    eval_images = info.num_examples["eval"]
    if config.cache_features:
        from alexnet_keras.training.feature_cache import head_trainer_inputs

        train_model, make_train, make_eval, steps = head_trainer_inputs(
            config, strategy, init.model, splits, info, size, preprocessing,
            pathlib.Path(config.model_dir),
        )  # fmt: skip
    else:
        train_model = init.model
        steps = info.num_examples["train"] // batch
        sample = eval_sample(splits["eval"], eval_limit(config))
        eval_images = len(sample)

        def make_train(epoch, skip):
            return data.train_pipeline(
                splits["train"], input_size=size, batch_size=batch, preprocessing=preprocessing,
                seed=config.seed, epoch=epoch, skip_batches=skip, pca_std=config.pca_std,
            )  # fmt: skip

        def make_eval():
            return data.eval_pipeline(
                sample, input_size=size, batch_size=batch, preprocessing=preprocessing,
                ten_crop=config.ten_crop,
            )  # fmt: skip

    def save_weights(path, source):
        source = {**source, "initial_weights": init.weights_path}
        return weights.save_weights(
            init.model, path, variant=init.variant, class_names=list(info.class_names),
            preprocessing=preprocessing, source=source,
        )  # fmt: skip

    return Setup(model=train_model, factors=gradient_factors(train_model, config, new_head),
                 make_train=make_train, make_eval=make_eval, steps=steps,
                 save_weights=save_weights, notes=init.notes,
                 eval_images=eval_images)  # fmt: skip


def cfg_setup(config, strategy, splits, info):
    """A CHM cfg net: its model, the params file's factors, cuda-convnet's provider, the saver.

    The net is `config.chm_net`, the cfg pair `resolve` read; a config made
    without it reads the pair here.

    Args:
        config: the run's `TrainConfig`, with `chm_layers` and `chm_params`.
        strategy: the variables are made in its scope.
        splits, info: `data.open_dataset(config.dataset, ...)`.

    Returns:
        A `Setup`.

    Example:

    >>> import tensorflow as tf
    >>> from alexnet_keras.data import open_dataset
    >>> from alexnet_keras.training.config import resolve
    >>> cfg = "../shared/data/chm-release/example-layers/"
    >>> config = resolve("train", {"dataset": "folder:../shared/data/cifar10-mini",
    ...                            "chm_layers": cfg + "layers-80sec.cfg",
    ...                            "chm_params": cfg + "layer-params-80sec.cfg",
    ...                            "model_dir": "runs/example"})
    >>> splits, info = open_dataset(config.dataset)
    >>> setup = cfg_setup(config, tf.distribute.get_strategy(), splits, info)
    >>> setup.model.output_shape, setup.steps, setup.factors[0]  # conv1: epsW, wc
    ((None, 10), 1, (0.001, 0.004))
    """
    from alexnet_keras.cuda_convnet import update_rule
    from alexnet_keras.cuda_convnet.cfg_net import read_net
    from alexnet_keras.cuda_convnet.cfg_weights import save_mirror_weights
    from alexnet_keras.training import chm_data

    net = config.chm_net or chm_data.sized_net(
        read_net(config.chm_layers, config.chm_params, semantics=config.convnet_semantics),
        config.as_dict(),
    )
    with strategy.scope():
        model, full = update_rule.build(net, len(info.class_names), config.seed)
    mean = chm_data.start_from(config.weights, net, full)
    provider, data_note = chm_data.provider(config, splits, net, mean)
    notes = list(net.notes)
    if config.milestones:  # as `recipe` read them from the params file, or --milestones
        epochs = ", ".join(map(str, config.milestones))
        notes.append(f"{config.chm_params}: lr x{config.gamma:g} after epochs {epochs}, "
                     f"{config.epochs} epochs")  # fmt: skip
    notes.append(data_note)
    rates = update_rule.rate_schedule(model, net, config.seed)
    notes.extend(rates.notes if rates else ())

    def save_weights(path, source):
        source = {**source, "provider": chm_data.record(provider)}
        arrays = {layer.name: full.get_layer(layer.name).get_weights()
                  for layer in net.layers if layer.type in BUILT_WEIGHT_TYPES}  # fmt: skip
        mean = provider.mean.transpose(2, 0, 1)  # CHW, as batches.meta holds it
        return save_mirror_weights(
            net, arrays, path, class_names=list(info.class_names), mean=mean, source=source
        )

    return Setup(model=model, factors=update_rule.gradient_factors(model, net),
                 make_train=provider.train, make_eval=provider.eval,
                 steps=provider.steps_per_epoch(), save_weights=save_weights,
                 notes=tuple(notes), eval_images=provider.num_eval,
                 rate_schedule=rates)  # fmt: skip

"""A cfg run's data: cuda-convnet's CIFAR provider or its cropped one, and the batch ranges.

`--chm-provider cifar` serves whole images minus the mean
(`cuda_convnet.cifar_provider`); `cifar-cropped` serves random mirrored
24x24 crops and tests on the centre crop, or with `--multiview` on
cuda-convnet's views (`cuda_convnet.cropped_provider`). Unset, the net's
input side decides: a net that reads 24x24 images (the conv-local nets,
`cfg_net`'s image-size rule) on a 32x32 dataset gets the cropped provider,
a net that reads the dataset's side the whole images.

`--train-range 1-4 --test-range 5` are cuda-convnet's options of the same
name over CIFAR-10's six batches (1-5 the training files, 6 the test set):
Methodology's held-out protocol (examples/chm_cifar10/README.md).
"""

import numpy as np

__all__ = ["OPTIONS", "check", "net_image_size", "provider", "record", "sized_net", "start_from"]

PROVIDERS = (None, "cifar", "cifar-cropped")
OPTIONS = {
    "chm_provider": ("choice", "cifar: whole images; cifar-cropped: random mirrored 24x24 crops "
                               "(a 32x32-net's input becomes 24). Default: cifar-cropped for a "
                               "net reading 24x24 images (the conv-local nets), else cifar."),
    "multiview": ("flag pair", "cifar-cropped: validate on cuda-convnet's multiview set (9 "
                               "views in 2011's code, 10 in 2012's; softmax averaged), not the "
                               "centre crop."),
    "train_range": (str, "CIFAR-10 batches to train on, as cuda-convnet's: 1-4 (1-5 the "
                         "training files, 6 the test set). Default: the train split."),
    "test_range": (str, "CIFAR-10 batches to validate on, e.g. 5. Default: the test split."),
}  # fmt: skip
_CIFAR_SIDE, _CROP = 32, 24


def check(config):
    """Refuses the options of this module outside a cfg run, and bad batch ranges."""
    given = [k for k in OPTIONS if getattr(config, k) not in (None, False)]
    if given and not config.chm_layers:
        shown = ", ".join("--" + k.replace("_", "-") for k in given)
        raise ValueError(f"{shown}: for a --chm-layers run (cuda-convnet's CIFAR providers)")
    if config.multiview and config.chm_provider == "cifar":
        raise ValueError(
            "--multiview: the views are crops; --chm-provider cifar reads whole images"
        )
    for key in ("train_range", "test_range"):
        if getattr(config, key) is not None:
            from alexnet_keras.cuda_convnet.cropped_provider import parse_range

            parse_range(getattr(config, key), "--" + key.replace("_", "-"))


def net_image_size(default, provider_name):
    """The side a cfg net reads: its default (`cfg_net`), or the one `--chm-provider` implies.

    Example:

    >>> net_image_size(32, "cifar-cropped"), net_image_size(24, "cifar"), net_image_size(24, None)
    (24, 32, 24)
    """
    if provider_name == "cifar-cropped" and default == _CIFAR_SIDE:
        return _CROP
    if provider_name == "cifar" and default == _CROP:
        return _CIFAR_SIDE
    return default


def sized_net(net, given):
    """`net` read again at the side `--chm-provider` implies (`net_image_size`), if another."""
    import dataclasses

    from alexnet_keras.cuda_convnet.cfg_net import read_net

    name = given.get("chm_provider")
    size = net_image_size(net.image_size, name)
    if size == net.image_size:
        return net
    net = read_net(given["chm_layers"], given["chm_params"], image_size=size,
                   semantics=given.get("convnet_semantics"))  # fmt: skip
    what = "24x24 crops of the 32x32 images" if size == _CROP else "whole 32x32 images"
    return dataclasses.replace(net, notes=(f"image size {size}: --chm-provider {name} reads "
                                           f"{what}", *net.notes[1:]))  # fmt: skip


def _dataset_side(splits, size):
    """The side of the dataset's first training image."""
    image, _ = next(iter(splits["train"]))
    side = int(image.shape[0])
    return side if side > size else size


def _range_arrays(config, splits, side, channels):
    """`(arrays, full training mean, note)` of `--train-range`/`--test-range` over CIFAR-10."""
    from alexnet_keras.cuda_convnet.cifar_provider import load_split
    from alexnet_keras.cuda_convnet.cropped_provider import (
        TEST_BATCH,
        follows_archive,
        parse_range,
        select_batches,
    )
    from alexnet_keras.data.sources import tfds_ids

    if config.dataset != "cifar10":
        raise ValueError(
            "--train-range/--test-range: batches are CIFAR-10's data_batch_1..5 and its test "
            f"batch; use --dataset cifar10. Received: {config.dataset}"
        )
    train = load_split(splits["train"], config.dataset, side, channels)
    test = load_split(splits["eval"], config.dataset, side, channels)
    ids = tfds_ids(config.dataset, "train", data_dir=config.data_dir)
    ranges = [parse_range(r, f) if r else d for r, f, d in (
        (config.train_range, "--train-range", tuple(range(1, TEST_BATCH))),
        (config.test_range, "--test-range", (TEST_BATCH,)))]  # fmt: skip
    arrays = [select_batches(r, train, test, ids) for r in ranges]
    # The mean of all five training files, as the one batches.meta of cuda-convnet's CIFAR-10
    # holds, so a run that folds batch 5 in later sees the same inputs.
    note = "" if follows_archive(train[1], ids) else (
        f"; this {config.dataset}'s ids do not follow the archive's data_batch_1..5 order "
        "(train_00000..09 lack data_batch_1's first labels), so batch b is ids "
        "(b-1)*10000..b*10000-1: fixed sets of 10,000 images, not the archive's files"
    )  # fmt: skip
    return arrays, train[0].mean(axis=0, dtype=np.float64), note


def provider(config, splits, net, mean=None):
    """`(provider, note)` for a cfg run: `MemoryProvider` or `CroppedProvider`.

    Args:
        config: the run's `TrainConfig`.
        splits: `data.open_dataset(config.dataset)`'s.
        net: the `ChmNet`; its `image_size` is the side it reads.
        mean: the full-size mean image to use (a previous run's), or None.
    """
    from alexnet_keras.cuda_convnet.cifar_provider import MemoryProvider
    from alexnet_keras.cuda_convnet.cropped_provider import CroppedProvider

    c, size, _ = net.image_shape
    side = _dataset_side(splits, size) if config.chm_provider != "cifar" else size
    cropped = config.chm_provider == "cifar-cropped" or side > size
    if not cropped and config.multiview:
        raise ValueError(f"--multiview: the views are crops, and {net.source} reads whole "
                         f"{size}x{size} images")  # fmt: skip
    arrays, order_note = None, ""
    if config.train_range or config.test_range:
        arrays, full_mean, order_note = _range_arrays(config, splits, side, c)
        mean = full_mean if mean is None else mean
    common = dict(channels=c, batch_size=config.batch_size, seed=config.seed, mean=mean,
                  arrays=arrays)  # fmt: skip
    ranges = f", batches {config.train_range or '1-5'} / {config.test_range or '6'}{order_note}"
    if not cropped:
        p = MemoryProvider(splits, config.dataset, image_size=size, **common)
        return p, (f"cuda-convnet CIFAR provider: {size}x{size}, 0..255 minus the per-pixel "
                   f"mean of the training images, no crop, no flip"
                   f"{ranges if arrays else ''}")  # fmt: skip
    era = net.semantics  # the cuda-convnet the net was written for: 9 views in 2011's, 10 in 2012's
    p = CroppedProvider(splits, config.dataset, image_size=side, crop=size,
                        multiview=bool(config.multiview), era=era, **common)  # fmt: skip
    test = (f"{len(p.views)} views ({era} code), softmax averaged" if p.multiview
            else "the centre crop")  # fmt: skip
    why = "--chm-provider" if config.chm_provider else f"the net reads {size}, the data is {side}"
    return p, (f"cuda-convnet cropped CIFAR provider ({why}): random {size}x{size} crops of "
               f"{side}x{side}, mirrored half the time, minus the centre window of the "
               f"per-pixel mean; validation on {test}{ranges if arrays else ''}")  # fmt: skip


def start_from(weights, net, full):
    """Sets `full`'s weights from a cfg run's weights file; returns its mean image (HWC) or None.

    Methodology's later phases continue from the net an earlier phase saved
    (`--weights runs/phase1/model.weights.h5`): the same cfg net, its
    weights and its mean image. The optimizer's momentum starts at zero.

    Raises:
        ValueError: naming the file: not a cfg-model weights file, or a layer
            missing or of another shape.
    """
    import pathlib

    from alexnet_keras.cuda_convnet.cfg_weights import is_mirror_file, load_mirror

    if weights is None:
        return None
    if not pathlib.Path(weights).is_file() or not is_mirror_file(weights):
        raise ValueError(f"--weights {weights}: a --chm-layers run starts from a cfg-model "
                         "weights file (the model.weights.h5 of a --chm-layers run)")  # fmt: skip
    saved, meta = load_mirror(weights)
    names = {layer.name for layer in saved.layers}
    for layer in full.layers:
        if not layer.weights:
            continue
        want = [tuple(w.shape) for w in layer.weights]
        got = [tuple(w.shape) for w in saved.get_layer(layer.name).weights] if (
            layer.name in names) else None  # fmt: skip
        if got != want:
            raise ValueError(f"{weights}: layer {layer.name!r} of {net.source} is {want}; the "
                             f"file holds {got}")  # fmt: skip
        layer.set_weights(saved.get_layer(layer.name).get_weights())
    mean = meta.get("mean")
    return None if mean is None else np.asarray(mean, np.float32).transpose(1, 2, 0)


def record(provider):
    """What a weights file keeps of the provider, for `evaluate` (`source["provider"]`)."""
    border = getattr(provider, "border", 0)
    if not border:
        return {"type": "cifar"}
    return {"type": "cifar-cropped", "crop_border": border, "multiview_era": provider.era}

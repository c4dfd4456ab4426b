"""The type and range of every key of a training config, checked before anything runs.

`config.TrainConfig` checks each field with `check_value`, given the field's
annotation (`int`, `float | None`, ...); `config.resolve` checks the values
of a `--config` file the same way first, so that a message names the file.
"""

import math
import re
import typing

from alexnet_keras.variants import WEIGHTED_LAYERS

__all__ = ["RANGES", "check_local", "check_value", "shown_value"]

# Numeric ranges, `(low, high)` inclusive; ints also stay below 2**31 (TensorFlow's int32
# sizes) and floats must be finite (`lr: .nan` would train to NaN weights and exit 0).
_INT_MAX = 2**31 - 1
RANGES = {"epochs": (1, _INT_MAX), "batch_size": (1, _INT_MAX), "step_epochs": (1, _INT_MAX),
          "plateau_patience": (0, _INT_MAX), "checkpoint_every": (1, _INT_MAX),
          "max_to_keep": (1, 1000), "cpu_devices": (1, 256), "log_every": (1, _INT_MAX),
          "steps_per_epoch": (1, _INT_MAX), "eval_steps": (0, _INT_MAX),
          "seed": (0, 2**32 - 1),  # numpy's seed range
          "lr": (0, math.inf), "momentum": (0, 1), "weight_decay": (0, math.inf),
          "bias_lr_mult": (0, math.inf), "head_lr_mult": (0, math.inf), "gamma": (0, math.inf),
          "warmup_epochs": (0, _INT_MAX), "holdout": (0, 1), "pca_std": (0, math.inf)}  # fmt: skip
_MAX_TEXT = 4096  # PATH_MAX


def shown_value(value):
    """`repr(value)`, cut to 60 characters (a hostile value may be megabytes long)."""
    try:
        text = repr(value)
    except RecursionError:
        return f"a {type(value).__name__} nested too deeply"
    return text if len(text) <= 60 else text[:57] + "..."


def _wanted(kind, low, high):
    """What a number must be, in words: "a positive integer", "a finite number in 0..1"."""
    what = "finite number" if kind is float else "integer"
    if high in (math.inf, _INT_MAX) and low in (0, 1):
        return f"a {'positive' if low else 'non-negative'} {what}"
    return f"a {what}" + ("" if low is None else f" in {low}..{high}")


def _kind(annotation):
    """The types a key takes, from `TrainConfig`'s annotation: (type, may be None)."""
    args = typing.get_args(annotation)
    if args:  # `int | None`
        return next(a for a in args if a is not type(None)), type(None) in args
    return annotation, False


def check_value(key, value, annotation):
    """Raises a one-line `ValueError` unless `value` has `key`'s type and range.

    Example:

    >>> check_value("lr", 0.01, float)
    >>> check_value("step_epochs", 0, int)
    Traceback (most recent call last):
    ValueError: `step_epochs` must be a positive integer. Received: 0
    """
    kind, optional = _kind(annotation)
    if value is None and (optional or key == "lr_mults"):
        return
    low, high = RANGES.get(key, (None, None))
    if kind is int or kind is float:
        number = (int, float) if kind is float else int
        ok = isinstance(value, number) and not isinstance(value, bool)
        ok = ok and math.isfinite(value) and (low is None or low <= value <= high)
        if not ok:
            raise ValueError(
                f"`{key}` must be {_wanted(kind, low, high)}. Received: {shown_value(value)}"
            )
    elif kind is bool and not isinstance(value, bool):
        raise ValueError(f"`{key}` must be true or false. Received: {shown_value(value)}")
    elif kind is str and (not isinstance(value, str) or "\0" in value or len(value) > _MAX_TEXT):
        raise ValueError(f"`{key}` must be a string. Received: {shown_value(value)}")
    elif key == "lr_mults":
        _check_mults(value)
    elif key == "milestones":
        ok = isinstance(value, (list, tuple)) and len(value) <= 1000
        ok = ok and all(type(m) is int and 1 <= m <= _INT_MAX for m in value)
        if not ok or list(value) != sorted(set(value)):
            raise ValueError(f"`milestones` must be increasing positive epochs. "
                             f"Received: {shown_value(value)}")  # fmt: skip


def _check_mults(mults):
    ok = hasattr(mults, "items") and all(
        k in WEIGHTED_LAYERS
        and isinstance(v, (int, float))
        and not isinstance(v, bool)
        and math.isfinite(v)
        and v >= 0
        for k, v in mults.items()
    )
    if not ok:
        raise ValueError(
            f"`lr_mults` must map layer names ({', '.join(WEIGHTED_LAYERS)}) to finite numbers "
            f">= 0. Received: {shown_value(mults)}"
        )


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def check_local(config):
    """Refuses `gs://` and other TF file-system URLs, before a `./gs:` folder can be made."""
    folder = config.dataset[len("folder:") :] if config.dataset.startswith("folder:") else None
    for flag, value, why in (
        ("--model-dir", config.model_dir, "the run folder's lock file and its checkpoints' "
         "atomic renames need a POSIX file system; train into a local folder, then copy it"),
        ("--data-dir", config.data_dir, "datasets are read from the local file system; "
         "copy the TFDS data dir to a local folder first"),
        ("--dataset folder:", folder, "image folders are read from the local file system"),
    ):  # fmt: skip
        if isinstance(value, str) and _URL.match(value):
            raise ValueError(f"{flag} {value}: a URL, not a local folder ({why})")

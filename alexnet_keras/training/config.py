"""The trainer's configuration: a typed, frozen `TrainConfig`, defaults per command, resume checks.

A run's configuration is resolved in this order: the command's defaults
(`finetune` or the paper's `train` recipe), then `--config FILE.yaml`, then
the options given on the command line. The result is written to
`<model_dir>/config.yaml`. Running again in the same model dir resumes; the
keys in `MUTABLE` may change between runs (e.g. more epochs), any other
difference is an error that names it.

Without `--model-dir` the run folder is `runs/<dataset>-<run_id>`: `run_id`
is 8 hex digits of a hash of the resolved config without the `MUTABLE` keys.
So the same command run again lands in the same folder and resumes, a
command that changes what is trained (another `--lr`) gets a new folder, and
`--epochs 20` after a 10-epoch run trains 10 more epochs in the same one.

A cfg run (`--chm-layers`/`--chm-params`) reads its cfg pair once, here:
the parsed `ChmNet` travels in `TrainConfig.chm_net` to the setup that
builds the net, and is not written to `config.yaml`.
"""

import dataclasses
import hashlib
import json
import os
import pathlib
import re
import types

from alexnet_keras.cuda_convnet.era import HELP as SEMANTICS_HELP
from alexnet_keras.training import chm_data, config_file
from alexnet_keras.training.cfg_run import CHM_DEFAULTS, chm_defaults
from alexnet_keras.training.config_checks import check_local, check_value, shown_value
from alexnet_keras.variants import WEIGHTED_LAYERS, check_input_size

__all__ = ["CHM_DEFAULTS", "COMMAND_DEFAULTS", "EVAL_IMAGES", "MUTABLE", "OPTIONS", "TrainConfig",
           "check_resume", "defaults", "resolve", "run_id"]  # fmt: skip

CHOICES = {
    "schedule": ("step", "plateau", "cosine", "constant"),
    "mixed_precision": (None, "auto", "bf16", "fp16"),
    "strategy": ("auto", "one-device", "mirrored", "multi-worker"),
    "feature_layer": ("fc7", "pool5"),
    "variant": (None, "bvlc", "caffenet", "chm2012"),
    "trainable_from": (None, *WEIGHTED_LAYERS),
    "command": ("finetune", "train"),
    "convnet_semantics": (None, "2011", "2012"),
    "chm_provider": chm_data.PROVIDERS,
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """The resolved configuration of one `finetune` or `train` run.

    The field defaults are what both commands share; `COMMAND_DEFAULTS`
    holds what differs, and `resolve` builds the config a command runs with.
    Construction validates every value (one-line `ValueError`s), so
    `dataclasses.replace` gives a checked config too. `as_dict()` is what
    `config.yaml` holds.

    Example:

    >>> import dataclasses
    >>> c = resolve("finetune", {"dataset": "cifar10", "model_dir": "runs/x"})
    >>> c.lr, c.weights, c.head_lr_mult, c.epochs
    (0.001, 'bvlc_alexnet', 10.0, 10)
    >>> dataclasses.replace(c, epochs=20).epochs
    20
    """

    dataset: str | None = None
    data_dir: str | None = None
    weights: str | None = None
    variant: str | None = None
    input_size: int | None = None
    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 5e-4
    decay_biases: bool = False
    bias_lr_mult: float = 1.0
    head_lr_mult: float = 1.0
    lr_mults: types.MappingProxyType | None = dataclasses.field(default_factory=dict)
    schedule: str = "step"
    step_epochs: int = 30
    gamma: float = 0.1
    plateau_patience: int = 1
    warmup_epochs: float = 0
    freeze_backbone: bool = False
    trainable_from: str | None = None
    mixed_precision: str | None = None
    model_dir: str | None = None
    checkpoint_every: int = 500
    max_to_keep: int = 3
    seed: int | None = 0
    strategy: str = "auto"
    cpu_devices: int = 1
    steps_per_epoch: int | None = None
    eval_steps: int | None = None
    cache_features: bool = False
    feature_layer: str = "fc7"
    cache_flip: bool = True
    strict_data: bool = False
    holdout: float = 0.1
    pca_std: float = 0.1
    ten_crop: bool = False
    log_every: int = 20
    milestones: tuple = ()
    chm_layers: str | None = None
    chm_params: str | None = None
    convnet_semantics: str | None = None
    chm_provider: str | None = None  # `chm_data`: a cfg run's provider, views and batches
    multiview: bool = False
    train_range: str | None = None
    test_range: str | None = None
    command: str = "finetune"
    # The parsed cfg pair of a cfg run (`cuda_convnet.cfg_net.read_net`); not saved.
    chm_net: object = dataclasses.field(default=None, compare=False, repr=False)

    def __post_init__(self):
        if not isinstance(self.dataset, str) or not self.dataset:
            raise ValueError(
                "`--dataset` is required (a TFDS name such as cifar10, or folder:PATH)"
            )
        _validate(self)
        # Frozen all the way down: containers become read-only views.
        object.__setattr__(self, "milestones", tuple(self.milestones))
        if self.lr_mults is not None:  # None (`lr_mults: null` in a file) stays as written
            object.__setattr__(self, "lr_mults", types.MappingProxyType(dict(self.lr_mults)))

    def as_dict(self):
        """The keys and values `config.yaml` holds (the command last; no `chm_net`; the
        `chm_data` options only when set)."""
        out = {}
        for field in dataclasses.fields(self):
            if field.name != "chm_net":
                out[field.name] = getattr(self, field.name)
        out["milestones"] = list(self.milestones)
        for key in chm_data.OPTIONS:  # unset, left out: older runs' config.yaml and run_id hold
            if out[key] in (None, False):
                del out[key]
        out["lr_mults"] = None if self.lr_mults is None else dict(self.lr_mults)
        for key in _WHEN_SET:
            if out[key] is None:
                del out[key]
        return out


_FIELDS = {f.name: f.type for f in dataclasses.fields(TrainConfig) if f.name != "chm_net"}
# Keys that `defaults` and `config.yaml` hold only when set: a run without them keeps the
# file and run id it had before they existed.
_WHEN_SET = ("convnet_semantics",)
_COMMON = {f.name: f.default for f in dataclasses.fields(TrainConfig)
           if f.name != "chm_net" and f.name not in _WHEN_SET}  # fmt: skip
_COMMON.update(lr_mults={}, milestones=[])

COMMAND_DEFAULTS = {
    # Transfer learning: a pretrained backbone, a new head learning 10x faster.
    "finetune": {"weights": "bvlc_alexnet", "epochs": 10, "batch_size": 64, "lr": 0.001,
                 "head_lr_mult": 10.0, "schedule": "step", "step_epochs": 4},
    # Krizhevsky et al. 2012, section 5: batch 128, lr 0.01, momentum 0.9,
    # weight decay 5e-4, lr / 10 when the validation error stops improving, 90 epochs.
    "train": {"weights": None, "epochs": 90, "batch_size": 128, "lr": 0.01,
              "schedule": "plateau", "plateau_patience": 1},
}  # fmt: skip

# The command-line options of `finetune` and `train`, in --help order: config key ->
# (kind, help). The option is `--key-with-dashes`; its default is the command's own
# (`defaults`); a kind is int, float, str, "flag", "flag pair" (--x/--no-x), "epochs"
# (a comma list) or "choice" (`CHOICES[key]`).
OPTIONS = {
    "dataset": (str, "A TFDS name (cifar10, imagenet2012, ...) or folder:PATH."),
    "data_dir": (str, "The TFDS data dir (default: $TFDS_DATA_DIR)."),
    "weights": (str, "A release (imagenet = bvlc_alexnet), a .weights.h5, a .npy, .caffemodel or "
                     "cuda-convnet checkpoint, or none; with --chm-layers, a cfg run's weights."),
    "variant": ("choice", "Default: the weights', else bvlc."),
    "input_size": (int, "224..227; default: the weights'."),
    "epochs": (int, ""),
    "batch_size": (int, "The global batch, over all replicas."),
    "lr": (float, "Base learning rate."),
    "momentum": (float, ""),
    "weight_decay": (float, ""),
    "decay_biases": ("flag pair", "Caffe decays kernels only."),
    "schedule": ("choice", ""),
    "step_epochs": (int, "step schedule: epochs per /10."),
    "milestones": ("epochs", "step schedule: x gamma at these epochs, e.g. 120,130."),
    "gamma": (float, "The step / plateau factor."),
    "warmup_epochs": (float, ""),
    "head_lr_mult": (float, "Learning-rate multiplier of a new fc8."),
    "freeze_backbone": ("flag", "Train fc6..fc8 only."),
    "trainable_from": ("choice", "Freeze every layer below this one."),
    "mixed_precision": ("choice", "auto: bf16 on a CPU with AVX-512 BF16 or AMX (recommended "
                                  "there) or a GPU of compute capability >= 8.0, fp16 on older "
                                  "GPUs, else float32. Default: float32."),
    "model_dir": (str, "Checkpoints, logs and weights; a local folder. Default: "
                       "runs/<dataset>-<8 hex digits of a hash of the config, without the keys "
                       "that may change on a resume such as --epochs>, so the same command run "
                       "again resumes there and another --lr gets its own folder."),
    "checkpoint_every": (int, "Steps between checkpoints."),
    "max_to_keep": (int, ""),
    "seed": (int, ""),
    "strategy": ("choice", ""),
    "cpu_devices": (int, "Split the CPU into N logical devices."),
    "steps_per_epoch": (int, "Cap the steps per epoch."),
    "eval_steps": (int, "Validate each epoch on N batches, an evenly spaced sample of the eval "
                        "set; 0: all of it. Default: the batches of 2,000 images, one to three "
                        "minutes of AlexNet on 2 CPU cores, a top-1 within 1.1 points."),
    "cache_features": ("flag", "Frozen backbone: compute features once, train the head on them."),
    "feature_layer": ("choice", ""),
    "cache_flip": ("flag pair", "Also cache the mirror images' features."),
    "strict_data": ("flag", "A corrupt image is an error, not skipped."),
    "ten_crop": ("flag", "Validate on ten crops."),
    "log_every": (int, "Steps between progress lines."),
    "chm_layers": (str, "A CHM layers-*.cfg to train instead of AlexNet."),
    "chm_params": (str, "Its layer-params-*.cfg (lrs, momentum, decay)."),
    "convnet_semantics": ("choice", SEMANTICS_HELP),
    **chm_data.OPTIONS,
}  # fmt: skip
TRAIN_ONLY = ("chm_layers", "chm_params", "convnet_semantics", *chm_data.OPTIONS)

# Images of a default validation pass (`--eval-steps` unset). AlexNet evaluates 10 to 30
# images/s on 2 CPU cores, so a pass takes one to three minutes, next to a CIFAR-10
# training epoch's hours (the 10,000 test images would take 5 to 15); the standard error
# of a top-1 measured on 2,000 images is at most 1.1 points.
EVAL_IMAGES = 2000

MUTABLE = {"epochs", "checkpoint_every", "max_to_keep", "log_every", "eval_steps", "strategy",
           "cpu_devices", "data_dir", "strict_data", "model_dir", "multiview"}  # fmt: skip


def defaults(command):
    """The defaults of `command` ("finetune" or "train"), key by key, before any file or option.

    Example:

    >>> defaults("train")["lr"], defaults("finetune")["lr"], defaults("train")["epochs"]
    (0.01, 0.001, 90)
    """
    return {**_COMMON, **COMMAND_DEFAULTS[command], "command": command}


def _validate(config):
    check_local(config)
    chm_data.check(config)
    for key, annotation in _FIELDS.items():
        check_value(key, getattr(config, key), annotation)
    for key, choices in CHOICES.items():
        value = getattr(config, key)
        if value not in choices:
            shown = ", ".join(str(c) for c in choices if c is not None)
            raise ValueError(f"`{key}` must be one of {shown}. Received: {shown_value(value)}")
    check_input_size(config.input_size)


def _check_given(given, where):
    """Checks the type and range of each value given by a file or the command line."""
    for key, value in given.items():
        if key in _FIELDS:
            try:
                check_value(key, value, _FIELDS[key])
            except ValueError as e:
                raise ValueError(f"{where}: {e}" if where else str(e)) from None


def resolve(command, overrides, config_path=None):
    """The run's configuration: the command's defaults, then the file, then the options.

    Args:
        command: "finetune" or "train".
        overrides: options given on the command line (None values are ignored).
        config_path: optional YAML file.

    Returns:
        A `TrainConfig`.

    Raises:
        ValueError: an unknown key in the file, or an invalid value.

    Example:

    >>> c = resolve("train", {"dataset": "imagenet2012", "model_dir": "runs/x"})
    >>> c.batch_size, c.lr, c.schedule, c.epochs, c.weights
    (128, 0.01, 'plateau', 90, None)
    """
    config = defaults(command)
    loaded = {}
    if config_path is not None:
        loaded = config_file.load(config_path)
        unknown = sorted(set(loaded) - set(config) - set(_WHEN_SET))
        if unknown:
            raise ValueError(f"{config_path}: unknown keys {', '.join(unknown)}")
        loaded = {k: v for k, v in loaded.items() if k != "command"}
        _check_given(loaded, config_path)
    given = {k: v for k, v in overrides.items() if v is not None}
    _check_given(given, None)
    given = {**loaded, **given}
    net = None
    if given.get("chm_layers") or given.get("chm_params"):
        cfg_defaults, net = chm_defaults(command, given)
        config.update(cfg_defaults)
    elif given.get("convnet_semantics"):
        raise ValueError("--convnet-semantics: only for a --chm-layers run (a cfg net)")
    config.update(given)
    config["dataset"] = _normal_dataset(config["dataset"])
    if isinstance(config["weights"], str) and config["weights"].lower() == "none":
        config["weights"] = None
    if config["freeze_backbone"] and config["trainable_from"] is None:
        config["trainable_from"] = "fc6"
    resolved = TrainConfig(**config, chm_net=net)
    if resolved.model_dir is None:
        name = resolved.dataset.replace("folder:", "").rstrip("/").split("/")[-1]
        name = re.sub(r"[^\w.-]", "_", name).lstrip(".") or "data"
        folder = pathlib.Path("runs") / f"{name}-{run_id(resolved)}"
        resolved = dataclasses.replace(resolved, model_dir=str(folder))
    return resolved


def _normal_dataset(spec):
    """`folder:x/`, `folder:./x` name the folder `folder:x` does (a URL keeps its `//`)."""
    for prefix in ("folder:", "imagenet-val:"):
        if isinstance(spec, str) and spec.startswith(prefix) and "://" not in spec:
            return prefix + os.path.normpath(spec[len(prefix) :]) if spec != prefix else spec
    return spec


def run_id(config):
    """8 hex digits of a SHA-256 of `config` without the `MUTABLE` keys: the default run folder's.

    Example:

    >>> import dataclasses
    >>> a = resolve("finetune", {"dataset": "cifar10"})
    >>> a.model_dir == f"runs/cifar10-{run_id(a)}"
    True
    >>> run_id(dataclasses.replace(a, epochs=20)) == run_id(a)  # a resume may add epochs
    True
    >>> run_id(dataclasses.replace(a, lr=0.01)) == run_id(a)
    False
    """
    kept = {k: v for k, v in config.as_dict().items() if k not in MUTABLE}
    text = json.dumps(kept, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def check_resume(saved, config, model_dir):
    """Raises if `config` differs from the run in `model_dir` in a key that must not change.

    Args:
        saved: the run's `config.yaml`, as `config_file.load` reads it.
        config: the `TrainConfig` of this run.
        model_dir: named in the error.
    """
    current = config.as_dict()
    # A run saved before specs were normalised (`folder:x/`) is the same run.
    saved = {**saved, "dataset": _normal_dataset(saved.get("dataset"))}
    if saved.get("chm_layers") and "convnet_semantics" not in saved:
        saved["convnet_semantics"] = "2012"  # a cfg run saved before eras: the clipped divisor
    differ = [
        f"{key}: {shown_value(saved.get(key))} -> {shown_value(current.get(key))}"
        for key in sorted(set(saved) | set(current))
        if key not in MUTABLE and saved.get(key) != current.get(key)
    ]
    if differ:
        raise ValueError(
            f"{model_dir}: holds a run with a different configuration ({'; '.join(differ)}); "
            "use another --model-dir or the same settings"
        )

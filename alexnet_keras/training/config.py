"""The trainer's configuration: defaults per command, `--config` files, overrides, resume checks.

A run's configuration is resolved in this order: the command's defaults
(`finetune` or the paper's `train` recipe), then `--config FILE.yaml`, then
the options given on the command line. The result is written to
`<model_dir>/config.yaml`. Running again in the same model dir resumes; the
keys in `MUTABLE` may change between runs (e.g. more epochs), any other
difference is an error that names it.
"""

import datetime
import pathlib

from alexnet_keras.training import config_file
from alexnet_keras.variants import WEIGHTED_LAYERS

__all__ = ["DEFAULTS", "MUTABLE", "check_resume", "resolve"]

COMMON = {
    "dataset": None,
    "data_dir": None,
    "weights": None,
    "variant": None,
    "input_size": None,
    "epochs": 10,
    "batch_size": 64,
    "lr": 0.001,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "decay_biases": False,
    "bias_lr_mult": 1.0,
    "head_lr_mult": 1.0,
    "lr_mults": {},
    "schedule": "step",
    "step_epochs": 30,
    "gamma": 0.1,
    "plateau_patience": 1,
    "warmup_epochs": 0,
    "freeze_backbone": False,
    "trainable_from": None,
    "mixed_precision": None,
    "model_dir": None,
    "checkpoint_every": 500,
    "max_to_keep": 3,
    "seed": 0,
    "strategy": "auto",
    "cpu_devices": 1,
    "steps_per_epoch": None,
    "eval_steps": None,
    "cache_features": False,
    "feature_layer": "fc7",
    "cache_flip": True,
    "strict_data": False,
    "holdout": 0.1,
    "pca_std": 0.1,
    "ten_crop": False,
    "log_every": 20,
    "milestones": [],
    "chm_layers": None,
    "chm_params": None,
}

DEFAULTS = {
    # Transfer learning: a pretrained backbone, a new head learning 10x faster.
    "finetune": {**COMMON, "weights": "bvlc_alexnet", "epochs": 10, "batch_size": 64,
                 "lr": 0.001, "head_lr_mult": 10.0, "schedule": "step", "step_epochs": 4},
    # Krizhevsky et al. 2012, section 5: batch 128, lr 0.01, momentum 0.9,
    # weight decay 5e-4, lr / 10 when the validation error stops improving, 90 epochs.
    "train": {**COMMON, "weights": None, "epochs": 90, "batch_size": 128, "lr": 0.01,
              "schedule": "plateau", "plateau_patience": 1},
}  # fmt: skip

# A cfg run (--chm-layers/--chm-params) takes these from the params file and
# cuda-convnet's CIFAR provider; `lr` becomes a factor on the file's epsW/epsB.
CHM_DEFAULTS = {
    "lr": 1.0,
    "weight_decay": 0.0,
    "batch_size": 128,
    "pca_std": 0.0,
    "epochs": 30,
}
CHM_NOT_APPLICABLE = (
    "weights",
    "variant",
    "input_size",
    "weight_decay",
    "decay_biases",
    "bias_lr_mult",
    "head_lr_mult",
    "lr_mults",
    "freeze_backbone",
    "trainable_from",
    "cache_features",
    "feature_layer",
    "cache_flip",
    "ten_crop",
    "pca_std",
    "mixed_precision",
)

MUTABLE = {"epochs", "checkpoint_every", "max_to_keep", "log_every", "eval_steps", "strategy",
           "cpu_devices", "data_dir", "strict_data", "model_dir"}  # fmt: skip

CHOICES = {
    "schedule": ("step", "plateau", "cosine", "constant"),
    "mixed_precision": (None, "bf16", "fp16"),
    "strategy": ("auto", "one-device", "mirrored", "multi-worker"),
    "feature_layer": ("fc7", "pool5"),
    "variant": (None, "bvlc", "caffenet", "chm2012"),
    "trainable_from": (None, *WEIGHTED_LAYERS),
}
POSITIVE = ("epochs", "batch_size", "checkpoint_every", "max_to_keep", "cpu_devices", "log_every")


def _validate(config):
    for key, choices in CHOICES.items():
        if config[key] not in choices:
            shown = ", ".join(str(c) for c in choices if c is not None)
            raise ValueError(f"`{key}` must be one of {shown}. Received: {config[key]!r}")
    for key in POSITIVE:
        value = config[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{key}` must be a positive integer. Received: {value!r}")
    for key in ("lr", "momentum", "weight_decay", "gamma", "head_lr_mult", "bias_lr_mult"):
        if not isinstance(config[key], (int, float)) or config[key] < 0:
            raise ValueError(f"`{key}` must be a non-negative number. Received: {config[key]!r}")
    milestones = config["milestones"]
    if (
        not isinstance(milestones, list)
        or any(isinstance(m, bool) or not isinstance(m, int) or m < 1 for m in milestones)
        or milestones != sorted(set(milestones))
    ):
        raise ValueError(
            f"`milestones` must be increasing positive epochs. Received: {milestones!r}"
        )
    if config["input_size"] is not None and config["input_size"] not in (224, 225, 226, 227):
        raise ValueError(
            "`--input-size` must be 224..227 (AlexNet's fc6 needs a 6x6 pool5). "
            f"Received: {config['input_size']}"
        )


def resolve(command, overrides, config_path=None):
    """The run's configuration as a dict.

    Args:
        command: "finetune" or "train".
        overrides: options given on the command line (None values are ignored).
        config_path: optional YAML file.

    Raises:
        ValueError: an unknown key in the file, or an invalid value.
    """
    config = dict(DEFAULTS[command])
    loaded = {}
    if config_path is not None:
        loaded = config_file.load(config_path)
        unknown = sorted(set(loaded) - set(config) - {"command"})
        if unknown:
            raise ValueError(f"{config_path}: unknown keys {', '.join(unknown)}")
        loaded = {k: v for k, v in loaded.items() if k != "command"}
    given = {**loaded, **{k: v for k, v in overrides.items() if v is not None}}
    if given.get("chm_layers") or given.get("chm_params"):
        config.update(_chm_defaults(command, given))
    config.update(given)
    if isinstance(config["weights"], str) and config["weights"].lower() == "none":
        config["weights"] = None
    if config["freeze_backbone"] and config["trainable_from"] is None:
        config["trainable_from"] = "fc6"
    if not isinstance(config["dataset"], str) or not config["dataset"]:
        raise ValueError("`--dataset` is required (a TFDS name such as cifar10, or folder:PATH)")
    if config["model_dir"] is None:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        name = config["dataset"].replace("folder:", "").rstrip("/").split("/")[-1] or "data"
        config["model_dir"] = str(pathlib.Path("runs") / f"{name}-{stamp}")
    _validate(config)
    config["command"] = command
    return config


def _chm_defaults(command, given):
    """A cfg run's defaults: `CHM_DEFAULTS`, then what the params file states."""
    from alexnet_keras.cuda_convnet.update_rule import recipe

    if command != "train":
        raise ValueError("--chm-layers/--chm-params train a cfg net from scratch: use `train`")
    if not (given.get("chm_layers") and given.get("chm_params")):
        raise ValueError("--chm-layers and --chm-params go together (layers-*.cfg and its "
                         "layer-params-*.cfg)")  # fmt: skip
    clash = [k for k in CHM_NOT_APPLICABLE if given.get(k) not in (None, False, {}, [])]
    if clash:
        shown = ", ".join("--" + k.replace("_", "-") for k in clash)
        raise ValueError(
            f"{shown}: not for a --chm-layers run (the cfg files set the net, its rates and "
            "decay; the data is cuda-convnet's float32 CIFAR provider)"
        )
    for key in ("chm_layers", "chm_params"):
        if not pathlib.Path(given[key]).is_file():
            raise ValueError(f"--{key.replace('_', '-')} {given[key]}: no such file")
    r = recipe(given["chm_layers"], given["chm_params"])
    out = dict(CHM_DEFAULTS, momentum=r["momentum"], gamma=r["gamma"],
               milestones=r["milestones"], schedule=r["schedule"])  # fmt: skip
    if r["epochs"]:
        out["epochs"] = r["epochs"]
    return out


def check_resume(saved, config, model_dir):
    """Raises if `config` differs from the run in `model_dir` in a key that must not change."""
    differ = [
        f"{key}: {saved.get(key)!r} -> {config.get(key)!r}"
        for key in sorted(set(saved) | set(config))
        if key not in MUTABLE and saved.get(key) != config.get(key)
    ]
    if differ:
        raise ValueError(
            f"{model_dir}: holds a run with a different configuration ({'; '.join(differ)}); "
            "use another --model-dir or the same settings"
        )

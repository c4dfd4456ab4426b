"""The driver of `finetune` and `train`: resolve, prepare, build, loop, save.

As tensorflow/models' `train.py`: `run(config)` picks the `tf.distribute`
strategy (`strategies.pick_strategy`: `auto` under a `TF_CONFIG` cluster is a
multi-worker run), opens the dataset and resolves the initial weights, and
only then makes the model dir: a refusal leaves no empty run folder behind.
It holds the model dir's lock file for the whole run (a second trainer is
refused; for a folder that exists, before TensorFlow loads), removes what a
killed run left half-written, checks a resumed run's `config.yaml`, seeds
and sets the precision policy, calls the setup (`setups.alexnet_setup` or,
for `--chm-layers`, `setups.cfg_setup`), writes the resolved `config.yaml`,
and hands the setup to `trainer.Trainer`. SIGTERM / SIGINT become a flag the
loop checks after each step; the run then saves a checkpoint and returns
`"interrupted"` with the signal's name (the CLI exits 143 / 130).
"""

import contextlib
import csv
import dataclasses
import fcntl
import logging
import os
import pathlib
import re
import signal

from alexnet_keras.registry import OfflineError
from alexnet_keras.training import config as train_config
from alexnet_keras.training import config_file, setups
from alexnet_keras.training.checkpoints import is_chief
from alexnet_keras.training.precision import resolve_precision
from alexnet_keras.training.strategies import make_strategy, pick_strategy, tf_config_task
from alexnet_keras.training.trainer import DivergedError, Trainer

__all__ = ["DivergedError", "run"]

log = logging.getLogger("alexnet_keras")


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


def _lock_name(strategy):
    """`.lock` for the chief (or a lone trainer); `.lock-worker-1` and so on for other workers."""
    task = tf_config_task() if strategy == "multi-worker" else None
    if task is None:
        return ".lock"
    cluster, kind, index = task
    chief = kind == "chief" or (kind == "worker" and index == 0 and "chief" not in cluster)
    return ".lock" if chief else f".lock-{kind}-{index}"


@contextlib.contextmanager
def _locked(out, name):
    """Holds an exclusive `flock` on `out/name` (the kernel drops it when the process dies)."""
    fd = os.open(out / name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = re.sub(r"\D", "", os.pread(fd, 32, 0).decode("ascii", "replace")) or "?"
            raise ValueError(
                f"{out}: another trainer (pid {pid}) is running in this folder"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def _clean_model_dir(out):
    """Removes what a killed run left half-written: the final weights' and our temp files."""
    for pattern in (".model.weights.h5.*", "*.tmp"):
        for path in out.glob(pattern):
            if path.is_file() and not path.is_symlink():
                path.unlink()


def _write_text(path, text):
    """Writes `path` whole or not at all (a temp file renamed into place)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@contextlib.contextmanager
def _new_folder(out, lock_name):
    """Makes `out` (and its missing parents) and locks it; if the run stops before it wrote
    `config.yaml`, removes the lock file and what it made, when empty."""
    made = [p for p in (out, *out.parents) if not p.exists()]
    out.mkdir(parents=True, exist_ok=True)
    locked = False
    try:
        with _locked(out, lock_name):
            locked = True
            yield
    except BaseException:
        # Refused by the lock: the folder and its lock file are another trainer's.
        if locked and not (out / "config.yaml").exists():
            (out / lock_name).unlink(missing_ok=True)
            for folder in made:  # the run folder first, then the parents made for it
                try:
                    folder.rmdir()
                except OSError:  # not empty (or gone): what it holds is not ours to remove
                    break
        raise


def _check_folder(out, config):
    """Cleans a killed run's leftovers, and refuses a resume with another configuration."""
    _clean_model_dir(out)
    saved_path = out / "config.yaml"
    if saved_path.exists():
        train_config.check_resume(config_file.load(saved_path), config, out)


def run(config):
    """Trains or fine-tunes as `config` says.

    Args:
        config: a `TrainConfig` (`training.config.resolve`).

    Returns:
        `{"status": "finished" | "interrupted", "signal", "model_dir", "weights",
        "metrics"}`: `signal` is the name of the signal that interrupted the
        run (`"SIGTERM"`, `"SIGINT"`) or None; `metrics` is the last row of
        `metrics.csv` as numbers (`epoch` and `step` ints, the rest floats),
        or None.

    Raises:
        ValueError: bad input (the dataset, the weights, a resumed run's config,
            `TF_CONFIG`), another trainer holding the model dir's lock, or no
            intact checkpoint to resume from.
        OSError: a full disk or a folder that cannot be written (naming it and
            the space needed), or a `TF_CONFIG` peer that did not answer in time.
        DivergedError: the loss became NaN or infinite.

    Example:

    >>> import tempfile
    >>> from alexnet_keras.training import config as train_config
    >>> config = train_config.resolve("train", {
    ...     "dataset": "folder:../shared/data/cifar10-mini", "input_size": 227,
    ...     "epochs": 1, "steps_per_epoch": 1, "batch_size": 2, "eval_steps": 1,
    ...     "model_dir": tempfile.mkdtemp()})
    >>> result = run(config)  # doctest: +SKIP
    >>> result["status"], result["weights"].endswith("model.weights.h5")  # doctest: +SKIP
    ('finished', True)
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    strategy_name = pick_strategy(config.strategy)
    out = pathlib.Path(config.model_dir)
    lock_name = _lock_name(strategy_name)
    with contextlib.ExitStack() as stack:
        existing = out.is_dir()
        if existing:  # the lock and the resume check come before TensorFlow loads
            stack.enter_context(_locked(out, lock_name))
            _check_folder(out, config)
        import keras

        # The policy is process-wide; leave the caller's in place.
        stack.callback(keras.mixed_precision.set_global_policy,
                       keras.mixed_precision.global_policy())  # fmt: skip
        inputs = _open_inputs(config, strategy_name)
        if not existing:  # the inputs are good: now the folder
            stack.enter_context(_new_folder(out, lock_name))
            _check_folder(out, config)  # another trainer may have made it meanwhile
        return _run(config, out, *inputs)


def _open_inputs(config, strategy_name):
    """The strategy, the dataset and the initial weights: everything a run needs from outside,
    checked before the run folder exists."""
    from alexnet_keras import data

    strategy = make_strategy(strategy_name, config.cpu_devices)
    _seed_and_precision(config)
    try:
        splits, info = data.open_dataset(
            config.dataset,
            data_dir=config.data_dir,
            seed=config.seed,
            strict=config.strict_data,
            holdout=config.holdout,
        )
    except OfflineError as missing:
        raise _also_missing(missing, config) from None
    weights = None if config.chm_layers else setups.weights_path(config.weights)
    return strategy, splits, info, weights


def _also_missing(missing, config):
    """The dataset cannot be fetched now: if the weights cannot either, one line names both,
    so that an offline user learns everything to fetch in one run, not two."""
    if config.chm_layers:
        return missing
    try:
        setups.weights_path(config.weights)
    except OfflineError as weights_missing:
        return OfflineError(f"{missing} Also: {weights_missing}")
    except ValueError:  # bad weights are reported once the dataset is there
        pass
    return missing


def _seed_and_precision(config):
    import keras
    import tensorflow as tf

    if config.seed is not None:
        keras.utils.set_random_seed(config.seed)
        tf.config.experimental.enable_op_determinism()
    precision, why = resolve_precision(config.mixed_precision)
    if config.mixed_precision == "auto":
        log.info("mixed precision: %s (%s)", precision or "off, float32", why)
    if precision:
        keras.mixed_precision.set_global_policy(
            {"bf16": "mixed_bfloat16", "fp16": "mixed_float16"}[precision]
        )


def _steps(config, setup, info):
    """Batches per epoch: the setup's, capped by `--steps-per-epoch`; at least one."""
    steps = setup.steps
    if config.steps_per_epoch:
        steps = min(steps, config.steps_per_epoch) if steps else config.steps_per_epoch
    if steps < 1:
        raise ValueError(
            f"{config.dataset}: {info.num_examples['train']} training images make no batch "
            f"of {config.batch_size}; lower --batch-size"
        )
    return steps


def _number(text):
    """A `metrics.csv` cell as an int or a float (the text if it is neither)."""
    for kind in (int, float):
        try:
            return kind(text)
        except (TypeError, ValueError):
            pass
    return text


def _last_metrics(out):
    """The last row of `out/metrics.csv` as numbers, or None."""
    if not (out / "metrics.csv").exists():
        return None
    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return {key: _number(value) for key, value in rows[-1].items()} if rows else None


def _run(config, out, strategy, splits, info, weights):
    from alexnet_keras import data

    log.info("%s", data.dataset_summary(info))
    if config.chm_layers:
        setup = setups.cfg_setup(config, strategy, splits, info)
    else:
        setup = setups.alexnet_setup(config, strategy, splits, info, weights)
    for note in setup.notes:
        log.info("%s", note)
    setup = dataclasses.replace(setup, steps=_steps(config, setup, info))
    if is_chief(strategy):
        text = config_file.dump(
            config.as_dict(), header=f"alexnet-keras {config.command}: resolved"
        )
        _write_text(out / "config.yaml", text)
    trainer = Trainer(config, strategy, setup)
    with _Stop() as stop:
        status = trainer.fit(stop)
    result = {"status": status, "signal": stop.requested if status == "interrupted" else None,
              "model_dir": str(out), "weights": None, "metrics": _last_metrics(out)}  # fmt: skip
    if status == "finished" and trainer.chief:
        source = {"trained_by": f"alexnet-keras {config.command}", "dataset": config.dataset,
                  "initial_weights": config.weights, "model_dir": str(out)}  # fmt: skip
        # A full disk or a read-only folder is one line (`weights.atomic_write`).
        result["weights"] = str(setup.save_weights(out / "model.weights.h5", source))
    return result

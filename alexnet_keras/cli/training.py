"""`finetune` and `train`: each command's options, built from its own defaults in the config."""

import signal
import sys

import click

from alexnet_keras.cli.app import cli, fail, offline_option, quiet_tensorflow, user_errors


def _epoch_list(ctx, param, value):
    if value is None:
        return None
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected epochs such as 120,130. Received: {value}") from None


class _TrainingOption(click.Option):
    """An option whose help shows the command's real default (`shown`) while click's default
    stays None: an option not given keeps the value of a --config file."""

    def __init__(self, *decls, shown=None, **kwargs):
        super().__init__(*decls, **kwargs)
        self.shown = shown

    def get_help_record(self, ctx):
        record = super().get_help_record(ctx)
        if record is None or self.shown is None:
            return record
        spec, text = record
        return spec, f"{text}  [default: {self.shown}]" if text else f"[default: {self.shown}]"


def _training_option(command, key, kind, text, default):
    """One option of `training.config.OPTIONS`, showing `default` (the command's own)."""
    from alexnet_keras.training.config import CHM_DEFAULTS, CHOICES, TRAIN_ONLY

    flag = "--" + key.replace("_", "-")
    decls, kwargs = (flag,), {"help": text, "cls": _TrainingOption}
    if kind == "flag pair":  # flags default to None, not False: unset keeps the file's value
        decls, kwargs["default"] = (f"{flag}/--no-{flag[2:]}",), None
        kwargs["shown"] = flag[2:] if default else f"no-{flag[2:]}"
    elif kind == "flag":
        kwargs["is_flag"], kwargs["default"] = True, None
    elif kind == "epochs":
        kwargs["callback"] = _epoch_list
    else:
        kwargs["type"] = click.Choice([c for c in CHOICES[key] if c]) if kind == "choice" else kind
        kwargs["shown"] = None if default is None else str(default)
    if key in TRAIN_ONLY:  # finetune refuses them with the reason (exit 2), unlisted
        kwargs["hidden"] = command != "train"
    if key == "chm_layers":
        kwargs["help"] += (
            f" Then --lr {CHM_DEFAULTS['lr']:g} multiplies the file's epsW/epsB, --batch-size "
            f"{CHM_DEFAULTS['batch_size']}, and --epochs and the schedule come from the params "
            "file."
        )
    return click.option(*decls, **kwargs)


def _training_options(command):
    """The options of `command` with its own defaults shown; unset ones keep the config's value."""
    from alexnet_keras.training.config import OPTIONS, defaults

    values = defaults(command)
    options = [_training_option(command, key, kind, text, values.get(key))
               for key, (kind, text) in OPTIONS.items()]  # fmt: skip
    options.append(click.option("--config", "config_path", type=click.Path(),
                                help="A YAML config."))  # fmt: skip

    def decorate(fn):
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


def _log_to_stderr():
    """The trainer's progress and notes, as plain lines on stderr."""
    import logging

    class Stderr(logging.StreamHandler):
        # Resolved at each record: click's test runner swaps sys.stderr per call.
        stream = property(lambda self: sys.stderr, lambda self, value: None)

    logger = logging.getLogger("alexnet_keras")
    if not any(type(h).__name__ == "Stderr" for h in logger.handlers):
        handler = Stderr()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.INFO)


def _run(command, config_path, options):
    quiet_tensorflow()
    _log_to_stderr()
    from alexnet_keras.training import config as train_config
    from alexnet_keras.training.run import DivergedError, run

    config = train_config.resolve(command, options, config_path)
    try:
        return run(config)
    except DivergedError as e:
        fail(e, 1)


def _train(command, config_path, options):
    try:
        result = _run(command, config_path, options)
    except KeyboardInterrupt:  # Ctrl-C before the loop took the signal over (or after it)
        click.echo("SIGINT: stopped outside the training loop; run the same command again to "
                   "resume (or start)", err=True)  # fmt: skip
        sys.exit(128 + signal.SIGINT)
    if result["status"] == "interrupted":
        # 128 + the signal, as a shell reports it: a batch system must not count a
        # preempted run as done (Kubernetes Jobs retry a pod that exits non-zero).
        code = 128 + signal.Signals[result["signal"]].value if result["signal"] else 1
        click.echo(f"{result['signal'] or 'interrupted'}: checkpoint saved in "
                   f"{result['model_dir']}; run the same command again to resume",
                   err=True)  # fmt: skip
        sys.exit(code)
    m = result["metrics"] or {}
    click.echo(
        f"done: val top-1 {m.get('val_top1', 0):.4f} top-5 {m.get('val_top5', 0):.4f}"
        f"; weights {result['weights']}"
    )


@cli.command()
@_training_options("finetune")
@offline_option
@user_errors
def finetune(config_path, **options):
    """Fine-tune AlexNet on CIFAR-10, any TFDS set or an image folder.

    fc8 becomes a head with the dataset's classes; the default initial
    weights are the converted bvlc_alexnet. The run folder is --model-dir,
    by default runs/<dataset>-<8 hex digits of the config's hash>: run the
    same command again to resume there. Ctrl-C or SIGTERM saves a checkpoint
    and exits 130 or 143.
    """
    _train("finetune", config_path, options)


@cli.command()
@_training_options("train")
@offline_option
@user_errors
def train(config_path, **options):
    """Train AlexNet from scratch; defaults are the paper's recipe.

    Batch 128, lr 0.01, momentum 0.9, weight decay 5e-4, lr / 10 when the
    validation accuracy stops improving, 90 epochs. Uses every local GPU
    (MirroredStrategy); --strategy multi-worker, or auto under a TF_CONFIG
    of several workers, trains across machines. With --chm-layers and
    --chm-params it trains a CHM cfg net instead. Runs resume and stop as
    finetune's do.
    """
    _train("train", config_path, options)

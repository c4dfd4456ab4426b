"""The `alexnet-keras` click group and what every command shares: quiet TF, one-line errors."""

import functools
import os
import sys

import click

from alexnet_keras import _runtime

__all__ = ["cli", "main", "offline_option", "quiet_tensorflow", "fail", "user_errors"]


def quiet_tensorflow():
    # TF prints several INFO/oneDNN lines at import; users can still raise this.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _runtime.configure_environment()
    _runtime.quiet_tensorflow_import()


def fail(message, code):
    click.echo("Error: " + " ".join(str(message).split()), err=True)
    sys.exit(code)


def user_errors(fn):
    """Bad input (ValueError) is `Error: ...` with exit code 2; network and OS errors exit 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from alexnet_keras.registry import OfflineError

        try:
            return fn(*args, **kwargs)
        except OfflineError as e:
            fail(e, 1)
        except ValueError as e:
            fail(e, 2)
        except OSError as e:
            fail(f"{e.filename or ''}: {e.strerror or e}" if e.filename else e, 1)

    return wrapper


def _set_offline(ctx, param, value):
    if value:  # the library reads the variable (registry.offline), so a child process sees it too
        previous = os.environ.get("ALEXNET_KERAS_OFFLINE")
        os.environ["ALEXNET_KERAS_OFFLINE"] = "1"

        def restore():  # for callers that run several commands in one process (tests)
            if previous is None:
                os.environ.pop("ALEXNET_KERAS_OFFLINE", None)
            else:
                os.environ["ALEXNET_KERAS_OFFLINE"] = previous

        ctx.call_on_close(restore)
    return value


def offline_option(fn):
    """`--offline`: never touch the network; what is missing is one error line (exit 1)."""
    return click.option(
        "--offline",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_set_offline,
        help="Never touch the network (also ALEXNET_KERAS_OFFLINE=1): use the cache and "
        "prepared datasets only; a missing file is one error line naming what to fetch "
        "and where to put it.",
    )(fn)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="alexnet-keras")
def cli():
    """AlexNet for Keras 3: faithful models, legacy weight converters, training, export."""


def main():  # pragma: no cover - console-script entry
    # `alexnet_keras.cli` (the entry point's package) has registered every command by now.
    cli(prog_name="alexnet-keras")

"""The `alexnet-keras` click group and what every command shares: quiet TF, one-line errors."""

import functools
import os
import sys

import click

from alexnet_keras import _runtime

__all__ = ["cli", "main", "offline_option", "quiet_tensorflow", "fail", "user_errors"]


_VERBOSE = "alexnet_keras.verbose"


def quiet_tensorflow():
    """Prepares a command that runs on TensorFlow: its logs stay off the terminal.

    TensorFlow's native lines (oneDNN, CUDA, absl), its and absl's Python
    logs and the libraries' Python warnings are kept off stderr, unless the
    user asked for them: `--verbose`, or their own `TF_CPP_MIN_LOG_LEVEL`
    below 2 (a level they set always stands).

    Raises:
        ValueError: Keras is set to a backend other than TensorFlow.
    """
    _runtime.check_backend()
    ctx = click.get_current_context(silent=True)
    if ctx is not None and ctx.find_root().meta.get(_VERBOSE):
        _runtime.allow_tensorflow_logs()
        return
    _runtime.configure_environment()
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2") < "2":
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _runtime.quiet_tensorflow_import()
    _runtime.quiet_python_logs()


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


def _set_verbose(ctx, param, value):
    if value:
        ctx.find_root().meta[_VERBOSE] = True


def _verbose_option(also=""):
    return click.Option(
        ["--verbose"],
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_set_verbose,
        help="Let TensorFlow's, absl's and Keras' logs and warnings through" + also + ".",
    )


class _Group(click.Group):
    """A group whose commands (and subgroups) all take `--verbose`; usage errors are one line."""

    group_class = type  # `@cli.group()` (chm) is one too

    def add_command(self, cmd, name=None):
        cmd.params.append(_verbose_option())  # `chm --verbose summary` too
        super().add_command(cmd, name)

    def make_context(self, info_name, args, parent=None, **extra):
        return _one_line_usage(super().make_context, info_name, args, parent=parent, **extra)

    def invoke(self, ctx):
        return _one_line_usage(super().invoke, ctx)


def _one_line_usage(call, *args, **kwargs):
    """Click's usage errors (a wrong option or value) as one `Error:` line, exit code 2."""
    try:
        return call(*args, **kwargs)
    except click.exceptions.NoArgsIsHelpError:  # no command: the help, as click shows it
        raise
    except click.UsageError as e:
        message = e.format_message().rstrip()
        message += "" if message.endswith((".", "?", "!")) else "."
        hint = f" See '{e.ctx.command_path} --help'." if e.ctx is not None else ""
        fail(message + hint, e.exit_code)


@click.group(
    cls=_Group,
    params=[_verbose_option(" (every command takes it too)")],
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(package_name="alexnet-keras")
def cli():
    """AlexNet for Keras 3: faithful models, legacy weight converters, training, export."""


def main():  # pragma: no cover - console-script entry
    # `alexnet_keras.cli` (the entry point's package) has registered every command by now.
    cli(prog_name="alexnet-keras")

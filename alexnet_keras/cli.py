"""The `alexnet-keras` command line.

Each command parses its options and calls one library function. TensorFlow is
imported inside the commands, so `--help` stays instant. Bad input ends with a
one-line message and exit code 2, never a traceback.
"""

import functools
import os
import sys

import click

from alexnet_keras import _runtime

__all__ = ["cli"]


def _quiet_tensorflow():
    # TF prints several INFO/oneDNN lines at import; users can still raise this.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _runtime.configure_environment()


def _user_errors(fn):
    """Turns ValueError from the library into `Error: ...`, exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ValueError as e:
            message = " ".join(str(e).split())
            click.echo(f"Error: {message}", err=True)
            sys.exit(2)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="alexnet-keras")
def cli():
    """AlexNet for Keras 3: faithful models, legacy weight converters, training, export."""


@cli.command()
@click.option(
    "--variant",
    type=click.Choice(["bvlc", "caffenet", "chm2012"]),
    default="bvlc",
    show_default=True,
    help="Which AlexNet: BVLC Caffe, CaffeNet, or the CHM 2012 cuda-convnet net.",
)
@click.option(
    "--input-size",
    type=click.IntRange(min=1),
    default=None,
    help="Input height and width (224 or 227); defaults to the variant's own.",
)
@click.option(
    "--classes", type=click.IntRange(min=1), default=1000, show_default=True, help="fc8 outputs."
)
@_user_errors
def summary(variant, input_size, classes):
    """Print the layer table: name, type, output shape, parameters.

    It shows which AlexNet you have: the layer order, where the LRN sits, the
    grouped convolutions and the padding that keeps fc6 at 6x6x256.
    """
    _quiet_tensorflow()
    from alexnet_keras.summary import layer_table

    click.echo(layer_table(variant=variant, input_size=input_size, classes=classes))


def main():  # pragma: no cover - console-script entry
    cli(prog_name="alexnet-keras")

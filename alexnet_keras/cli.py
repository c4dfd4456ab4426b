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


def _fail(message, code):
    click.echo("Error: " + " ".join(str(message).split()), err=True)
    sys.exit(code)


def _user_errors(fn):
    """Bad input (ValueError) is `Error: ...` with exit code 2; network and OS errors exit 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from alexnet_keras.registry import OfflineError

        try:
            return fn(*args, **kwargs)
        except OfflineError as e:
            _fail(e, 1)
        except ValueError as e:
            _fail(e, 2)
        except OSError as e:
            _fail(f"{e.filename or ''}: {e.strerror or e}" if e.filename else e, 1)

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


@cli.command()
@click.argument("src")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Where to write.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "npy", "caffemodel", "keras"]),
    default="auto",
    show_default=True,
    help="The source format; auto reads the file's first bytes.",
)
@click.option(
    "--variant",
    type=click.Choice(["bvlc", "caffenet"]),
    default=None,
    help="Which AlexNet the weights are for. A .caffemodel says so itself; a .npy "
    "does not, and defaults to bvlc.",
)
@click.option(
    "--prototxt",
    type=click.Path(),
    default=None,
    help="A deploy.prototxt to check the .caffemodel against.",
)
@click.option(
    "--verify-images",
    type=click.Path(),
    default=None,
    help="A folder of images: compare the converted model's logits with an independent "
    "numpy Caffe forward pass on them.",
)
@click.option(
    "--verify-count", type=click.IntRange(min=1), default=8, show_default=True,
    help="How many images --verify-images uses.",
)  # fmt: skip
@click.option(
    "--to",
    type=click.Choice(["keras", "npy"]),
    default="keras",
    show_default=True,
    help="keras: a .weights.h5 with metadata. npy: caffe-tensorflow's bvlc_alexnet.npy "
    "(dict of lists), also from a .weights.h5 trained here.",
)
@click.option(
    "--class-names",
    type=click.Path(),
    default=None,
    help="A text file with one class name per line, in fc8 order (for non-ImageNet "
    "weights such as Places).",
)
@_user_errors
def convert(src, output, fmt, variant, prototxt, verify_images, verify_count, to, class_names):
    """Convert a legacy AlexNet release to Keras weights.

    SRC is bvlc_alexnet.npy (either flavour), a .caffemodel (bvlc_alexnet,
    bvlc_reference_caffenet, or any AlexNet-shaped Caffe model), a
    .weights.h5 (with --to npy), or the name of a known release
    (bvlc_alexnet, bvlc_reference_caffenet), which is downloaded and
    verified if it is not in the cache.

    The output goes to ~/.keras/models/alexnet_keras/<release>-<sha256[:8]>.weights.h5
    ($ALEXNET_KERAS_HOME overrides the folder; -o overrides the path).
    """
    from alexnet_keras import registry
    from alexnet_keras.converters.convert import convert_file, read_source

    if not os.path.exists(src) and src in registry.release_names():
        cached = registry.converted_path(src)
        if cached is not None and not (output or verify_images or to != "keras"):
            click.echo(f"{src}: already converted: {cached}")
            return
        src = str(registry.download(src, None if fmt == "auto" else fmt))
    if verify_images and to != "keras":
        raise ValueError("--verify-images checks a Keras weights file; drop --to npy")
    if verify_images:  # before converting: bad input must not leave an output file
        from alexnet_keras.converters.verify import find_images

        find_images(verify_images, verify_count)
    names = None
    if class_names is not None:
        from alexnet_keras.converters.source import existing_file

        text = existing_file(class_names, "a text file of class names").read_text("utf-8")
        names = [line.strip() for line in text.splitlines() if line.strip()]
    report = convert_file(
        src, output, fmt=fmt, variant=variant, prototxt=prototxt, to=to, class_names=names
    )
    for warning in report.warnings:
        click.echo(f"Warning: {warning}", err=True)
    click.echo(str(report))
    if verify_images:
        _quiet_tensorflow()
        from alexnet_keras.converters.verify import verify

        result = verify(report.output, read_source(src, fmt), verify_images, verify_count)
        click.echo(str(result))
        if not result.passed:
            _fail(
                f"{report.output}: the converted model disagrees with the numpy Caffe reference "
                f"(max relative logit error {result.max_rel:.3g})",
                1,
            )


def main():  # pragma: no cover - console-script entry
    cli(prog_name="alexnet-keras")

"""`alexnet-keras show ...`: pictures of a network (filters, curves, predictions, neighbours).

Each command draws one PNG with `alexnet_keras.visualization`, writes it
atomically (`-o`, or beside its input) and prints its path.
"""

import click

from alexnet_keras.cli.app import cli, offline_option, user_errors


@cli.group()
def show():
    """Draw a network's filters, training curves, predictions or nearest neighbours (PNG).

    Needs matplotlib: pip install 'alexnet-keras[viz]'.
    """


def output_option(fn):
    """`-o/--output`: the PNG to write; default beside the input, named by the picture."""
    return click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
                        help="The PNG to write. Default: beside the input.")(fn)  # fmt: skip


def _picture_path(output, source, picture):
    """`-o`, or `canvas.default_output` beside `source`; a release name's goes here (cwd)."""
    import pathlib

    from alexnet_keras.visualization.canvas import default_output

    if output:
        return output
    if pathlib.Path(source).exists():
        return default_output(source, picture)
    return pathlib.Path(f"{source}-{picture}.png")


@show.command()
@click.option("--weights", required=True,
              help="A .weights.h5 (AlexNet, or a cfg net from `train --chm-layers`), a release "
              "name or a legacy file (.npy, .caffemodel, cuda-convnet checkpoint).")  # fmt: skip
@click.option("--layer", default=None, help="The conv layer. Default: the first (conv1).")
@click.option("--max-filters", type=click.IntRange(min=1), default=None,
              help="Filters shown at most, split between the towers. Default: 256 for a first "
              "layer's colour kernels, 48 rows for a deeper layer.")  # fmt: skip
@click.option("--max-channels", type=click.IntRange(min=1), default=32, show_default=True,
              help="Input channels shown per filter of a deeper layer.")  # fmt: skip
@output_option
@offline_option
@user_errors
def filters(weights, layer, max_filters, max_channels, output):
    """Draw a conv layer's kernels: conv1 in colour (the paper's Figure 3), deeper ones in grey.

    A first layer's kernels are RGB patches, 16 a row (a Caffe file's BGR is
    reversed); a two-GPU net's towers are two blocks, GPU 1 on top. A deeper
    layer is one row per filter of grey channel slices, capped by
    --max-filters and --max-channels, as the picture says. Every value is
    scaled by the whole layer's min and max, as cuda-convnet's shownet.py
    does. The kernels are read from the file; no model is built.
    """
    from alexnet_keras.visualization.filters import draw_filters, read_kernels

    kernels = read_kernels(weights, layer)
    picture = "filters" if layer is None else f"{kernels.layer}-filters"
    path = _picture_path(output, weights, picture)
    click.echo(draw_filters(kernels, path, max_filters=max_filters, max_channels=max_channels))

"""`alexnet-keras show ...`: pictures of a network (filters, curves, predictions, neighbours).

Each command draws one PNG with `alexnet_keras.visualization`, writes it
atomically (`-o`, or beside its input) and prints its path.
"""

import click

from alexnet_keras.cli.app import cli, offline_option, quiet_tensorflow, user_errors


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


@show.command()
@click.argument("runs", nargs=-1, required=True)
@click.option("--target", type=click.FloatRange(0, 100), default=None,
              help="A top-1 error (%) to mark with a dotted line: a claim.")  # fmt: skip
@click.option("--chain", is_flag=True,
              help="The runs are phases, each from the weights the one before ended with: draw "
              "them one after another on one epoch axis.")  # fmt: skip
@output_option
@user_errors
def curves(runs, target, chain, output):
    """Draw runs' training curves from their metrics.csv, overlaid or chained.

    RUNS are run folders (`train --model-dir`) or metrics.csv files. Four
    panels per epoch: loss, top-1 and top-5 error (eval solid, train dashed)
    and the learning rate (log scale); one colour a run, named by its folder.
    A live run's unfinished last line is left out. Default -o: curves.png in
    the first run's folder.
    """
    import pathlib

    from alexnet_keras.visualization.curves import draw_curves, read_metrics

    metrics = [read_metrics(run) for run in runs]
    first = metrics[0].path
    source = first.parent if first.name == "metrics.csv" else first
    path = _picture_path(output, pathlib.Path(source), "curves")
    click.echo(draw_curves(metrics, path, target=target, chain=chain))


@show.command("predictions")
@click.option("--weights", default="bvlc_alexnet", show_default=True,
              help="A .weights.h5 or a release name.")  # fmt: skip
@click.argument("images", nargs=-1, required=True)
@click.option("--top", type=click.IntRange(1, 10), default=5, show_default=True,
              help="Bars per image.")  # fmt: skip
@click.option("--columns", type=click.IntRange(min=1), default=4, show_default=True,
              help="Images per row.")  # fmt: skip
@click.option("--max-images", type=click.IntRange(min=1), default=16, show_default=True,
              help="Draw the first this many images.")  # fmt: skip
@click.option("--ten-crop", is_flag=True, help="Score with ten crops (the centre is drawn).")
@output_option
@offline_option
@user_errors
def predictions(weights, images, top, columns, max_images, ten_crop, output):
    """Draw images with their top-5 bars, as in the paper's Figure 4 (left).

    IMAGES are files or folders. An image in a folder named by a class
    (a WordNet id such as n01440764, or a class name such as cat) gets
    that label as its title, and the true class's bar is red.
    """
    quiet_tensorflow()
    from alexnet_keras.visualization.predictions import show_predictions

    path = show_predictions(weights, images, output=output, top=top, columns=columns,
                            max_images=max_images, ten_crop=ten_crop)  # fmt: skip
    click.echo(str(path))


@show.command()
@click.option("--weights", required=True, help="A .weights.h5 or a release name.")
@click.option("--dataset", required=True,
              help="A TFDS name or folder:PATH: queries from its eval split, neighbours from its "
              "train split.")  # fmt: skip
@click.option("--data-dir", default=None, help="The TFDS data dir.")
@click.option("--queries", type=click.IntRange(1, 100), default=8, show_default=True,
              help="Eval images drawn, one a row.")  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True, help="Picks the queries.")
@click.option("--layer", default="relu7", show_default=True,
              help="The layer compared: relu7 is fc7 after its ReLU, the paper's 'last, "
              "4096-dimensional hidden layer' (fc7 is before it).")  # fmt: skip
@click.option("--dpi", type=click.IntRange(30, 600), default=100, show_default=True,
              help="Pixels per inch of the PNG; each image is 1.35 inches wide.")  # fmt: skip
@output_option
@offline_option
@user_errors
def neighbours(weights, dataset, data_dir, queries, seed, layer, dpi, output):
    """Draw eval images and their 6 nearest training images, as the paper's Figure 4 (right).

    Nearest is the Euclidean distance between the layer's outputs on the
    centre crops. Each split's features are computed once and cached in
    $ALEXNET_KERAS_HOME/features/ (an interrupted pass resumes). Each row is
    a query, framed, then its neighbours, nearest first, each labelled with
    its class and its distance.
    """
    import sys

    quiet_tensorflow()
    from alexnet_keras.visualization.neighbours import show_neighbours

    path = _picture_path(output, weights, "neighbours")
    result = show_neighbours(weights, dataset, data_dir=data_dir, queries=queries, seed=seed,
                             layer=layer, output=path, progress=sys.stderr, dpi=dpi)  # fmt: skip
    click.echo(str(result.path))

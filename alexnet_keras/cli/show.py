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

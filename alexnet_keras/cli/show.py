"""`alexnet-keras show ...`: pictures of a network (filters, curves, predictions, neighbours).

Each command draws one PNG with `alexnet_keras.visualization`, writes it
atomically (`-o`, or beside its input) and prints its path.
"""

import click

from alexnet_keras.cli.app import cli


@cli.group()
def show():
    """Draw a network's filters, training curves, predictions or nearest neighbours (PNG).

    Needs matplotlib: pip install 'alexnet-keras[viz]'.
    """


def output_option(fn):
    """`-o/--output`: the PNG to write; default beside the input, named by the picture."""
    return click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
                        help="The PNG to write. Default: beside the input.")(fn)  # fmt: skip

"""`alexnet-keras features`: a layer's outputs for images or a dataset, in an HDF5 file."""

import sys

import click

from alexnet_keras.cli.app import cli, offline_option, quiet_tensorflow, user_errors


@cli.command()
@click.option("--weights", required=True, help="A .weights.h5 or a release name.")
@click.option(
    "--layer",
    required=True,
    help="A layer of the model: fc7 (before its ReLU), relu7 (after), fc6, pool5, conv1..conv5, "
    "... (alexnet-keras summary lists them).",
)
@click.argument("images", nargs=-1)
@click.option("--dataset", default=None, help="Instead of IMAGES: a TFDS name or folder:PATH.")
@click.option("--data-dir", default=None, help="The TFDS data dir.")
@click.option("--split", type=click.Choice(["eval", "train"]), default="eval", show_default=True)
@click.option("-o", "--output", required=True, type=click.Path(), help="The HDF5 file to write.")
@click.option("--ten-crop", is_flag=True, help="Average the layer's outputs over ten crops.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@offline_option
@user_errors
def features(weights, layer, images, dataset, data_dir, split, output, ten_crop, batch_size,
             overwrite):  # fmt: skip
    """Write a layer's outputs for IMAGES (files, folders) or a --dataset split to HDF5.

    The preprocessing is the weights' own, as for predict and evaluate. The
    file holds the features (float32), the image paths or dataset indices,
    the labels (the folder's class, or -1), the class names, and attributes
    naming the layer, the weights and their sha256 and the preprocessing.
    It is written as OUTPUT.partial: a stopped run continues where it
    stopped when started again with the same arguments. Progress with an
    ETA goes to stderr; the path written to stdout.
    """  # fmt: skip
    quiet_tensorflow()
    from alexnet_keras.features.extract import extract_features

    path = extract_features(weights, layer, output, images=images, dataset=dataset,
                            data_dir=data_dir, split=split, ten_crop=ten_crop,
                            batch_size=batch_size, overwrite=overwrite,
                            progress=sys.stderr)  # fmt: skip
    click.echo(str(path))

"""The `alexnet-keras` command line.

Each command parses its options and calls one library function. TensorFlow is
imported inside the commands, so `--help` stays instant. Bad input ends with a
one-line message and exit code 2, never a traceback.

- `app`: the click group and what every command shares;
- `commands`: summary, convert, evaluate, predict, export, chm summary;
- `training`: finetune and train;
- `features`: a layer's outputs for images or a dataset (HDF5);
- `show`: the pictures (filters, curves, predictions, neighbours).
"""

from alexnet_keras.cli import commands, features, show, training  # noqa: F401  (registers the commands)
from alexnet_keras.cli.app import cli, main

__all__ = ["cli", "main"]

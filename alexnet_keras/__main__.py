"""`python -m alexnet_keras` is the `alexnet-keras` command."""

from alexnet_keras.cli import main

main()

"""`python -m alexnet_keras` is the `alexnet-keras` command."""

from alexnet_keras.cli import main

if __name__ == "__main__":
    main()

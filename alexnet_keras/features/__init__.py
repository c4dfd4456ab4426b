"""Seeing inside the network: a layer's outputs for images and datasets.

- `images`: the one image lister (`collect_images`, also `predict`'s) and its
  threaded decoder;
- `extractor`: a layer's sub-model and the one batch loop, shared with the
  trainer's `--cache-features`;
- `store`: the self-describing, resumable HDF5 features file;
- `extract`: `extract_features`, what `alexnet-keras features` runs;
- `neighbours`: each dataset split's features cached by `extract`, and the
  nearest-neighbour search of `show neighbours`.

Importing this package does not import TensorFlow.
"""

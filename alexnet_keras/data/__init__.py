"""Datasets and tf.data pipelines.

`open_dataset` opens a TFDS set, an image folder or ILSVRC-2012 val (with its
label file) as `Split`s (references and their decoder); `train_pipeline` and
`eval_pipeline` turn a split into batches. `prefetched` is the tail they end in
(prefetch, tf.data autotuning off): end your own pipelines in it too, for
`model.fit` as well, or an epoch can end late (`data.prefetch` says why).
The names are loaded on first use, so `alexnet_keras.data.image_folder` (pure
Python) does not import TensorFlow.
"""

import importlib

_PUBLIC = {
    "DatasetInfo": "sources",
    "Split": "split",
    "dataset_summary": "sources",
    "open_dataset": "sources",
    "average_crops": "pipelines",
    "train_pipeline": "pipelines",
    "eval_pipeline": "pipelines",
    "prefetched": "prefetch",
}

__all__ = list(_PUBLIC)


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'alexnet_keras.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"alexnet_keras.data.{_PUBLIC[name]}"), name)
    globals()[name] = value
    return value

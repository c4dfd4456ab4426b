"""The tail every input pipeline ends with: prefetch, and no tf.data autotuning thread.

An iterator over a dataset that tf.data autotunes runs an optimisation thread
that sleeps between passes, each sleep twice the last, from 10 ms. Deleting
the iterator can wait for the current sleep to end (not every time: which
epochs stall varies). A trainer makes one iterator per epoch, so an epoch
could end with a stall as long as the iterator had lived. Measured on
TensorFlow 2.21, 2-core Xeon VM, `train --chm-layers layers-18pct`: 60 of the
140 epochs of one run took 40.9-41.3 s where the others took about 27 s
(40.95 s = 10 ms x (2^12 - 1)); run single-threaded, 30 of 38 epochs of about
52 s of steps took 82.0 s (10 ms x (2^13 - 1)). With this tail the same runs
resumed at 51.5 s per epoch (median), with the same batches.
`benchmarks/bench_epoch_boundary.py` reproduces it.

With autotuning off there is no such thread. What it tuned falls back to
static values: a parallel map or batch with `AUTOTUNE` runs on
min(16, cores) threads (`GetAutotuneDefaultParallelism`), and
`prefetch(AUTOTUNE)` keeps its own buffer autotuner (`legacy_autotune`,
independent of the option). The benchmark shows the same throughput either way.
"""

import tensorflow as tf

__all__ = ["prefetched"]


def prefetched(ds):
    """`ds.prefetch(AUTOTUNE)`, with tf.data's autotuning thread off.

    Args:
        ds: a `tf.data.Dataset`.

    Returns:
        The dataset, prefetched; deleting an iterator over it returns at once.

    Example:

    >>> import tensorflow as tf
    >>> from alexnet_keras.data.prefetch import prefetched
    >>> ds = prefetched(tf.data.Dataset.range(4).batch(2))
    >>> [b.tolist() for b in ds.as_numpy_iterator()], ds.options().autotune.enabled
    ([[0, 1], [2, 3]], False)
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.prefetch(tf.data.AUTOTUNE).with_options(options)

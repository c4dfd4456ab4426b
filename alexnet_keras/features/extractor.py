"""The one feature extractor: a layer's sub-model and the batch loop that runs it.

`features` (an HDF5 file of any layer's outputs) and the trainer's
`--cache-features` (fc7 or pool5 memory maps) both build the sub-model with
`layer_model` and run it with `run_batches`; they differ only in where each
batch of outputs is written.
"""

from alexnet_keras.progress import Progress

__all__ = ["layer_model", "layer_names", "run_batches", "view_forward"]


def layer_names(model):
    """The names of `model`'s layers whose outputs can be extracted (all but the input).

    Example:

    >>> import alexnet_keras
    >>> from alexnet_keras.features.extractor import layer_names
    >>> names = layer_names(alexnet_keras.AlexNet())
    >>> names[:3], names[-3:]
    (['conv1', 'relu1', 'norm1'], ['drop7', 'fc8', 'prob'])
    """
    inputs = {id(t) for t in model.inputs}
    return [layer.name for layer in model.layers if id(layer.output) not in inputs]


def layer_model(model, layer):
    """A `keras.Model` from `model`'s input to the output of its layer `layer`.

    The layers (and weights) are `model`'s own, so the outputs are exactly
    what the layer computes inside the full model.

    Raises:
        ValueError: `model` has no such layer; the message lists those it has.

    Example:

    >>> import alexnet_keras
    >>> from alexnet_keras.features.extractor import layer_model
    >>> layer_model(alexnet_keras.AlexNet(), "pool5").output_shape
    (None, 6, 6, 256)
    """
    import keras

    names = layer_names(model)
    if layer not in names:
        raise ValueError(
            f"Unknown layer {layer!r}. Expected one of {', '.join(names)}. Received: {layer!r}"
        )
    return keras.Model(model.inputs, model.get_layer(layer).output, name=f"{model.name}_{layer}")


def view_forward(extractor, ten_crop=False):
    """A compiled function of a batch of preprocessed crops to the extractor's outputs.

    With `ten_crop`, the batch is `(N, 10, S, S, 3)` (`preprocessing.ten_crop`
    or `eval_pipeline(..., ten_crop=True)`) and the outputs are averaged over
    the ten views (`data.average_crops`), as `evaluate` averages the softmax.

    Example:

    >>> import numpy as np, alexnet_keras
    >>> from alexnet_keras.features.extractor import layer_model, view_forward
    >>> forward = view_forward(layer_model(alexnet_keras.AlexNet(), "pool5"), ten_crop=True)
    >>> tuple(forward(np.zeros((2, 10, 227, 227, 3), np.float32)).shape)
    (2, 6, 6, 256)
    """
    import tensorflow as tf

    from alexnet_keras.data import average_crops

    def forward(x):
        return extractor(x, training=False)

    if ten_crop:
        return tf.function(lambda x: average_crops(forward, x), reduce_retracing=True)
    return tf.function(forward, reduce_retracing=True)


def run_batches(forward, batches, write, *, total, label, start=0, stream=None, enabled=True):
    """Runs `forward` over `batches` and hands each result to `write`; shows progress.

    Args:
        forward: a function of a batch to what `write` takes (e.g. `view_forward`).
        batches: an iterable of `(x, extra)`: the model input of a batch of
            images, and what `write` needs besides the outputs (labels, indices).
        write: called as `write(done, forward(x), extra)`, where `done` counts
            the images before this batch; it stores the outputs.
        total: the number of images, for the ETA.
        label: what the progress line names.
        start: images done before `batches` (a resumed run).
        stream: where the progress line goes; default `sys.stderr`.
        enabled: `False` shows no progress.

    Returns:
        The number of images done, `start` included.

    Example:

    >>> import numpy as np
    >>> from alexnet_keras.features.extractor import run_batches
    >>> out = {}
    >>> batches = [(np.ones((2, 3)), "a"), (np.ones((1, 3)), "b")]
    >>> run_batches(lambda x: x.sum(1), batches, lambda i, y, e: out.update({i: (y, e)}),
    ...             total=3, label="sum", enabled=False)
    3
    >>> out[2]
    (array([3.]), 'b')
    """
    meter = Progress(total, label=label, unit="images", stream=stream, enabled=enabled,
                     start=start)  # fmt: skip
    done = start
    try:
        for x, extra in batches:
            write(done, forward(x), extra)
            done += len(x)
            meter.update(done)
    finally:
        meter.close()
    return done

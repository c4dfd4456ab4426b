"""The trainer's evaluation step: summed loss, top-1 and top-5 hits and images, over replicas."""

__all__ = ["eval_step"]


def eval_step(model, strategy):
    """A `tf.function` of `(x, y)` returning the summed `[loss, top-1, top-5, count]`.

    `x` is a batch of crops, or of ten crops (`(B, 10, H, W, 3)`: the
    probabilities are averaged, Caffe's oversample); the sums are reduced
    over the strategy's replicas.
    """
    import tensorflow as tf

    from alexnet_keras.data import average_crops

    def score(x, y):
        y = tf.cast(y, tf.int32)
        if x.shape.rank == 5:  # ten crops: average the probabilities (Caffe's oversample)
            probs = average_crops(
                lambda v: tf.nn.softmax(tf.cast(model(v, training=False), tf.float32)), x
            )
        else:
            probs = tf.nn.softmax(tf.cast(model(x, training=False), tf.float32))
        loss = -tf.math.log(tf.gather(probs, y, batch_dims=1) + 1e-12)
        top5 = tf.math.in_top_k(y, probs, k=min(5, probs.shape[-1]))
        top1 = tf.equal(tf.argmax(probs, -1, output_type=tf.int32), y)
        f = lambda t: tf.reduce_sum(tf.cast(t, tf.float32))  # noqa: E731
        return f(loss), f(top1), f(top5), tf.cast(tf.size(y), tf.float32)

    def step_fn(x, y):
        # A last batch smaller than the replica count leaves a replica no image, and TF's
        # CPU convolution returns its input's shape for an empty batch (conv2's grouped
        # split then fails; tensorflow#48057 reports LRN aborting there on GPUs): such a
        # replica adds zeros instead of running the model.
        zeros = (tf.constant(0.0),) * 4
        return tf.cond(tf.shape(x)[0] > 0, lambda: score(x, y), lambda: zeros)

    @tf.function
    def step(x, y):
        out = strategy.run(step_fn, args=(x, y))
        return [strategy.reduce("SUM", o, axis=None) for o in out]

    return step

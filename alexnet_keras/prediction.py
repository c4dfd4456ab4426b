"""`alexnet-keras predict`: top-k labels for image files and folders.

Images go through the evaluation preprocessing of the weights' metadata:
`load_image` (to 256 by the weights' protocol: a warp for Caffe's releases,
else the shorter side), the centre crop or ten crops, the colour
order and mean. Every file is checked before the model is built, so a bad
file fails fast, by name.
"""

import numpy as np

from alexnet_keras.features.images import collect_images, view_batches
from alexnet_keras.progress import Progress

__all__ = ["collect_images", "format_predictions", "predict_files"]


def predict_files(weights, paths, *, top=5, ten_crop=False, batch_size=32, progress=None):
    """Classifies image files.

    Args:
        weights: a `.weights.h5` with alexnet-keras metadata, or a release name.
        paths: image files and folders (see `collect_images`).
        top: labels per image.
        ten_crop: average the softmax over ten crops (corners, centre, mirrors).
        batch_size: images per forward pass.
        progress: a stream for progress lines (e.g. `sys.stderr`), shown when
            there is more than one batch; `None` for silence.

    Returns:
        One dict per image, in input order: `image` (the path) and `top`, a
        list of `{"index", "label", "id", "score"}`, best first (`id` is the
        class id, a WordNet id for ImageNet, or `None`).

    Example:

    >>> import os, tempfile, alexnet_keras
    >>> from alexnet_keras import weights
    >>> from alexnet_keras.prediction import predict_files
    >>> path = weights.save_weights(alexnet_keras.AlexNet(),
    ...     os.path.join(tempfile.mkdtemp(), "m.weights.h5"), variant="bvlc")
    >>> result = predict_files(path, ["../shared/data/imagenet-sample/n01440764"], top=2)
    >>> len(result), len(result[0]["top"])
    (1, 2)
    """
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ValueError(f"--top must be a positive integer. Received: {top!r}")
    files = collect_images(paths)
    import tensorflow as tf

    from alexnet_keras.data import average_crops
    from alexnet_keras.preprocessing import class_labels, class_names
    from alexnet_keras.pretrained import resolve

    path = resolve(weights)
    model, meta, views = _classifier(path, ten_crop)
    try:
        labels = class_labels(meta)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    ids = [n[0] if isinstance(n, (list, tuple)) else None for n in (class_names(meta) or labels)]
    top = min(top, meta["classes"])

    @tf.function(reduce_retracing=True)
    def probabilities(x):
        forward = lambda crops: model(crops, training=False)
        return average_crops(forward, x) if ten_crop else forward(x)

    meter = Progress(len(files), label="predict", unit="images", stream=progress,
                     enabled=progress is not None and len(files) > batch_size)  # fmt: skip
    results = []
    for batch in view_batches(files, views, batch_size):
        probs = probabilities(tf.constant(batch)).numpy()
        done = len(results)
        for file, row in zip(files[done : done + len(batch)], probs, strict=True):
            order = np.argsort(-row, kind="stable")[:top]
            results.append({
                "image": str(file),
                "top": [{"index": int(i), "label": labels[i], "id": ids[i],
                         "score": float(row[i])} for i in order],
            })  # fmt: skip
        meter.update(len(results))
    return results


def _classifier(path, ten_crop):
    """`(model, metadata, views)`: the net, and a function from a file to its model input.

    An AlexNet reads the weights' own preprocessing (resize protocol, crop,
    colour order, mean). A cuda-convnet cfg net (`train --chm-layers`) reads
    the image at its mean image's side minus that mean, centre-cropped to its
    input for a net trained on crops: as `evaluate` and cuda-convnet's
    providers feed it, one view.
    """
    from alexnet_keras.cuda_convnet.cfg_weights import is_mirror_file, load_mirror
    from alexnet_keras.model import AlexNet
    from alexnet_keras.preprocessing import center_crop, load_image, preprocess_fn, weights_protocol
    from alexnet_keras.preprocessing import ten_crop as ten_views
    from alexnet_keras.weights import read_metadata

    if is_mirror_file(path):
        if ten_crop:
            raise ValueError(f"{path}: a cfg net reads one view; --ten-crop is for AlexNet weights")
        model, meta = load_mirror(path)
        if meta.get("mean") is None:
            raise ValueError(f"{path}: holds no mean image; cfg nets read images minus their mean")
        mean = np.asarray(meta["mean"], np.float32).transpose(1, 2, 0)
        size = model.input_shape[1]
        if mean.shape[2] != 3 or mean.shape[0] != mean.shape[1] or mean.shape[0] < size:
            raise ValueError(f"{path}: its mean image is {mean.shape}, the net reads {size}x{size}")

        def cfg_view(file):
            image = center_crop(load_image(file, size=mean.shape[0]), mean.shape[0])
            return center_crop(image - mean, size)

        return model, {**meta, "classes": model.output_shape[-1]}, cfg_view
    meta = read_metadata(path)
    size, protocol = meta["input_size"], weights_protocol(meta)
    preprocess = preprocess_fn(meta.get("preprocessing") or meta["variant"], size)
    net = AlexNet(weights=path)

    def model(x, training=False):
        return net(preprocess(x), training=training)

    def view(file):
        image = load_image(file, protocol=protocol)
        return ten_views(image, size) if ten_crop else center_crop(image, size)

    return model, meta, view


def format_predictions(results):
    """The text `predict` prints: each image, then its labels and scores."""
    lines = []
    for r in results:
        lines.append(r["image"])
        for t in r["top"]:
            name = f"{t['id']} {t['label']}" if t["id"] else t["label"]
            lines.append(f"  {t['score']:.4f}  {name}")
    return "\n".join(lines)

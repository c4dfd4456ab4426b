"""`convert --format cuda-convnet --verify-images`: the converted model against numpy cuda-convnet.

Both sides see the same real images: for the 224 ImageNet nets, the centre
224 crop of the shorter side resized to 256 (cuda-convnet's test crop); for
others, the shorter side resized to the net's size and centre-cropped. The
reference subtracts the mean it reads from `batches.meta` itself (the centre
crop of `data_mean`) and runs `convnet_reference` over the checkpoint's own
arrays on the cfg's two-tower graph. The Keras side loads the written
weights file, with the mean stored in it. Agreement of the logits (max
relative error <= 1e-4) shows that the halves, the fc row orders, the
per-input matrices, the norms, the `hs` scaling and the mean are right.
"""

import numpy as np

from alexnet_keras.cuda_convnet import reference as convnet_reference
from alexnet_keras.converters.verify import VerifyResult, find_images, top5_names

__all__ = ["verify_checkpoint"]


def _centre(mean, size):
    """The centre `size` crop of a CHW mean image (cuda-convnet's test-time mean crop).

    Computed here, not taken from the converter, so a wrong crop there shows.
    """
    top = (mean.shape[1] - size) // 2
    return np.asarray(mean, np.float64)[:, top : top + size, top : top + size]


def verify_checkpoint(weights_path, net, layers, batches, images_dir, count=8, *, chm2012):
    """Runs the converted weights and the numpy cuda-convnet pass on up to `count` images.

    Args:
        weights_path: the written `.weights.h5`.
        net: the checkpoint's `ChmNet` (`read_net(layers_cfg, params_cfg)`).
        layers: the checkpoint's arrays by layer name (`cuda_convnet.layer_arrays`).
        batches: `read_batches_meta(...)` or None.
        images_dir: a folder of images.
        count: how many images.
        chm2012: the weights file is `AlexNet(variant="chm2012")` weights,
            else a cfg-model file (`load_mirror`).

    Returns:
        A `VerifyResult`.
    """
    import keras

    import alexnet_keras
    from alexnet_keras.cuda_convnet.cfg_weights import load_mirror
    from alexnet_keras.variants import IMAGENET_MEAN_RGB

    c, size, _ = net.image_shape
    files = find_images(images_dir, count)
    resize = 256 if size == 224 else size
    crops = np.stack(
        [alexnet_keras.center_crop(alexnet_keras.load_image(f, resize), size) for f in files]
    ).astype(np.float64)
    given = None if batches is None else batches.get("mean")
    mean = np.zeros((c, size, size)) if given is None else _centre(given, size)
    if chm2012:
        meta = alexnet_keras.weights.read_metadata(weights_path)
        model = alexnet_keras.AlexNet(weights=weights_path, classifier_activation=None)
        x = alexnet_keras.preprocess_input(crops.astype(np.float32), variant="chm2012",
                                           mean=meta["preprocessing"]["mean"])  # fmt: skip
        names = meta.get("class_names")
        if given is None:  # the converter's documented fallback, per channel
            mean = np.broadcast_to(np.asarray(IMAGENET_MEAN_RGB, np.float64)[:, None, None],
                                   mean.shape)  # fmt: skip
    else:
        full, meta = load_mirror(weights_path)
        model = keras.Model(full.input, full.layers[-1].input)
        stored = meta.get("mean")
        x = (
            crops
            if stored is None
            else crops - _centre(np.asarray(stored), size).transpose(1, 2, 0)
        )
        names = meta.get("class_names")
    got = np.asarray(model.predict(np.asarray(x, np.float32), verbose=0), np.float64)
    images = crops.transpose(3, 1, 2, 0) - mean[..., None]
    acts = convnet_reference.forward(net, images, layers)
    want = acts[convnet_reference.logits_layer(net)]
    diff = np.abs(got - want)
    return VerifyResult(
        images=[str(f) for f in files],
        max_abs=float(diff.max()),
        max_rel=float(diff.max() / max(np.abs(want).max(), 1e-30)),
        top5_keras=top5_names(got, names),
        top5_reference=top5_names(want, names),
    )

"""`--verify-images`: a converted weights file against its source's independent numpy reference.

Both sides see the same real images, listed by the one image lister
(`data.image_folder.image_files`), and the fc8 logits must agree to a max
relative error of 1e-4. Agreement shows that the mapping, the layer order,
the norm constants and the preprocessing are all right.

- Caffe (`verify`): the shorter side resized to 256 and the centre crop.
  The reference does its own BGR swap and mean subtraction and runs Caffe's
  semantics on the source's blobs (`caffe.reference`); the Keras side goes
  through `preprocess_input` and the converted file.
- cuda-convnet (`verify_checkpoint`): for the 224 ImageNet nets, the centre
  224 crop of the shorter side resized to 256 (cuda-convnet's test crop);
  for others, the shorter side resized to the net's size and centre-cropped.
  The reference subtracts the mean it reads from `batches.meta` itself (the
  centre crop of `data_mean`) and runs `cuda_convnet.reference` over the
  checkpoint's own arrays on the cfg's two-tower graph; the Keras side loads
  the written file, with the mean stored in it. This checks the halves, the
  fc row orders, the per-input matrices, the norms, the `hs` scaling and
  the mean.
"""

import dataclasses
import pathlib

import numpy as np

from alexnet_keras.caffe import mapper
from alexnet_keras.caffe import reference as caffe_reference
from alexnet_keras.cuda_convnet import reference as convnet_reference
from alexnet_keras.data.image_folder import IMAGE_EXTENSIONS, image_files
from alexnet_keras.variants import IMAGENET_MEAN_BGR, IMAGENET_MEAN_RGB
from alexnet_keras.weights import read_metadata

__all__ = ["TOLERANCE", "VerifyResult", "find_images", "verify", "verify_checkpoint"]

TOLERANCE = 1e-4


@dataclasses.dataclass
class VerifyResult:
    """The comparison on each image; `str()` is the CLI's report."""

    images: list
    max_abs: float
    max_rel: float
    top5_keras: list
    top5_reference: list

    @property
    def passed(self):
        return self.max_rel <= TOLERANCE

    def __str__(self):
        lines = [
            f"verify   {len(self.images)} images: max |diff| {self.max_abs:.3g}, "
            f"max relative {self.max_rel:.3g} (tolerance {TOLERANCE:g}): "
            + ("PASS" if self.passed else "FAIL"),
        ]
        for image, k, r in zip(self.images, self.top5_keras, self.top5_reference, strict=False):
            lines.append(f"  {pathlib.Path(image).name}")
            lines.append(f"    keras     {', '.join(k)}")
            lines.append(f"    reference {', '.join(r)}")
        return "\n".join(lines)


def find_images(folder, count):
    """Up to `count` images of `folder` (recursively), spread evenly over the sorted list.

    Raises:
        ValueError: naming the folder, if it is not a folder or has no images.

    Example:

    >>> from alexnet_keras.converters.verify import find_images
    >>> [p.name for p in find_images("../shared/data/cifar10-mini/test/cat", 2)]
    ['0000.jpg', '0005.jpg']
    """
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: --verify-images needs a folder of images")
    files = [pathlib.Path(f) for f in image_files(folder)]
    if not files:
        raise ValueError(f"{folder}: no images ({', '.join(IMAGE_EXTENSIONS)}) found")
    step = max(1, len(files) // count)
    return files[::step][:count]


def top5_names(logits, class_names):
    """The five best class names of each row (the index when there are no names)."""
    out = []
    for row in logits:
        top = np.argsort(-row)[:5]
        out.append(
            [
                (class_names[i][1] if isinstance(class_names[i], (list, tuple)) else class_names[i])
                if class_names
                else str(i)
                for i in top
            ]
        )
    return out


def _crops(files, resize, size):
    from alexnet_keras.preprocessing import center_crop, load_image

    return np.stack([center_crop(load_image(f, resize), size) for f in files]).astype(np.float64)


def _compare(files, got, want, names):
    diff = np.abs(got - want)
    return VerifyResult(
        images=[str(f) for f in files],
        max_abs=float(diff.max()),
        max_rel=float(diff.max() / max(np.abs(want).max(), 1e-30)),
        top5_keras=top5_names(got, names),
        top5_reference=top5_names(want, names),
    )


def verify(weights_path, net, images_dir, count=8):
    """Runs the converted model and the numpy Caffe reference on up to `count` real images.

    Args:
        weights_path: the converted `.weights.h5`.
        net: the `SourceNet` it was converted from (the reference reads its
            blobs directly).
        images_dir: a folder of images.
        count: how many images to use.

    Returns:
        A `VerifyResult`.
    """
    from alexnet_keras.model import AlexNet
    from alexnet_keras.preprocessing import preprocess_input

    meta = read_metadata(weights_path)
    files = find_images(images_dir, count)
    crops = _crops(files, 256, meta["input_size"])
    model = AlexNet(weights=weights_path, classifier_activation=None)
    x = preprocess_input(crops.astype(np.float32), variant=meta["variant"])
    got = np.asarray(model.predict(x, verbose=0), np.float64)
    bgr = crops[..., ::-1] - np.asarray(IMAGENET_MEAN_BGR)
    order = "pool_lrn" if meta["variant"] == "caffenet" else "lrn_pool"
    want = caffe_reference.forward(mapper.caffe_blobs(net), bgr.transpose(0, 3, 1, 2), order=order)
    return _compare(files, got, want, meta.get("class_names"))


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
        layers: the checkpoint's arrays by layer name (`checkpoint.layer_arrays`).
        batches: `batches_meta.read_batches_meta(...)` or None.
        images_dir: a folder of images.
        count: how many images.
        chm2012: the weights file is `AlexNet(variant="chm2012")` weights,
            else a cfg-model file (`load_mirror`).

    Returns:
        A `VerifyResult`.
    """
    c, size, _ = net.image_shape
    files = find_images(images_dir, count)
    crops = _crops(files, 256 if size == 224 else size, size)
    given = None if batches is None else batches.get("mean")
    mean = np.zeros((c, size, size)) if given is None else _centre(given, size)
    if chm2012:
        model, x, names = _chm2012_side(weights_path, crops)
        if given is None:  # the converter's documented fallback, per channel
            mean = np.broadcast_to(np.asarray(IMAGENET_MEAN_RGB, np.float64)[:, None, None],
                                   mean.shape)  # fmt: skip
    else:
        model, x, names = _mirror_side(weights_path, crops, size)
    got = np.asarray(model.predict(np.asarray(x, np.float32), verbose=0), np.float64)
    acts = convnet_reference.forward(net, crops.transpose(3, 1, 2, 0) - mean[..., None], layers)
    return _compare(files, got, acts[convnet_reference.logits_layer(net)], names)


def _chm2012_side(weights_path, crops):
    """The logits model, its input and the class names of an `AlexNet(variant="chm2012")` file."""
    from alexnet_keras.model import AlexNet
    from alexnet_keras.preprocessing import preprocess_input

    meta = read_metadata(weights_path)
    model = AlexNet(weights=weights_path, classifier_activation=None)
    x = preprocess_input(crops.astype(np.float32), variant="chm2012",
                         mean=meta["preprocessing"]["mean"])  # fmt: skip
    return model, x, meta.get("class_names")


def _mirror_side(weights_path, crops, size):
    """The logits model, its input and the class names of a cfg-model file."""
    import keras

    from alexnet_keras.cuda_convnet.cfg_weights import load_mirror

    full, meta = load_mirror(weights_path)
    model = keras.Model(full.input, full.layers[-1].input)
    stored = meta.get("mean")
    x = crops if stored is None else crops - _centre(np.asarray(stored), size).transpose(1, 2, 0)
    return model, x, meta.get("class_names")

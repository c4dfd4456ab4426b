"""`--verify-images`: the converted Keras model against the numpy Caffe reference.

Both see the same real images: shorter side resized to 256, center crop,
0..255. The reference does its own BGR swap and mean subtraction and runs
Caffe's semantics on the source's blobs (`caffe_reference`); the Keras side
goes through `preprocess_input` and the converted weights file. Agreement of
the fc8 logits (max relative error <= 1e-4) shows that the mapping, the layer
order, the LRN constants and the preprocessing are all right.
"""

import dataclasses
import pathlib

import numpy as np

from alexnet_keras.caffe import reference as caffe_reference
from alexnet_keras.caffe import mapper

__all__ = ["TOLERANCE", "VerifyResult", "verify"]

TOLERANCE = 1e-4
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif"}
_BGR_MEAN = (104.00699, 116.66877, 122.67891)  # ilsvrc_2012_mean.npy, formats.md §4


@dataclasses.dataclass
class VerifyResult:
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
    """Up to `count` images of `folder` (recursively), spread evenly over the sorted list."""
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: --verify-images needs a folder of images")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in _IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"{folder}: no images (.jpg, .jpeg, .png, .bmp, .gif) found")
    step = max(1, len(files) // count)
    return files[::step][:count]


def top5_names(logits, class_names):
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


def verify(weights_path, net, images_dir, count=8):
    """Runs the converted model and the reference on up to `count` real images.

    Args:
        weights_path: the converted `.weights.h5`.
        net: the `SourceNet` it was converted from (the reference reads its
            blobs directly).
        images_dir: a folder of images.
        count: how many images to use.

    Returns:
        A `VerifyResult`.
    """
    import alexnet_keras
    from alexnet_keras import weights

    meta = weights.read_metadata(weights_path)
    size = meta["input_size"]
    files = find_images(images_dir, count)
    crops = np.stack(
        [alexnet_keras.center_crop(alexnet_keras.load_image(f, 256), size) for f in files]
    ).astype(np.float32)
    model = alexnet_keras.AlexNet(weights=weights_path, classifier_activation=None)
    x = alexnet_keras.preprocess_input(crops.copy(), variant=meta["variant"])
    keras_logits = np.asarray(model.predict(x, verbose=0), np.float64)

    bgr = crops[..., ::-1].astype(np.float64) - np.asarray(_BGR_MEAN)
    order = "pool_lrn" if meta["variant"] == "caffenet" else "lrn_pool"
    ref_logits = caffe_reference.forward(
        mapper.caffe_blobs(net), bgr.transpose(0, 3, 1, 2), order=order
    )
    diff = np.abs(keras_logits - ref_logits)
    names = meta.get("class_names")
    return VerifyResult(
        images=[str(f) for f in files],
        max_abs=float(diff.max()),
        max_rel=float(diff.max() / max(np.abs(ref_logits).max(), 1e-30)),
        top5_keras=top5_names(keras_logits, names),
        top5_reference=top5_names(ref_logits, names),
    )

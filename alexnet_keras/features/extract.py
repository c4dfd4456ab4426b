"""`alexnet-keras features`: a layer's outputs for image files or a dataset, in one HDF5 file.

Images go through the weights' own evaluation preprocessing, as `predict`
and `evaluate` do: to 256 by the weights' protocol, the centre crop (or ten
crops, whose outputs are averaged), the colour order and the mean. The file
(`features.store`) records all of it, the weights' sha256 and the layer, and
is resumable: a stopped run continues where it stopped.
"""

import numpy as np

from alexnet_keras.features.extractor import layer_model, run_batches, view_forward
from alexnet_keras.features.images import collect_images, true_index, view_batches
from alexnet_keras.features.store import PartialFile, check_output
from alexnet_keras.version import __version__

__all__ = ["extract_features"]


def _preprocessing(meta):
    """The weights' `{"color_order", "mean"}`, their variant's where they name none."""
    from alexnet_keras.variants import get_variant

    return dict(meta.get("preprocessing") or get_variant(meta["variant"]).preprocessing)


def _header(path, meta, layer, ten_crop, protocol, source):
    import hashlib

    from alexnet_keras.registry import file_digests

    pre = _preprocessing(meta)
    header = {
        "layer": layer, "weights": str(path), "weights_sha256": file_digests(path)["sha256"],
        "variant": meta["variant"], "input_size": meta["input_size"], "protocol": protocol,
        "color_order": pre["color_order"], "mean": pre.get("mean", (0.0, 0.0, 0.0)),
        "ten_crop": bool(ten_crop), "alexnet_keras_version": __version__, **source,
    }  # fmt: skip
    if "images" in header:  # a file list is identified by its digest, not stored twice
        listing = "\n".join(map(str, header.pop("images"))).encode("utf-8", "surrogateescape")
        header["images_sha256"] = hashlib.sha256(listing).hexdigest()
    return header


def _file_batches(files, meta, protocol, ten_crop, batch_size, start):
    """Batches of `(views, (paths, labels))` of image files, from `files[start]` on."""
    from alexnet_keras.preprocessing import center_crop, class_names, load_image, preprocess_fn
    from alexnet_keras.preprocessing import ten_crop as ten_views

    size = meta["input_size"]
    preprocess = preprocess_fn(_preprocessing(meta), size)

    def views(file):
        image = load_image(file, protocol=protocol)
        return preprocess(ten_views(image, size) if ten_crop else center_crop(image, size))

    names = class_names(meta)
    labels = np.array([-1 if (i := true_index(f, names)) is None else i for f in files], np.int32)
    for x in view_batches(files, views, batch_size, start):
        yield x, (files[start : start + len(x)], labels[start : start + len(x)])
        start += len(x)


def _dataset_batches(split, classes, meta, protocol, ten_crop, batch_size, start):
    """Batches of `(views, (indices, labels))` of a dataset split, from its index `start`."""
    import tensorflow as tf

    from alexnet_keras.data import eval_pipeline
    from alexnet_keras.data.split import Split

    if len(split) * classes >= 2**31:
        raise ValueError(f"A split of {len(split)} images in {classes} classes is too big to index")

    # The pipeline carries one integer per image: the index and the label together, so an
    # image it drops (one that does not decode) takes its index with it.
    def key(i, reference):
        return reference[0], tf.cast(i, tf.int32) * classes + reference[1]

    keyed = split.references.enumerate().skip(start).map(key)
    ds = eval_pipeline(Split(keyed, len(split) - start, split.is_path, None, split.decode),
                       input_size=meta["input_size"], batch_size=batch_size,
                       preprocessing=_preprocessing(meta), ten_crop=ten_crop,
                       protocol=protocol)  # fmt: skip
    for x, keys in ds:
        keys = keys.numpy()
        yield x, (keys // classes, keys % classes)


def _inputs(images, dataset, data_dir, split):
    """`(source attributes, the files or the split, the dataset's class names or None)`."""
    if images:
        files = collect_images(images)  # every file is checked before the model is built
        return {"source": "files", "images": files, "total": len(files)}, files, None
    from alexnet_keras import data

    if split not in ("eval", "train"):
        raise ValueError(f"--split must be eval or train. Received: {split!r}")
    splits, info = data.open_dataset(dataset, data_dir=data_dir)
    if split not in splits:
        raise ValueError(f"{dataset} has no {split} split; it has {', '.join(splits)}")
    source = {"source": "dataset", "dataset": info.name, "split": split,
              "total": len(splits[split])}  # fmt: skip
    return source, splits[split], [n if isinstance(n, str) else n[-1] for n in info.class_names]


def extract_features(weights, layer, output, *, images=(), dataset=None, data_dir=None,
                     split="eval", ten_crop=False, batch_size=32, overwrite=False,
                     progress=None):  # fmt: skip
    """Writes the outputs of a layer for image files or a dataset split to an HDF5 file.

    Args:
        weights: a `.weights.h5` with alexnet-keras metadata, or a release name.
        layer: a layer name of the model (`fc7`, `relu7`, `pool5`, `conv3`, ...).
        output: the HDF5 file to write (see `features.store`).
        images: image files and folders (see `features.images.collect_images`).
        dataset: instead of `images`, a dataset (see `data.open_dataset`).
        data_dir: the TFDS data dir.
        split: the dataset's `"eval"` or `"train"` split.
        ten_crop: average the layer's outputs over ten crops (corners, centre, mirrors).
        batch_size: images per forward pass.
        overwrite: replace an existing `output`.
        progress: a stream for a progress line with an ETA (e.g.
            `sys.stderr`); `None` for silence.

    Returns:
        The path written, a `pathlib.Path`.

    Raises:
        ValueError: bad input, in one line naming the file: an image that is
            not one, an unknown layer, an output that exists or cannot be
            written, a partial file of other arguments.

    Example:

    >>> import os, tempfile, alexnet_keras
    >>> from alexnet_keras import weights
    >>> from alexnet_keras.features.extract import extract_features
    >>> from alexnet_keras.features.store import read_features
    >>> folder = tempfile.mkdtemp()
    >>> path = weights.save_weights(alexnet_keras.AlexNet(),
    ...     os.path.join(folder, "m.weights.h5"), variant="bvlc")
    >>> out = extract_features(path, "fc7", os.path.join(folder, "f.h5"),
    ...     images=["../shared/data/imagenet-sample/n01440764"])
    >>> feats = read_features(out)
    >>> feats["features"].shape, feats["labels"].tolist(), feats["attrs"]["layer"]
    ((1, 4096), [0], 'fc7')
    """
    if (dataset is None) == (not images):
        raise ValueError("Give image files or folders, or --dataset; not both and not neither")
    check_output(output, overwrite)
    source, items, names = _inputs(images, dataset, data_dir, split)
    from alexnet_keras.cuda_convnet.cfg_weights import is_mirror_file
    from alexnet_keras.model import AlexNet
    from alexnet_keras.preprocessing import class_labels, weights_protocol
    from alexnet_keras.pretrained import resolve
    from alexnet_keras.weights import read_metadata

    path = resolve(weights)
    if is_mirror_file(path):  # its preprocessing is a mean image and its own layers
        raise ValueError(f"{path}: a cuda-convnet cfg net; features reads AlexNet weights files")
    meta = read_metadata(path)
    protocol = weights_protocol(meta)
    header = _header(path, meta, layer, ten_crop, protocol, source)
    try:
        names = names or class_labels(meta)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    # The output and a partial file are checked before the model is built: bad ones fail fast.
    part = PartialFile(output, {**header, "class_names": names}, "paths" if images else "indices",
                       overwrite=overwrite, warn=progress)  # fmt: skip
    try:
        extractor = layer_model(AlexNet(weights=path), layer)
        part.start(extractor.output_shape[1:])
        if images:
            batches = _file_batches(items, meta, protocol, ten_crop, batch_size, part.done)
        else:
            batches = _dataset_batches(items, len(names), meta, protocol, ten_crop, batch_size,
                                       part.next_index())  # fmt: skip
        forward = view_forward(extractor, ten_crop)
        run_batches(lambda x: forward(x).numpy(), batches, part.append, total=header["total"],
                    label="features", start=part.done, stream=progress,
                    enabled=progress is not None)  # fmt: skip
        return part.finish()
    finally:
        part.close()

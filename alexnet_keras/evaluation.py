"""`alexnet-keras evaluate`: top-1/top-5, per-class accuracy and a confusion matrix."""

import csv
import pathlib
import re

import numpy as np

from alexnet_keras.progress import Progress

__all__ = ["evaluate", "format_report"]


def evaluate(weights, dataset, *, data_dir=None, split="eval", ten_crop=False, batch_size=64,
             output=None, max_batches=None, labels=None, protocol=None, multiview_era=None,
             progress=None):  # fmt: skip
    """Evaluates a weights file on a dataset.

    Args:
        weights: a `.weights.h5` with alexnet-keras metadata, or a release name.
        dataset: a TFDS name, `folder:PATH` or `imagenet-val:PATH` (see
            `alexnet_keras.data.open_dataset`).
        data_dir: the TFDS data dir.
        split: "eval" (the dataset's test/val split or hold-out) or "train".
        ten_crop: average the softmax over 10 crops (corners, centre, mirrors).
        batch_size: images per batch.
        output: where to write the confusion matrix CSV; default next to the weights.
        max_batches: stop after this many batches (quick checks).
        labels: the label file of `imagenet-val:PATH` (Caffe's `val.txt`,
            the devkit's ground truth, or `LOC_val_solution.csv`), or
            `[ground truth, synset map]`.
        protocol: how images are resized before the crop: `"bvlc"` (a
            256x256 warp, as BVLC measured 57.1/80.2) or `"shorter-side"`;
            default: the weights' own (`preprocessing.weights_protocol`).
        multiview_era: a cfg net trained on crops: the multiview set of the
            `"2011"` (9 views) or `"2012"` (10) cuda-convnet; default: the
            one its run recorded.
        progress: a stream for a progress line with an ETA (e.g.
            `sys.stderr`), shown when there is more than one batch; `None`
            for silence.

    Returns:
        A dict: `top1`, `top5`, `count`, `skipped`, `protocol`, `per_class`
        (name, count, top-1) and `confusion_matrix` (the CSV path).

    Example:

    >>> import os, tempfile, alexnet_keras
    >>> from alexnet_keras import weights
    >>> from alexnet_keras.evaluation import evaluate
    >>> path = weights.save_weights(alexnet_keras.AlexNet(classes=10),
    ...     os.path.join(tempfile.mkdtemp(), "m.weights.h5"), variant="bvlc")
    >>> result = evaluate(path, "folder:../shared/data/cifar10-mini", batch_size=8, max_batches=1)
    >>> result["count"], result["protocol"], result["confusion_matrix"].endswith("mini-eval.csv")
    (8, 'shorter-side', True)
    """
    from alexnet_keras import data
    from alexnet_keras.model import AlexNet
    from alexnet_keras.preprocessing import PROTOCOLS, weights_protocol

    if split not in ("eval", "train"):
        raise ValueError(f"--split must be eval or train. Received: {split!r}")
    if protocol is not None and protocol not in PROTOCOLS:
        raise ValueError(
            f"--protocol must be one of {', '.join(PROTOCOLS)}. Received: {protocol!r}"
        )
    # The dataset and its labels first: a bad label file fails before a release downloads.
    splits, info = data.open_dataset(dataset, data_dir=data_dir, labels=labels)
    if split not in splits:
        raise ValueError(f"{dataset} has no {split} split; it has {', '.join(splits)}")
    path, mirror, model, meta = _weights(weights)
    if mirror and (ten_crop or protocol):
        raise ValueError(f"{path}: a cfg net reads whole images; --ten-crop and --protocol "
                         "do not apply")  # fmt: skip
    if multiview_era is not None and not mirror:
        raise ValueError(f"{path}: --multiview-era is for a cfg net trained on crops")
    protocol = protocol or weights_protocol(meta)
    _check_classes(path, meta, info, dataset)
    classes = len(info.class_names)
    views = None
    if mirror:
        ds, views = _cfg_batches(path, model, meta, splits[split], dataset, batch_size,
                                 multiview_era)  # fmt: skip
    else:
        model = AlexNet(weights=path)
        ds = data.eval_pipeline(
            splits[split], input_size=meta["input_size"], batch_size=batch_size,
            preprocessing=meta["preprocessing"], ten_crop=ten_crop, protocol=protocol,
        )  # fmt: skip
    total = len(splits[split])
    if max_batches is not None:
        total = min(total, max_batches * batch_size)
    meter = Progress(total, label="evaluate", unit="images", stream=progress,
                     enabled=progress is not None and total > batch_size)  # fmt: skip
    confusion, top5_hits = _score(model, ds, classes, ten_crop or views, max_batches, meter)
    count = int(confusion.sum())
    # Listed files that failed their check, and (over a whole split) images that did not decode.
    skipped = int(info.skipped.get(split, 0)) + (total - count if max_batches is None else 0)
    names = [n if isinstance(n, str) else n[-1] for n in info.class_names]
    out = pathlib.Path(output) if output else pathlib.Path(path).with_name(
        f"confusion-{_file_part(dataset)}-{split}.csv")  # fmt: skip
    _write_confusion(out, names, confusion)
    return {
        "weights": str(path),
        "dataset": dataset,
        "split": split,
        "ten_crop": ten_crop,
        "views": views,
        "protocol": None if mirror else protocol,
        "count": count,
        "skipped": skipped,
        "top1": float(np.trace(confusion) / count) if count else 0.0,
        "top5": top5_hits / count if count else 0.0,
        "per_class": _per_class(names, confusion),
        "confusion_matrix": str(out),
    }


def _weights(weights):
    """`(path, is a cfg mirror, its model or None, metadata)` of a weights file or name."""
    from alexnet_keras.cuda_convnet.cfg_weights import is_mirror_file, load_mirror
    from alexnet_keras.pretrained import resolve
    from alexnet_keras.weights import read_metadata

    path = resolve(weights)
    if not is_mirror_file(path):
        return path, False, None, read_metadata(path)
    model, meta = load_mirror(path)
    return path, True, model, {**meta, "classes": model.output_shape[-1]}


def _file_part(dataset):
    """`dataset` as part of a file name: `folder:/a/b` -> `a_b`."""
    for prefix in ("folder:", "imagenet-val:"):
        dataset = dataset.removeprefix(prefix)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", dataset).strip("_") or "dataset"


def _check_classes(path, meta, info, dataset):
    """The weights' classes must be the dataset's, in the same order where both name them."""
    classes = len(info.class_names)
    if classes != meta["classes"]:
        raise ValueError(
            f"{path}: has {meta['classes']} classes; {dataset} has {classes}. "
            "Evaluate weights trained on this dataset"
        )
    ids = [n[0] for n in meta.get("class_names") or [] if isinstance(n, (list, tuple))]
    theirs = [n[0] for n in info.class_names if isinstance(n, (list, tuple))]
    if len(ids) == len(theirs) == classes and ids != theirs:
        i = next(i for i, (a, b) in enumerate(zip(ids, theirs, strict=True)) if a != b)
        raise ValueError(f"{path}: its class {i} is {ids[i]}, {dataset}'s is {theirs[i]}: "
                         "the weights list the classes in another order")  # fmt: skip


def _score(model, ds, classes, ten_crop, max_batches, meter):
    """`(confusion matrix, top-5 hits)` of `model` over the batches of `ds`."""
    import tensorflow as tf

    from alexnet_keras.data import average_crops

    confusion = np.zeros((classes, classes), np.int64)
    top5_hits = 0

    @tf.function
    def probabilities(x):
        return average_crops(model, x) if ten_crop else model(x)

    for i, (x, y) in enumerate(ds):
        if max_batches and i >= max_batches:
            break
        probs = probabilities(x).numpy()
        labels = y.numpy()
        np.add.at(confusion, (labels, probs.argmax(-1)), 1)
        top = np.argsort(-probs, axis=-1)[:, :5]
        top5_hits += int((top == labels[:, None]).any(axis=1).sum())
        meter.update(int(confusion.sum()))
    meter.close()
    return confusion, top5_hits


def _per_class(names, confusion):
    """Per class: its name, its image count and its top-1 (`None` without images)."""
    return [
        {
            "class": name,
            "count": int(row.sum()),
            "top1": float(row[i] / row.sum()) if row.sum() else None,
        }
        for i, (name, row) in enumerate(zip(names, confusion, strict=True))
    ]


def _write_confusion(out, names, confusion):
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["true \\ predicted", *names])
        for name, row in zip(names, confusion, strict=True):
            writer.writerow([name, *row.tolist()])


def _cfg_batches(path, model, meta, ds, dataset, batch_size, era=None):
    """`(batches, views)`: cuda-convnet's provider, whole images minus the run's per-pixel
    mean; or, for a net that reads less than its mean image (trained on crops), the
    cropped provider's multiview set (`cuda_convnet.cropped_provider`), `views` naming it."""
    from alexnet_keras.cuda_convnet.cifar_provider import batches, load_split
    from alexnet_keras.cuda_convnet.cropped_provider import VIEWS, CroppedProvider

    if era not in (None, *VIEWS):
        raise ValueError(f"--multiview-era must be 2011 or 2012. Received: {era!r}")
    size, _, channels = model.input_shape[1:]
    if meta.get("mean") is None:
        raise ValueError(f"{path}: holds no mean image; cfg nets read images minus their mean")
    mean = np.asarray(meta["mean"], np.float32).transpose(1, 2, 0)
    side = mean.shape[0]
    if mean.shape[1:] != (side, channels) or side < size or (side - size) % 2:
        raise ValueError(f"{path}: its mean image is {mean.shape}, the net reads {size}x{size}")
    if side == size and era is not None:  # refused before the split is read
        raise ValueError(f"{path}: the net reads whole {size}x{size} images: "
                         "--multiview-era is for a net trained on crops")  # fmt: skip
    arrays = load_split(ds, dataset, side, channels)
    if side == size:
        return batches(arrays, mean, np.arange(len(arrays[1])), batch_size), None
    source = meta.get("source") if isinstance(meta.get("source"), dict) else {}
    record = source.get("provider") if isinstance(source.get("provider"), dict) else {}
    if era is None:
        era = record.get("multiview_era") if record.get("multiview_era") in VIEWS else "2012"
    empty = tuple(a[:0] for a in arrays)
    provider = CroppedProvider(None, dataset, image_size=side, crop=size, channels=channels,
                               batch_size=batch_size, mean=mean, multiview=True, era=era,
                               arrays=(empty, arrays))  # fmt: skip
    return provider.eval(), f"{VIEWS[era]} views of {size}x{size} ({era} cuda-convnet)"


def _how(result):
    parts = [f"protocol {result['protocol']}"] if result.get("protocol") else []
    parts += ["ten crops"] if result["ten_crop"] else []
    parts += [result["views"]] if result.get("views") else []
    parts += [f"{result['skipped']} skipped"] if result.get("skipped") else []
    return "".join(f", {p}" for p in parts)


def format_report(result, max_rows=50):
    """The text report: totals, then the per-class table (worst classes first when long)."""
    lines = [
        f"{result['dataset']} ({result['split']}, {result['count']} images"
        f"{_how(result)}): "
        f"top-1 {result['top1']:.4f}  top-5 {result['top5']:.4f}",
        "",
        f"{'class':<30} {'images':>7} {'top-1':>7}",
    ]
    rows = result["per_class"]
    if len(rows) > max_rows:
        rows = sorted((r for r in rows if r["count"]), key=lambda r: r["top1"])[:max_rows]
        lines[-1] += f"   ({max_rows} worst of {len(result['per_class'])})"
    for r in rows:
        acc = "-" if r["top1"] is None else f"{r['top1']:.3f}"
        lines.append(f"{r['class'][:30]:<30} {r['count']:>7} {acc:>7}")
    lines.append("")
    lines.append(f"confusion matrix: {result['confusion_matrix']}")
    return "\n".join(lines)

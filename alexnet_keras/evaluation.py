"""`alexnet-keras evaluate`: top-1/top-5, per-class accuracy and a confusion matrix."""

import csv
import pathlib

import numpy as np

__all__ = ["evaluate", "format_report"]


def evaluate(weights, dataset, *, data_dir=None, split="eval", ten_crop=False, batch_size=64,
             output=None, max_batches=None):  # fmt: skip
    """Evaluates a weights file on a dataset.

    Args:
        weights: a `.weights.h5` with alexnet-keras metadata, or a release name.
        dataset: a TFDS name or `folder:PATH` (see `alexnet_keras.data.open_dataset`).
        data_dir: the TFDS data dir.
        split: "eval" (the dataset's test/val split or hold-out) or "train".
        ten_crop: average the softmax over 10 crops (corners, centre, mirrors).
        batch_size: images per batch.
        output: where to write the confusion matrix CSV; default next to the weights.
        max_batches: stop after this many batches (quick checks).

    Returns:
        A dict: `top1`, `top5`, `count`, `per_class` (name, count, top-1) and
        `confusion_matrix` (the CSV path).
    """
    from alexnet_keras import data
    from alexnet_keras.cuda_convnet.cfg_weights import is_mirror_file, load_mirror
    from alexnet_keras.model import AlexNet
    from alexnet_keras.pretrained import resolve
    from alexnet_keras.weights import read_metadata

    path = resolve(weights)
    mirror = is_mirror_file(path)
    if mirror:
        model, meta = load_mirror(path)
        meta = {**meta, "classes": model.output_shape[-1]}
    else:
        meta = read_metadata(path)
    if split not in ("eval", "train"):
        raise ValueError(f"--split must be eval or train. Received: {split!r}")
    if mirror and ten_crop:
        raise ValueError(f"{path}: a cfg net reads whole images; --ten-crop does not apply")
    splits, info = data.open_dataset(dataset, data_dir=data_dir)
    classes = len(info.class_names)
    if classes != meta["classes"]:
        raise ValueError(
            f"{path}: has {meta['classes']} classes; {dataset} has {classes}. "
            "Evaluate weights trained on this dataset"
        )
    if mirror:
        ds = _cfg_batches(path, model, meta, splits[split], dataset, batch_size)
    else:
        model = AlexNet(weights=path)
        ds = data.eval_pipeline(
            splits[split], input_size=meta["input_size"], batch_size=batch_size,
            preprocessing=meta["preprocessing"], ten_crop=ten_crop,
        )  # fmt: skip
    confusion, top5_hits = _score(model, ds, classes, ten_crop, max_batches)
    count = int(confusion.sum())
    names = [n if isinstance(n, str) else n[-1] for n in info.class_names]
    out = (
        pathlib.Path(output)
        if output
        else pathlib.Path(path).with_name(
            f"confusion-{dataset.replace('folder:', '').strip('/').replace('/', '_')}-{split}.csv"
        )
    )
    _write_confusion(out, names, confusion)
    return {
        "weights": str(path),
        "dataset": dataset,
        "split": split,
        "ten_crop": ten_crop,
        "count": count,
        "top1": float(np.trace(confusion) / count) if count else 0.0,
        "top5": top5_hits / count if count else 0.0,
        "per_class": _per_class(names, confusion),
        "confusion_matrix": str(out),
    }


def _score(model, ds, classes, ten_crop, max_batches):
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


def _cfg_batches(path, model, meta, ds, dataset, batch_size):
    """cuda-convnet's provider: whole images minus the run's per-pixel mean."""
    from alexnet_keras.cuda_convnet.cifar_provider import batches, load_split

    size, _, channels = model.input_shape[1:]
    if meta.get("mean") is None:
        raise ValueError(f"{path}: holds no mean image; cfg nets read images minus their mean")
    mean = np.asarray(meta["mean"], np.float32).transpose(1, 2, 0)
    if mean.shape != (size, size, channels):
        raise ValueError(f"{path}: its mean image is {mean.shape}, the net reads {size}x{size}")
    arrays = load_split(ds, dataset, size, channels)
    return batches(arrays, mean, np.arange(len(arrays[1])), batch_size)


def format_report(result, max_rows=50):
    """The text report: totals, then the per-class table (worst classes first when long)."""
    lines = [
        f"{result['dataset']} ({result['split']}, {result['count']} images"
        f"{', ten crops' if result['ten_crop'] else ''}): "
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

"""`show predictions`: images with their top-5 bars, as in the paper's Figure 4 (left).

Each cell shows the crop the network saw (the weights' own resize protocol
and centre crop, by `preprocessing.load_image` and `center_crop`), its true
label above it when the image's folder names a class, and the five best
classes as bars below it, the true class's bar in red, as the paper marks it.
The scores come from `prediction.predict_files`: one classifier, not two.
"""

import math
import pathlib

import numpy as np

from alexnet_keras.features.images import true_index
from alexnet_keras.visualization.canvas import default_output, figure, save_png

__all__ = ["draw_predictions", "show_predictions", "true_index"]

CELL_INCHES = (2.4, 3.2)  # an image on top, five bars below
TRUE_COLOUR = "tab:red"
OTHER_COLOUR = "tab:blue"
_LABEL_CHARS = 24


def _short(text):
    text = str(text).split(",")[0]
    return text if len(text) <= _LABEL_CHARS else text[: _LABEL_CHARS - 1] + "…"


def _bars(ax, top, truth):
    scores = [t["score"] for t in top]
    colours = [TRUE_COLOUR if t["index"] == truth else OTHER_COLOUR for t in top]
    rows = np.arange(len(top))
    ax.barh(rows, scores, color=colours, height=0.8)
    for row, t in zip(rows, top, strict=True):
        ax.text(0.02, row, _short(t["label"]), va="center", ha="left", fontsize=7)
        ax.text(1.01, row, f"{t['score']:.0%}", va="center", ha="left", fontsize=6)
    ax.set_xlim(0, 1)
    ax.set_ylim(len(top) - 0.5, -0.5)  # best on top
    ax.set_xticks([])
    ax.set_yticks([])


def draw_predictions(results, images, truths, labels, columns=4):
    """The Figure 4 (left) grid: each image, its true label, its top-k bars.

    Args:
        results: `prediction.predict_files`' dicts, one per image.
        images: the crops shown, `(H, W, 3)` RGB 0..255, one per result.
        truths: each image's true class index, or None when unknown.
        labels: every class's label, for the titles.
        columns: images per row.

    Returns:
        The matplotlib `Figure`.

    Example:

    >>> import numpy as np
    >>> from alexnet_keras.visualization.predictions import draw_predictions
    >>> top = [{"index": 1, "label": "goldfish", "score": 0.9},
    ...        {"index": 0, "label": "tench", "score": 0.1}]
    >>> fig = draw_predictions([{"image": "a.png", "top": top}], [np.zeros((8, 8, 3))],
    ...                        [1], ["tench", "goldfish"])
    >>> len(fig.axes)
    2
    """
    columns = max(1, min(columns, len(results)))
    rows = math.ceil(len(results) / columns)
    fig = figure(CELL_INCHES[0] * columns, CELL_INCHES[1] * rows)
    grid = fig.add_gridspec(rows, columns, hspace=0.12, wspace=0.2, left=0.02, right=0.98,
                            top=1 - 0.08 / rows, bottom=0.02 / rows)  # fmt: skip
    for i, (result, image, truth) in enumerate(zip(results, images, truths, strict=True)):
        # The bars sit right under their image; the gap between cells holds the next title.
        cell = grid[divmod(i, columns)].subgridspec(2, 1, height_ratios=[1.0, 0.55], hspace=0.04)
        ax = fig.add_subplot(cell[0])
        ax.imshow(np.clip(np.asarray(image) / 255.0, 0, 1))
        ax.set_axis_off()
        title = _short(labels[truth]) if truth is not None else pathlib.Path(result["image"]).name
        ax.set_title(title, fontsize=8, fontweight="bold" if truth is not None else "normal")
        _bars(fig.add_subplot(cell[1]), result["top"], truth)
    return fig


def show_predictions(weights, paths, *, output=None, top=5, columns=4, max_images=16,
                     ten_crop=False):  # fmt: skip
    """Classifies images and draws them with their top-k bars; returns the PNG's path.

    Args:
        weights: a `.weights.h5` or a release name.
        paths: image files and folders (`prediction.collect_images`).
        output: the PNG; default `predictions.png` beside the first path.
        top: bars per image.
        columns: images per row.
        max_images: the first this many images are drawn (a picture of
            a thousand images says nothing).
        ten_crop: the scores of ten crops, averaged (the picture shows the centre).

    Example:

    >>> import os, tempfile, alexnet_keras
    >>> from alexnet_keras import weights
    >>> from alexnet_keras.visualization.predictions import show_predictions
    >>> folder = tempfile.mkdtemp()
    >>> path = weights.save_weights(alexnet_keras.AlexNet(),
    ...     os.path.join(folder, "m.weights.h5"), variant="bvlc")
    >>> png = show_predictions(path, ["../shared/data/imagenet-sample/n01440764"],
    ...                        output=os.path.join(folder, "p.png"))
    >>> png.name
    'p.png'
    """
    from alexnet_keras.prediction import collect_images, predict_files
    from alexnet_keras.pretrained import resolve
    from alexnet_keras.variants import class_labels, class_names

    if isinstance(max_images, bool) or not isinstance(max_images, int) or max_images < 1:
        raise ValueError(f"--max-images must be a positive integer. Received: {max_images!r}")
    files = collect_images(paths)[:max_images]
    target = output or default_output(paths[0], "predictions")
    figure(1, 1)  # matplotlib missing: say so before the forward pass, not after
    path = resolve(weights)
    results = predict_files(path, files, top=top, ten_crop=ten_crop)
    meta, show = _shown(path)
    names = class_names(meta)
    truths = [true_index(f, names) for f in files]
    fig = draw_predictions(results, [show(f) for f in files], truths, class_labels(meta),
                           columns=columns)  # fmt: skip
    return save_png(fig, target)


def _shown(path):
    """`(metadata, file -> the image drawn)`: the crop an AlexNet sees; a cfg net's whole image."""
    from alexnet_keras.cuda_convnet.cfg_weights import is_mirror_file
    from alexnet_keras.preprocessing import center_crop, load_image, weights_protocol
    from alexnet_keras.weights import read_metadata

    if is_mirror_file(path):
        meta = read_metadata(path, kind="any")
        side = len(meta["mean"][0])  # (channels, side, side): the images it was trained on
        classes = len(meta.get("class_names") or ())
        return {**meta, "classes": classes}, lambda f: center_crop(load_image(f, side), side)
    meta = read_metadata(path)
    protocol, size = weights_protocol(meta), meta["input_size"]
    return meta, lambda f: center_crop(load_image(f, protocol=protocol), size)

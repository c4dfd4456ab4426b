"""`show neighbours`: eval images and their nearest training images in fc7 (Figure 4, right).

The paper's Figure 4 (right) shows five test images and, beside each, the
six training images "whose feature vectors in the last hidden layer have the
smallest Euclidean distance from the test image's feature vector". Those are
the activations of that layer, after its ReLU: `relu7` here (`fc7` names the
layer's pre-ReLU output), the default layer. The features of both splits are
cached (`features.neighbours.split_features`); each image is drawn as the
crop the network saw (the weights' resize protocol, the centre crop).
"""

import dataclasses

import numpy as np

from alexnet_keras.visualization.canvas import default_output, figure, save_png

__all__ = ["Neighbours", "draw_neighbours", "show_neighbours"]

CELL_INCHES = (1.35, 1.55)  # an image with its label above
QUERY_COLOUR = "tab:red"
_LABEL_CHARS = 18


@dataclasses.dataclass
class Neighbours:
    """What `show_neighbours` drew.

    Attributes:
        path: the PNG written.
        queries: the queries' indices in the eval split.
        neighbours: `(queries, k)`: the neighbours' indices in the train split.
        distances: `(queries, k)`: their Euclidean distances to the query.
    """

    path: object
    queries: np.ndarray
    neighbours: np.ndarray
    distances: np.ndarray


def _short(text):
    text = str(text).split(",")[0]
    return text if len(text) <= _LABEL_CHARS else text[: _LABEL_CHARS - 1] + "…"


def _cell(ax, image, title, query=False):
    ax.imshow(np.clip(np.asarray(image) / 255.0, 0, 1))
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():  # the query is framed, as a row's first image
        spine.set_visible(query)
        spine.set_color(QUERY_COLOUR)
        spine.set_linewidth(3)
    ax.set_title(_short(title), fontsize=7, color=QUERY_COLOUR if query else "black",
                 fontweight="bold" if query else "normal", pad=2)  # fmt: skip


def draw_neighbours(
    queries, neighbours, query_titles, neighbour_titles, distances, heading="", dpi=100
):
    """The Figure 4 (right) grid: a row per query, the query (framed) then its neighbours.

    Args:
        queries: the query images, `(H, W, 3)` RGB 0..255.
        neighbours: per query, its neighbours' images, nearest first.
        query_titles: a label per query.
        neighbour_titles: per query, a label per neighbour.
        distances: per query, the neighbours' distances (written under them).
        heading: the picture's title.
        dpi: pixels per inch of the PNG (a cell is 1.35 inches wide).

    Returns:
        The matplotlib `Figure`.

    Example:

    >>> import numpy as np
    >>> from alexnet_keras.visualization.neighbours import draw_neighbours
    >>> image = np.zeros((8, 8, 3))
    >>> fig = draw_neighbours([image], [[image, image]], ["cat"], [["cat", "dog"]], [[1.0, 2.0]])
    >>> len(fig.axes)
    3
    """
    rows, columns = len(queries), 1 + max(len(n) for n in neighbours)
    top = 0.4 if heading else 0.1  # inches above the grid
    fig = figure(CELL_INCHES[0] * columns, CELL_INCHES[1] * rows + top, dpi)
    grid = fig.add_gridspec(rows, columns, wspace=0.08, hspace=0.3, left=0.01, right=0.99,
                            top=1 - top / fig.get_size_inches()[1],
                            bottom=0.2 / fig.get_size_inches()[1])  # fmt: skip
    if heading:
        fig.suptitle(heading, fontsize=9, y=1 - 0.12 / fig.get_size_inches()[1], va="top")
    for r, query in enumerate(queries):
        _cell(fig.add_subplot(grid[r, 0]), query, f"query: {query_titles[r]}", query=True)
        for c, image in enumerate(neighbours[r]):
            ax = fig.add_subplot(grid[r, c + 1])
            _cell(ax, image, neighbour_titles[r][c])
            ax.set_xlabel(f"{distances[r][c]:.4g}", fontsize=6, labelpad=1)
    return fig


def _images(split, indices, protocol, size):
    """The images at `indices` of a dataset split, as the network saw them (the centre crop)."""
    import tensorflow as tf

    from alexnet_keras.preprocessing import center_crop, resize_image

    wanted = sorted({int(i) for i in np.ravel(indices)})
    arrays = split.arrays()
    if arrays is not None:
        raws = {i: arrays[0][i] for i in wanted}
    else:  # a split too big for memory: one pass over its references, stopped when all are found
        raws, need = {}, set(wanted)
        for i, (raw, _) in split.references.enumerate():
            if int(i) in need:
                raws[int(i)] = raw
                if len(raws) == len(need):
                    break

    def shown(i):
        image = tf.cast(split.decode(tf.constant(raws[int(i)])), tf.float32)
        return center_crop(resize_image(image, 256, protocol).numpy(), size)

    return {i: shown(i) for i in wanted}


def show_neighbours(weights, dataset, *, data_dir=None, queries=8, seed=0, layer="relu7", k=6,
                    output=None, progress=None, dpi=100):  # fmt: skip
    """Draws `queries` eval images with their `k` nearest training images in `layer`.

    Args:
        weights: a `.weights.h5` or a release name.
        dataset: a TFDS name or `folder:PATH`; queries come from its eval
            split, neighbours from its train split.
        data_dir: the TFDS data dir.
        queries: how many eval images, picked at random by `seed`.
        seed: the seed of the pick.
        layer: the layer whose outputs are compared (default `relu7`: fc7
            after its ReLU, the paper's "last, 4096-dimensional hidden layer").
        k: neighbours per query.
        output: the PNG; default beside the weights file (`<stem>-neighbours.png`).
        progress: a stream for the extraction's progress lines; `None` for silence.
        dpi: pixels per inch of the PNG (each image is 1.35 inches wide).

    Returns:
        A `Neighbours`.

    Example:

    >>> import os, shutil, tempfile, alexnet_keras
    >>> from unittest import mock
    >>> from alexnet_keras.visualization.neighbours import show_neighbours
    >>> home = tempfile.mkdtemp()
    >>> for part in ("train/cat", "train/ship", "test/cat", "test/ship"):  # 4 images each
    ...     _ = shutil.copytree(f"../shared/data/cifar10-mini/{part}", f"{home}/mini/{part}",
    ...                         ignore=lambda folder, names: sorted(names)[4:])
    >>> path = alexnet_keras.weights.save_weights(alexnet_keras.AlexNet(classes=10),
    ...                                           f"{home}/m.weights.h5", variant="bvlc")
    >>> with mock.patch.dict(os.environ, {"ALEXNET_KERAS_HOME": home}):
    ...     result = show_neighbours(path, f"folder:{home}/mini", queries=2)
    >>> result.path.name, result.neighbours.shape
    ('m-neighbours.png', (2, 6))
    """
    from alexnet_keras import data
    from alexnet_keras.features.neighbours import nearest, split_features
    from alexnet_keras.pretrained import resolve

    for name, value in (("--queries", queries), ("k", k)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer. Received: {value!r}")
    figure(1, 1)  # matplotlib missing: say so before the forward passes, not after
    path = resolve(weights)
    target = output or default_output(path, "neighbours")
    splits, _ = data.open_dataset(dataset, data_dir=data_dir)
    cached = {split: split_features(path, dataset, split, layer, data_dir=data_dir,
                                    progress=progress) for split in ("eval", "train")}  # fmt: skip
    evals, train = cached["eval"], cached["train"]
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(evals["labels"]), min(queries, len(evals["labels"])), False))
    near, distances = nearest(
        evals["features"][rows], train["features"], min(k, len(train["labels"]))
    )
    attrs = evals["attrs"]
    pictures = {split: _images(splits[split], cached[split]["indices"][picked],
                               attrs["protocol"], attrs["input_size"])
                for split, picked in (("eval", rows), ("train", near))}  # fmt: skip
    names = evals["class_names"]
    fig = draw_neighbours(
        [pictures["eval"][i] for i in evals["indices"][rows]],
        [[pictures["train"][i] for i in train["indices"][r]] for r in near],
        [names[y] for y in evals["labels"][rows]],
        [[names[y] for y in train["labels"][r]] for r in near],
        distances,
        heading=f"{layer}: each eval image (framed) and its {near.shape[1]} nearest training "
        "images, by Euclidean distance",
        dpi=dpi,
    )
    return Neighbours(save_png(fig, target), evals["indices"][rows], train["indices"][near],
                      distances)  # fmt: skip

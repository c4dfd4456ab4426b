"""A conv layer's kernels as a picture: the paper's Figure 3 for conv1, grey slices deeper.

The kernels are read straight from the weights file's arrays (`weights.read_arrays`,
the sandboxed reader): no Keras model is built and TensorFlow is not imported.
An AlexNet file names its variant, whose specs give each conv layer's groups; a
cfg-net file (`cuda_convnet.cfg_weights`) stores its cfg text, parsed here for
the layers' order and groups (`cfg_weights.mirror_net`).

Scaling follows cuda-convnet's `shownet.py` (`plot_filters`, `make_filter_fig`):
the whole layer's kernels are shifted by their minimum and divided by their
maximum, one scale for every kernel, so the picture shows which kernels are
strong; 16 kernels a row at most, a 1-pixel black line between kernels.
"""

import dataclasses
import math
import pathlib

import numpy as np

from alexnet_keras.visualization.canvas import figure, save_png

__all__ = ["Cell", "Kernels", "draw_filters", "filter_grid", "read_kernels"]

PER_ROW = 16  # shownet.py's FILTERS_PER_ROW
MAX_COLOUR_FILTERS = 256  # shownet.py's 16 rows of 16
MAX_GREY_FILTERS = 48
MAX_CHANNELS = 32
_WHITE_GAP = 4  # pixels between the towers' blocks, beside the 1-pixel lines between kernels


@dataclasses.dataclass(frozen=True)
class Kernels:
    """A conv layer's kernels, as a weights file holds them.

    Attributes:
        layer: the layer's name (`conv1`; a cfg net's two towers `conv1a` and
            `conv1b` are read as one layer `conv1`).
        kernel: `(size, size, channels, filters)`, Keras' layout; a first
            layer's channels are RGB (a BGR file's are reversed here).
        towers: the blocks the filters fall in: 2 for the two-GPU nets
            (filters `0..F/2-1` on GPU 1), else the layer's groups.
        first: whether the layer reads the image (its kernels are colours).
        layers: the file's conv layers, in the net's order.
        source: the weights file read.
    """

    layer: str
    kernel: np.ndarray
    towers: int
    first: bool
    layers: tuple
    source: pathlib.Path


@dataclasses.dataclass(frozen=True)
class Cell:
    """Where one kernel (or one channel slice of it) sits in `filter_grid`'s picture.

    `channel` is None for a colour patch; `group` counts the towers from 0.
    The cell is `grid[top:top + size, left:left + size]`.
    """

    filter: int
    channel: int | None
    group: int
    top: int
    left: int
    size: int


def read_kernels(weights, layer=None):
    """The kernels of one conv layer of a weights file, without building the model.

    Args:
        weights: a `.weights.h5` (an AlexNet file or a cfg-net file written by
            `train --chm-layers`), a release name or a legacy file
            (`pretrained.resolve` converts it).
        layer: the conv layer; default: the first (the one reading the image).

    Returns:
        A `Kernels`.

    Raises:
        ValueError: a file that is not such a weights file, or a layer it
            lacks (the message lists its conv layers).

    Example:

    >>> from alexnet_keras.visualization.filters import read_kernels
    >>> read_kernels("../shared/data/chm-release/LICENSE")
    Traceback (most recent call last):
    ...
    ValueError: ../shared/data/chm-release/LICENSE: not an HDF5 file (expected a .weights.h5)
    """
    from alexnet_keras.pretrained import resolve
    from alexnet_keras.weights import read_metadata

    path = resolve(weights)
    meta = read_metadata(path, kind="any")
    if isinstance(meta, dict) and meta.get("model") == "chm-cfg":
        kernels = _cfg_kernels(path, meta, layer)
    elif isinstance(meta, dict) and "variant" in meta:
        kernels = _alexnet_kernels(path, layer)
    else:
        raise ValueError(
            f"{path}: has no alexnet-keras metadata (neither an AlexNet nor a cfg-net weights file)"
        )
    if not np.isfinite(kernels.kernel).all():  # a diverged run: no scale to draw it with
        raise ValueError(f"{path}: layer '{kernels.layer}' holds NaN or infinite values")
    return kernels


def _pick(path, layers, layer):
    if layer is None:
        return layers[0]
    if layer not in layers:
        raise ValueError(f"{path}: no conv layer {layer!r} (its conv layers: {', '.join(layers)})")
    return layer


def _alexnet_kernels(path, layer):
    from alexnet_keras.variants import Conv, get_variant
    from alexnet_keras.weights import read_arrays, read_metadata

    meta = read_metadata(path)  # the AlexNet schema, checked
    spec = get_variant(meta["variant"])
    convs = [op for op in spec.features if isinstance(op, Conv)]
    names = tuple(c.name for c in convs)
    name = _pick(path, names, layer)
    i = names.index(name)
    # A layer's filters split where its own groups or its readers' groups split them:
    # conv1 (groups=1) feeds conv2's two groups, so its first half is GPU 1's (Figure 3).
    towers = max(c.groups for c in convs[i : i + 2])
    kernel = read_arrays(path)[name][0]
    order = (meta.get("preprocessing") or {}).get("color_order", spec.color_order)
    if i == 0 and order == "BGR":
        kernel = kernel[:, :, ::-1, :]  # Caffe's BGR kernels, shown as RGB
    return Kernels(name, kernel, towers, i == 0, names, path)


def tower_layers(names, layer):
    """The file's layers that make `layer`: itself, or a two-GPU net's `<layer>a, <layer>b`.

    Example:

    >>> from alexnet_keras.visualization.filters import tower_layers
    >>> tower_layers(("conv1a", "conv1b", "conv2a"), "conv1"), tower_layers(("conv1",), "conv1")
    (('conv1a', 'conv1b'), ('conv1',))
    """
    if layer not in names and f"{layer}a" in names and f"{layer}b" in names:
        return (f"{layer}a", f"{layer}b")
    return (layer,)


def _cfg_names(convs):
    """The conv layers' names, a two-GPU pair (`conv1a`, `conv1b`) named once (`conv1`)."""
    names = []
    for name in convs:
        if name[-1:] in "ab" and tower_layers(convs, name[:-1]) != (name[:-1],):
            name = name[:-1]
        if name not in names:
            names.append(name)
    return tuple(names)


def _cfg_kernels(path, meta, layer):
    from alexnet_keras.cuda_convnet.cfg_weights import mirror_net
    from alexnet_keras.weights import read_arrays

    net, _ = mirror_net(path, meta)
    convs = tuple(x.name for x in net.layers if x.type == "conv")
    if not convs:
        raise ValueError(f"{path}: the net has no conv layer")
    names = _cfg_names(convs)
    name = _pick(path, names, layer)
    parts = tower_layers(convs, name)
    arrays = read_arrays(path, kind="any")
    kernel = np.concatenate([arrays[p][0] for p in parts], axis=-1)
    first = any(net.layer(i).type == "data" for i in net.layer(parts[0]).inputs)
    # cuda-convnet's data providers give RGB images: no channel reversal.
    groups = len(parts) if len(parts) > 1 else net.layer(parts[0]).params["groups"][0]
    return Kernels(name, kernel, groups, first, names, path)


def _scaled(kernel):
    """shownet.py's scaling: minus the layer's minimum, over its maximum (one scale for all)."""
    kernel = np.asarray(kernel, np.float32)
    low, span = float(kernel.min()), float(kernel.max() - kernel.min())
    if not np.isfinite(span):
        raise ValueError("the kernels hold NaN or infinite values")
    return (kernel - low) / span if span > 0 else np.full_like(kernel, 0.5)


def shown_filters(filters, groups, max_filters):
    """The filters a picture shows: the first `ceil(max_filters / groups)` of each group.

    Example:

    >>> from alexnet_keras.visualization.filters import shown_filters
    >>> shown_filters(256, 2, 4)
    [[0, 1], [128, 129]]
    """
    if groups < 1 or filters % groups:
        raise ValueError(f"{filters} filters do not split into {groups} groups")
    per_group = filters // groups
    keep = min(per_group, math.ceil(max_filters / groups))
    return [list(range(g * per_group, g * per_group + keep)) for g in range(groups)]


def filter_grid(kernel, groups=1, *, colour=True, max_filters=None, max_channels=MAX_CHANNELS):
    """A layer's kernels laid out as one picture, and where each kernel went.

    Colour (`colour=True` and 3 input channels: a first layer): one RGB patch
    per kernel, 16 a row, as cuda-convnet's `shownet.py` draws them. Grey
    (deeper layers): one row per filter, one column per input channel, each
    cell that channel's slice of the kernel; at most `max_channels` columns.
    Either way each group (tower) is a block of its own, group 1 on top,
    with a white band between blocks and 1-pixel black lines between cells;
    every value is scaled by the layer's min..max (`shownet.py`).

    Args:
        kernel: `(size, size, channels, filters)`, RGB channels for colour.
        groups: blocks: the filters `[g*F/groups, (g+1)*F/groups)` form block g.
        colour: draw a 3-channel kernel as colour patches.
        max_filters: at most this many filters, split evenly between the
            groups (the first of each); default 256 colour, 48 grey.
        max_channels: at most this many channels per filter (grey only).

    Returns:
        `(grid, cells)`: an `(H, W, 3)` float32 array in 0..1, and a `Cell`
        per kernel (colour) or per kernel slice (grey).

    Example:

    >>> import numpy as np
    >>> from alexnet_keras.visualization.filters import filter_grid
    >>> grid, cells = filter_grid(np.random.rand(11, 11, 3, 96), groups=2)
    >>> grid.shape, len(cells), cells[48].group, cells[48].top > cells[47].top
    ((78, 193, 3), 96, 1, True)
    """
    kernel = _scaled(kernel)
    size, channels = kernel.shape[0], kernel.shape[2]
    colour = colour and channels == 3
    max_filters = max_filters or (MAX_COLOUR_FILTERS if colour else MAX_GREY_FILTERS)
    shown = shown_filters(kernel.shape[3], groups, max_filters)
    channel_list = [None] if colour else list(range(min(channels, max_channels)))
    columns = min(PER_ROW, len(shown[0])) if colour else len(channel_list)
    rows = math.ceil(len(shown[0]) / columns) if colour else len(shown[0])
    block_h, width = 1 + rows * (size + 1), 1 + columns * (size + 1)
    grid = np.ones((groups * block_h + (groups - 1) * _WHITE_GAP, width, 3), np.float32)
    cells = []
    for g, filters in enumerate(shown):
        top = g * (block_h + _WHITE_GAP)
        grid[top : top + block_h] = 0.0  # the black lines between cells
        for n, f in enumerate(filters):
            for c in channel_list:
                row, col = (n // columns, n % columns) if colour else (n, c)
                cell = Cell(f, c, g, top + 1 + row * (size + 1), 1 + col * (size + 1), size)
                patch = kernel[:, :, :, f] if colour else kernel[:, :, c, f, None]
                grid[cell.top : cell.top + size, cell.left : cell.left + size] = patch
                cells.append(cell)
    return grid, cells


def _ranges(indices):
    """`[0, 1, 2, 128, 129]` as `"0-2, 128-129"`."""
    runs, start = [], indices[0]
    for a, b in zip(indices, indices[1:] + [None], strict=True):
        if b != a + 1:
            runs.append(f"{start}-{a}" if a != start else f"{a}")
            start = b
    return ", ".join(runs)


def _caption(kernels, cells, colour, max_filters, max_channels):
    """The three lines on the picture: layer and file; what is shown (caps named); the scale."""
    size, _, channels, count = kernels.kernel.shape
    name = kernels.source.name
    if name == "model.weights.h5":  # a run folder's (train --model-dir): the folder names it
        name = f"{kernels.source.parent.name}/{name}"
    what = f"{kernels.layer} of {name}: {count} kernels {size}x{size}x{channels}"
    if kernels.towers > 1:
        what += f" in {kernels.towers} towers (top block: GPU 1)"
    filters = sorted({c.filter for c in cells})
    shown = f"filters {_ranges(filters)} of {count}"
    if len(filters) < count:
        shown += f" (--max-filters {max_filters})"
    if colour:
        shown = f"RGB; {'all filters' if len(filters) == count else shown}"
    else:
        slices = sorted({c.channel for c in cells})
        more = f" (--max-channels {max_channels})" if len(slices) < channels else ""
        shown = f"rows: {shown}; columns: input channels {_ranges(slices)} of {channels}{more}"
    return (
        what,
        shown,
        "values scaled to 0..1 by the whole layer's min and max (as cuda-convnet's shownet.py)",
    )


def draw_filters(kernels, output, *, max_filters=None, max_channels=MAX_CHANNELS):
    """Draws `kernels` (`read_kernels`) as `filter_grid` lays them out, to a PNG.

    A first layer's RGB kernels are colour patches, 16 a row; a deeper
    layer's are grey rows (a filter each) of channel slices, capped at
    `max_filters` rows and `max_channels` columns, which the caption says.

    Args:
        kernels: a `Kernels`.
        output: the `.png` to write.
        max_filters, max_channels: as `filter_grid`.

    Returns:
        The path written.

    Example:

    >>> import os, tempfile, numpy as np, pathlib
    >>> from alexnet_keras.visualization.filters import Kernels, draw_filters
    >>> k = Kernels("conv1", np.random.rand(5, 5, 3, 32), 1, True, ("conv1",), pathlib.Path("w"))
    >>> draw_filters(k, os.path.join(tempfile.mkdtemp(), "f.png")).suffix
    '.png'
    """
    colour = kernels.first and kernels.kernel.shape[2] == 3
    max_filters = max_filters or (MAX_COLOUR_FILTERS if colour else MAX_GREY_FILTERS)
    grid, cells = filter_grid(kernels.kernel, kernels.towers, colour=colour,
                              max_filters=max_filters, max_channels=max_channels)  # fmt: skip
    h, w = grid.shape[:2]
    scale = max(1, min(12, 900 // w, 1100 // h))
    left = 56 if kernels.towers > 1 else 12
    width, height = max(w * scale + left + 12, 640), h * scale + 64
    dpi = 100
    fig = figure(width / dpi, height / dpi, dpi)
    x0 = (left + (width - w * scale - left - 12) / 2) / width
    ax = fig.add_axes((x0, 8 / height, w * scale / width, h * scale / height))
    ax.imshow(grid, interpolation="nearest", aspect="equal")
    ax.set_axis_off()
    lines = _caption(kernels, cells, colour, max_filters, max_channels)
    for i, (line, size) in enumerate(zip(lines, (10, 8, 8), strict=True)):
        fig.text(0.5, 1 - (4 + 18 * i) / height, line, ha="center", va="top", fontsize=size,
                 color="black" if i == 0 else "#444")  # fmt: skip
    if kernels.towers > 1:
        for g in range(kernels.towers):
            rows = [c.top for c in cells if c.group == g]
            middle = (min(rows) + max(rows) + cells[0].size) / 2
            label = f"GPU {g + 1}" if kernels.towers == 2 else f"group {g + 1}"
            ax.text(-4, middle, label, ha="right", va="center", fontsize=9)
    return save_png(fig, output)

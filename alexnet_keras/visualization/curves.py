"""Training curves from runs' `metrics.csv`: loss, top-1 and top-5 error, learning rate.

A run folder (`train --model-dir`) holds `metrics.csv`, one row an epoch, as
the trainer writes it: `epoch,step,lr,train_loss,train_acc,val_loss,val_top1,
val_top5,seconds,img_per_s`. `train_acc` is the top-1 accuracy on the
training batches of the epoch, `val_*` the eval set's after it; the picture
shows errors, 1 - accuracy. Several runs overlay, one colour a run, so seeds
or eras compare in one picture.

A live run's file is read as it stands: a last line without its line end is
being written, and is left out. Anything else that is not such a file is
one line naming the file and the line.
"""

import csv
import dataclasses
import pathlib
import textwrap

import numpy as np

from alexnet_keras.files import read_bounded
from alexnet_keras.visualization.canvas import figure, save_png

__all__ = ["COLUMNS", "Metrics", "draw_curves", "epoch_axes", "read_metrics"]

COLUMNS = ("epoch", "step", "lr", "train_loss", "train_acc", "val_loss", "val_top1", "val_top5",
           "seconds", "img_per_s")  # fmt: skip
# The columns drawn; the others (step, seconds, img_per_s) may be missing.
_NEEDED = ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_top1", "val_top5")
_MAX_BYTES = 64 * 2**20  # a million epochs' rows: more is not a metrics.csv


@dataclasses.dataclass(frozen=True)
class Metrics:
    """One run's `metrics.csv`, as arrays.

    Attributes:
        name: the run's name: its folder's (or a `.csv` file's stem unless it
            is `metrics.csv`).
        path: the file read.
        columns: `{column: float64 array}`, one value an epoch, for the
            drawn columns (`epoch`, `lr`, `train_loss`, `train_acc`,
            `val_loss`, `val_top1`, `val_top5`).
        partial_line: the number of a last line left out as unfinished, or None.
    """

    name: str
    path: pathlib.Path
    columns: dict
    partial_line: int | None = None


def metrics_path(run):
    """A run folder's `metrics.csv`, or the `.csv` file named.

    Example:

    >>> from alexnet_keras.visualization.curves import metrics_path
    >>> str(metrics_path("examples/chm_cifar10/metrics")), str(metrics_path("a/b.csv"))
    ('examples/chm_cifar10/metrics/metrics.csv', 'a/b.csv')
    """
    run = pathlib.Path(run)
    return run / "metrics.csv" if run.is_dir() else run


def _lines(path):
    """The file's complete lines (a last line without its end is being written: left out)."""
    data = read_bounded(path, "a metrics.csv", _MAX_BYTES)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(
            f"{path}: not UTF-8 text (byte {e.start}); expected a metrics.csv"
        ) from None
    lines = text.splitlines(keepends=True)
    partial = None
    if lines and not lines[-1].endswith(("\n", "\r")):
        partial = len(lines)
        lines = lines[:-1]
    if not lines:
        raise ValueError(f"{path}: line 1: the header is unfinished (a run writing it?)")
    return lines, partial


def _column_indices(path, header):
    missing = [c for c in _NEEDED if c not in header]
    if missing:
        raise ValueError(f"{path}: line 1: the header lacks {', '.join(missing)}; expected "
                         f"{','.join(COLUMNS)}. Received: {','.join(header)[:200]}")  # fmt: skip
    return {c: header.index(c) for c in _NEEDED}


def read_metrics(run):
    """Reads a run's `metrics.csv` (a run folder, or the `.csv` file).

    Returns:
        A `Metrics`.

    Raises:
        ValueError: one line naming the file (and the line): no such file,
            an empty file, a header without the drawn columns, a row whose
            cells do not match the header, a cell that is not a number, or
            no epoch yet.

    Example:

    >>> from alexnet_keras.visualization.curves import read_metrics
    >>> m = read_metrics("examples/chm_cifar10/metrics/80sec-2011.csv")
    >>> m.name, len(m.columns["epoch"]), round(float(1 - m.columns["val_top1"][-1]), 4)
    ('80sec-2011', 30, 0.2311)
    """
    path = metrics_path(run)
    if not path.exists() and not pathlib.Path(run).exists():
        raise ValueError(f"{run}: no such run folder or metrics.csv file")
    lines, partial = _lines(path)
    rows = csv.reader(lines)
    header = next(rows)
    index = _column_indices(path, header)
    width = max(index.values()) + 1
    values = {c: [] for c in _NEEDED}
    for number, row in enumerate(rows, start=2):
        if not row:
            continue  # a blank line
        if len(row) < width:
            raise ValueError(
                f"{path}: line {number}: {len(row)} cells; the header has {len(header)}"
            )
        for column, i in index.items():
            try:
                values[column].append(float(row[i]))
            except ValueError:
                raise ValueError(f"{path}: line {number}: {column} is {row[i][:40]!r}, "
                                 "not a number") from None  # fmt: skip
    if not values["epoch"]:
        raise ValueError(f"{path}: no epoch yet (only the header)")
    name = path.parent.name if path.name == "metrics.csv" else path.stem
    columns = {c: np.asarray(v, np.float64) for c, v in values.items()}
    return Metrics(name or str(path), path, columns, partial)


def _panels(fig):
    """The four axes: loss, top-1 error, top-5 error, learning rate; epochs along each."""
    axes = fig.subplots(2, 2, sharex=True).ravel()
    labels = ("loss", "top-1 error (%)", "top-5 error (%)", "learning rate (log scale)")
    for ax, label in zip(axes, labels, strict=True):
        ax.set_title(label, fontsize=10)
        ax.grid(True, color="#ddd", linewidth=0.6)
    for ax in axes[2:]:
        ax.set_xlabel("epoch")
    axes[3].set_yscale("log")
    return axes


def epoch_axes(runs, *, chain=False):
    """The x values of each run: its own epochs, or with `chain` one after another.

    Chained runs are the phases of one protocol, each started from the
    weights the one before ended with (`train --weights runs/a/model.weights.h5`):
    a phase's epoch e is drawn at the earlier phases' epochs + e.

    >>> import numpy as np
    >>> from alexnet_keras.visualization.curves import Metrics, epoch_axes
    >>> a = Metrics("a", None, {"epoch": np.arange(1.0, 101.0)})
    >>> b = Metrics("b", None, {"epoch": np.arange(1.0, 61.0)})
    >>> [float(x[0]) for x in epoch_axes([a, b], chain=True)]
    [1.0, 101.0]
    """
    axes, offset = [], 0.0
    for run in runs:
        epoch = run.columns["epoch"]
        axes.append(epoch + offset)
        if chain:
            offset += float(epoch[-1])
    return axes


def draw_curves(runs, output, *, target=None, chain=False):
    """Draws the runs' curves, overlaid or chained, to a PNG; returns the path written.

    Four panels per epoch: the loss, the top-1 error and the top-5 error
    (eval solid, train dashed; the trainer records no train top-5) and the
    learning rate on a log scale. One colour a run, named in the legend.

    Args:
        runs: run folders or `metrics.csv` files (`read_metrics`), or `Metrics`.
        output: the `.png` to write.
        target: a top-1 error (%) to mark with a dashed line (a paper's claim).
        chain: the runs are phases of one protocol: drawn one after another
            along one epoch axis (`epoch_axes`), a dotted line where each
            phase starts.

    Example:

    >>> import glob, os, tempfile
    >>> from alexnet_keras.visualization.curves import draw_curves
    >>> runs = sorted(glob.glob("examples/chm_cifar10/metrics/80sec-*.csv"))
    >>> draw_curves(runs, os.path.join(tempfile.mkdtemp(), "c.png")).name
    'c.png'
    """
    runs = [r if isinstance(r, Metrics) else read_metrics(r) for r in runs]
    if not runs:
        raise ValueError("no run to draw: give run folders or metrics.csv files")
    fig = figure(10, 7.5, dpi=80)
    fig.set_layout_engine("constrained")
    loss, top1, top5, lr = _panels(fig)
    named = []  # one legend entry a run: its eval loss line
    for i, (run, epoch) in enumerate(zip(runs, epoch_axes(runs, chain=chain), strict=True)):
        c, colour = run.columns, f"C{i % 10}"
        if chain and i:
            for ax in (loss, top1, top5, lr):
                ax.axvline(epoch[0] - 0.5, color="#999", linestyle=":", linewidth=1)
        named.append(loss.plot(epoch, c["val_loss"], color=colour, label=run.name)[0])
        loss.plot(epoch, c["train_loss"], color=colour, linestyle="--", linewidth=1)
        top1.plot(epoch, 100 * (1 - c["val_top1"]), color=colour)
        top1.plot(epoch, 100 * (1 - c["train_acc"]), color=colour, linestyle="--", linewidth=1)
        top5.plot(epoch, 100 * (1 - c["val_top5"]), color=colour)
        lr.plot(epoch, c["lr"], color=colour, drawstyle="steps-post")
    handles = [*named, *_style_keys(loss)]
    if target is not None:
        handles.append(
            top1.axhline(target, color="#2a2", linestyle=":", label=f"target {target:g} %")
        )
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 5),
               fontsize=9, frameon=False)  # fmt: skip
    fig.suptitle(_title(runs), fontsize=10)
    return save_png(fig, output)


def _title(runs, width=110):
    """The last epoch's eval top-1 error of the first four runs, wrapped to `width`
    characters: four long run names on one line ran off both edges of the picture."""
    last = ", ".join(f"{r.name} {100 * (1 - r.columns['val_top1'][-1]):.2f} %" for r in runs[:4])
    more = f" (+{len(runs) - 4} more)" if len(runs) > 4 else ""
    return textwrap.fill(f"eval top-1 error after the last epoch: {last}{more}", width)


def _style_keys(ax):
    """Legend entries for the line styles: eval solid, train dashed (grey, no run's colour)."""
    solid = ax.plot([], [], color="#555", label="eval")[0]
    dashed = ax.plot([], [], color="#555", linestyle="--", linewidth=1, label="train")[0]
    return [solid, dashed]

"""The figure every picture draws on, its atomic PNG writer, and where it goes by default."""

import os
import pathlib
import tempfile

from alexnet_keras.files import apply_umask, write_error

__all__ = ["MISSING_MATPLOTLIB", "default_output", "figure", "save_png"]

MISSING_MATPLOTLIB = "drawing pictures needs matplotlib: pip install 'alexnet-keras[viz]'"


def figure(width, height, dpi=100):
    """A matplotlib `Figure` of `width` x `height` inches on the Agg canvas.

    The object API keeps pyplot's global state (and its GUI backends) out:
    a figure here is never shown, only saved.

    Raises:
        ValueError: matplotlib is not installed (one line naming the extra).

    Example:

    >>> from alexnet_keras.visualization.canvas import figure
    >>> fig = figure(2, 1)
    >>> [int(v) for v in fig.get_size_inches() * fig.dpi]
    [200, 100]
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ValueError(MISSING_MATPLOTLIB) from None
    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig, path):
    """Writes `fig` to `path` as a PNG, atomically: a complete picture or none.

    The PNG is written to a temporary file beside `path` and renamed over it,
    so an interrupted or failed write never leaves half a picture.

    Returns:
        The path written, as a `pathlib.Path`.

    Raises:
        ValueError: `path` is a folder, or its folder cannot be made (one
            line naming `path`).
        OSError: the folder cannot be written (a full disk is one line
            naming the file, see `files.write_error`).

    Example:

    >>> import os, tempfile
    >>> from alexnet_keras.visualization.canvas import figure, save_png
    >>> path = save_png(figure(1, 1), os.path.join(tempfile.mkdtemp(), "x.png"))
    >>> path.read_bytes()[:4]
    b'\\x89PNG'
    """
    path = pathlib.Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a folder; give -o a .png file name")
    folder = path.parent
    try:  # as the weights writers do (`weights.atomic_write`): the folder is made if missing
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as e:  # else the message would name the temporary file, not the picture
        not_folder = isinstance(e, (FileExistsError, NotADirectoryError))
        why = f"{e.filename} is not a folder" if not_folder else e.strerror or e
        raise ValueError(f"{path}: cannot be written: {why}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format="png", metadata={"Software": "alexnet-keras"})
        apply_umask(tmp)
        os.replace(tmp, path)
    except OSError as e:
        os.unlink(tmp)
        raise (write_error(path, e) or e) from None
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def default_output(source, picture):
    """Where a picture goes without `-o`: beside its input, named by what it shows.

    A folder input (a run folder) gets `<folder>/<picture>.png`; a file input
    (a weights file, an image) gets `<file's folder>/<stem>-<picture>.png`,
    with a `.weights.h5` stem shortened to the name before `.weights`.

    Example:

    >>> from alexnet_keras.visualization.canvas import default_output
    >>> str(default_output("runs/a/model.weights.h5", "filters"))
    'runs/a/model-filters.png'
    """
    source = pathlib.Path(source)
    if source.is_dir():
        return source / f"{picture}.png"
    stem = source.name.split(".weights.")[0] if ".weights." in source.name else source.stem
    return source.parent / f"{stem}-{picture}.png"

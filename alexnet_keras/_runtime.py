"""Process-wide settings that must be chosen before TensorFlow is imported.

Imported first by `alexnet_keras/__init__.py`; it imports nothing heavy. The
user's own settings always stand: `KERAS_BACKEND` (environment or
`keras.json`), `TF_CPP_MIN_LOG_LEVEL`, `TF_ENABLE_ONEDNN_OPTS`, `-W` /
`PYTHONWARNINGS`.
"""

import contextlib
import importlib.machinery  # here, not in find_spec: importing it there would recurse
import json
import logging
import os
import sys
import warnings

__all__ = [
    "allow_tensorflow_logs",
    "check_backend",
    "configure_environment",
    "keras_backend",
    "native_stderr_captured",
    "quiet_python_logs",
    "quiet_tensorflow_import",
]


def configure_environment():
    """Sets the defaults this package wants, leaving any user choice alone.

    - `TF_ENABLE_ONEDNN_OPTS=1`: TF 2.21 leaves oneDNN off on CPUs without
      AVX-512 VNNI/BF16, which costs AlexNet training about 1.6x there
      (`shared/docs/tensorflow-notes.md` §9). It is read once, when TensorFlow
      is imported, so it only takes effect if TensorFlow is not imported yet.
    - With `TF_CPP_MIN_LOG_LEVEL` set to 2 or 3 by the user, TensorFlow's
      import-time native lines (which ignore it) are kept off stderr too.

    `KERAS_BACKEND` is not set: a backend named in `keras.json` or the
    environment stands (`keras_backend`). The model, layers and weights run on
    TensorFlow, JAX and PyTorch; the commands refuse other backends
    (`check_backend`).
    """
    if "tensorflow" not in sys.modules:
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
        if os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") >= "2":
            quiet_tensorflow_import()


def keras_backend():
    """`(backend, where it is set)`: the backend Keras uses, or will use once imported.

    Read as Keras reads it, without importing Keras: `KERAS_BACKEND`, else the
    `backend` of `$KERAS_HOME/keras.json` (or `~/.keras/keras.json`), else
    `"tensorflow"`. Once Keras is imported, its own answer wins.

    Example:

    >>> from alexnet_keras._runtime import keras_backend
    >>> keras_backend()[0] in ("tensorflow", "jax", "torch", "numpy", "openvino")
    True
    """
    if os.environ.get("KERAS_BACKEND"):
        backend, where = os.environ["KERAS_BACKEND"], "KERAS_BACKEND"
    else:
        backend, where = _keras_json_backend()
    config = getattr(sys.modules.get("keras"), "config", None)
    if config is not None and config.backend() != backend:
        return config.backend(), "Keras' own setting"
    return backend, where


def _keras_json_backend():
    if "KERAS_HOME" in os.environ:
        home = os.environ["KERAS_HOME"]
    else:
        base = os.path.expanduser("~")
        home = os.path.join(base if os.access(base, os.W_OK) else "/tmp", ".keras")
    path = os.path.expanduser(os.path.join(home, "keras.json"))
    try:
        with open(path) as f:
            backend = json.load(f).get("backend")
    except (OSError, ValueError, AttributeError):
        backend = None
    return (backend, path) if backend else ("tensorflow", "default")


def check_backend():
    """Refuses, in one line, to run a command on a backend other than TensorFlow.

    The model, its layers and weights files run on every backend; what the
    commands drive (the `tf.distribute` trainer, `tf.data` pipelines, exports)
    is TensorFlow's, so the command line needs Keras on TensorFlow.

    Raises:
        ValueError: when Keras is set to another backend; it names where.

    Example:

    >>> from alexnet_keras._runtime import check_backend
    >>> check_backend()  # TensorFlow: nothing to say
    """
    backend, where = keras_backend()
    if backend != "tensorflow":
        raise ValueError(
            f"{where}: Keras is set to the {backend!r} backend; alexnet-keras commands run on "
            "TensorFlow: run them with KERAS_BACKEND=tensorflow"
        )


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    # This package's own warnings are one `Warning:` line; the libraries' are noise here.
    if category.__module__.split(".")[0] == __name__.split(".")[0]:
        sys.stderr.write("Warning: " + " ".join(str(message).split()) + "\n")


def quiet_python_logs():
    """Keeps TensorFlow's, absl's and Keras' Python-side logs and warnings off stderr.

    TensorFlow's and absl's loggers (AutoGraph notes, TFDS's "Variant folder
    ... has no dataset_info.json") log errors only. Python warnings from the
    libraries (deprecations, "Compiled the loaded model ...") are dropped, and
    this package's own are one `Warning: ...` line, unless the user chose
    warnings with `-W` or `PYTHONWARNINGS`.
    """
    for name in ("tensorflow", "absl", "h5py"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if not sys.warnoptions:
        warnings.showwarning = _one_line_warning


@contextlib.contextmanager
def native_stderr_captured():
    """Keeps what native code writes to file descriptor 2 off stderr, unless the block fails.

    Native libraries log with their own loggers, past `TF_CPP_MIN_LOG_LEVEL`
    (absl's banner at TensorFlow's import, LiteRT's "Created TensorFlow Lite
    XNNPACK delegate for CPU"). The output is kept and replayed if the block
    raises, so a failure still says why. With logs asked for
    (`TF_CPP_MIN_LOG_LEVEL` below 2, as `--verbose` sets it) nothing is captured.
    """
    import tempfile

    if os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2") < "2":
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


class _QuietImport:
    """A `sys.meta_path` finder that imports `tensorflow` once with file descriptor 2 closed off.

    TF 2.21's native libraries log through absl before it is initialised:
    the "All log messages before absl::InitializeLog()" banner, oneDNN and
    CUDA notes, twice, to stderr, whatever `TF_CPP_MIN_LOG_LEVEL` says. A CLI
    whose bad input must be one line cannot let them through. The output is
    kept and replayed if the import fails, so a broken install still says why.
    """

    def __init__(self):
        self.active = False

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow" or self.active:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _QuietLoader(spec.loader, self)
        return spec


class _QuietLoader:
    def __init__(self, loader, finder):
        self.loader, self.finder = loader, finder

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.finder.active = True
        if self.finder in sys.meta_path:
            sys.meta_path.remove(self.finder)
        with native_stderr_captured():
            self.loader.exec_module(module)
            if not os.path.exists("/proc/driver/nvidia/version"):
                # A GPU build without a driver logs "failed call to cuInit" as
                # an error when it first lists devices: noise, on such a machine.
                module.config.list_physical_devices()

    def __getattr__(self, name):  # is_package, get_code, ... of the real loader
        return getattr(self.loader, name)


def allow_tensorflow_logs():
    """Lets TensorFlow's logs through (`alexnet-keras --verbose`), whatever was set before."""
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _QuietImport)]


def quiet_tensorflow_import():
    """Keeps TensorFlow's import-time native log lines off stderr, unless logs were asked for.

    Does nothing if TensorFlow is imported already or `TF_CPP_MIN_LOG_LEVEL`
    is set below 2. The import itself stays lazy: it happens wherever the
    code first needs TensorFlow.
    """
    if "tensorflow" in sys.modules or os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2") < "2":
        return
    if not any(isinstance(f, _QuietImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietImport())

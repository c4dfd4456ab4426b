"""Process-wide TensorFlow settings that must be chosen before TF is imported.

Imported first by `alexnet_keras/__init__.py`; it imports nothing heavy.
"""

import os
import sys

__all__ = ["configure_environment", "quiet_tensorflow_import"]


def configure_environment():
    """Sets the defaults this package wants, leaving any user choice alone.

    - `KERAS_BACKEND=tensorflow`: the layers call TensorFlow kernels directly.
    - `TF_ENABLE_ONEDNN_OPTS=1`: TF 2.21 leaves oneDNN off on CPUs without
      AVX-512 VNNI/BF16, which costs AlexNet training about 1.6x there
      (`shared/docs/tensorflow-notes.md` §9). It is read once, when TensorFlow
      is imported, so it only takes effect if TensorFlow is not imported yet.
    """
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if "tensorflow" not in sys.modules:
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


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
        import importlib.machinery

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
        import tempfile

        self.finder.active = True
        if self.finder in sys.meta_path:
            sys.meta_path.remove(self.finder)
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile() as captured:
            os.dup2(captured.fileno(), 2)
            try:
                self.loader.exec_module(module)
                if not os.path.exists("/proc/driver/nvidia/version"):
                    # A GPU build without a driver logs "failed call to cuInit" as
                    # an error when it first lists devices: noise, on such a machine.
                    module.config.list_physical_devices()
            except BaseException:
                os.dup2(saved, 2)
                captured.seek(0)
                sys.stderr.write(captured.read().decode(errors="replace"))
                raise
            finally:
                os.dup2(saved, 2)
                os.close(saved)

    def __getattr__(self, name):  # is_package, get_code, ... of the real loader
        return getattr(self.loader, name)


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

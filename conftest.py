"""Root pytest hooks: the package's docstring examples run as doctests (`--doctest-modules`).

The examples name `../shared` relative to the repository root, so each runs
from there, and skips with a reason where the shared data folder is absent.
"""

import os
import pathlib
import tempfile

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = pathlib.Path(__file__).resolve().parent
SHARED = pathlib.Path(os.environ.get("ALEXNET_KERAS_SHARED", ROOT.parent / "shared"))


@pytest.fixture(autouse=True)
def _doctest_from_root(request, monkeypatch, tmp_path_factory):
    if isinstance(request.node, pytest.DoctestItem):
        # Examples that call tempfile.mkdtemp() write under pytest's tmp, which it prunes.
        monkeypatch.setattr(tempfile, "tempdir", str(tmp_path_factory.mktemp("doctest")))
        if "../shared" in "".join(ex.source for ex in request.node.dtest.examples):
            if not SHARED.exists():
                pytest.skip(f"needs {SHARED} (the project's shared data folder)")
        monkeypatch.chdir(ROOT)

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
def _doctest_from_root(request, monkeypatch):
    if isinstance(request.node, pytest.DoctestItem):
        # Examples that call tempfile.mkdtemp() (some write a 230 MB weights file) write under
        # the example's own tmp_path, which pytest removes once it passes (setup.cfg's
        # tmp_path_retention_policy): left for the end of the session, the suite's writes add
        # up to more than a CI machine's disk holds.
        monkeypatch.setattr(tempfile, "tempdir", str(request.getfixturevalue("tmp_path")))
        if "../shared" in "".join(ex.source for ex in request.node.dtest.examples):
            if not SHARED.exists():
                pytest.skip(f"needs {SHARED} (the project's shared data folder)")
        monkeypatch.chdir(ROOT)

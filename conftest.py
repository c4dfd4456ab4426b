"""Root pytest hooks: the package's docstring examples run as doctests (`--doctest-modules`).

The examples name `../shared` relative to the repository root, so each runs
from there, and skips with a reason where the shared data folder is absent.
"""

import os
import pathlib
import shutil
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


# Folders a fixture made, so that one whose setup runs another (getfixturevalue) does not
# take the inner one's folders as its own.
_OWNED = set()


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef, request):
    """A fixture's `tmp_path_factory.mktemp` folders go at that fixture's teardown.

    pytest keeps them to the session's end, and the module fixtures alone (weights files,
    caffemodels, exports, checkpoints of 0.2-1.2 GB each) add up to more than a CI
    machine's disk holds. A failed test keeps its own `tmp_path` (setup.cfg's retention).
    Folders a fixture's value makes later (a closure that calls `mktemp`) are that
    fixture's own to remove.
    """
    factory = getattr(request.config, "_tmp_path_factory", None)
    if factory is None or fixturedef.argname == "tmp_path_factory":
        return (yield)
    base = factory.getbasetemp()
    before = set(base.iterdir())
    try:
        return (yield)
    finally:  # a setup that skips or fails after mktemp leaves nothing behind either
        made = set(base.iterdir()) - before - _OWNED
        if made:
            _OWNED.update(made)
            # A tmp_path is claimed only so that the fixture that asked for it (a doctest's
            # tempdir) does not remove it: its test's outcome decides (retention policy).
            keep = fixturedef.argname == "tmp_path"

            def remove():
                for path in () if keep else made:
                    shutil.rmtree(path, ignore_errors=True)
                _OWNED.difference_update(made)

            fixturedef.addfinalizer(remove)

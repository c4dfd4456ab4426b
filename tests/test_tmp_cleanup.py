"""The suite's temporary folders go as it runs (conftest.py, setup.cfg), not at its end.

The CI machine ran out of disk at 99 % when every fixture's folder stayed to the session's
end. Here an inner pytest session runs the repository's root conftest on a few tests that
record their folders, and later tests check which of them are gone.
"""

import pathlib

pytest_plugins = ["pytester"]

ROOT = pathlib.Path(__file__).resolve().parents[1]

HELPERS = """

import pathlib

SEEN = pathlib.Path(__file__).parent / "seen"


def note(name, path):
    with open(SEEN, "a") as f:
        f.write(f"{name} {path}\\n")


def seen():
    return dict(line.split(" ", 1) for line in SEEN.read_text().splitlines())


@pytest.fixture(scope="session")
def session_folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("session")
    note("session", path)
    return path
"""

FIRST = """
import pytest
from conftest import note


@pytest.fixture(scope="module")
def module_folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("module")
    (path / "big.bin").write_bytes(b"x" * 1000)
    note("module", path)
    return path


@pytest.fixture
def outer(request):
    # another fixture's folder, made inside this one's setup: not this one's to remove
    note("outer", request.getfixturevalue("session_folder"))


def test_a(module_folder, outer, tmp_path):
    note("tmp_path", tmp_path)
    assert module_folder.exists()


def test_b(module_folder, session_folder):
    assert module_folder.exists() and session_folder.exists()


def test_c_fails(tmp_path):
    note("failed", tmp_path)
    assert False
"""

DOCTEST = """
def f():
    \"\"\"A failing example whose tempfile.mkdtemp() folder is kept, as a failed test's.

    >>> import tempfile
    >>> from conftest import note
    >>> note("doctest", tempfile.mkdtemp())
    >>> 1
    2
    \"\"\"


def g():
    \"\"\"A passing example: its folder goes.

    >>> import tempfile
    >>> from conftest import note
    >>> note("passed-doctest", tempfile.mkdtemp())
    \"\"\"
"""

LATER = """
import pathlib
from conftest import seen


def test_d(session_folder):
    folders = seen()
    assert not pathlib.Path(folders["module"]).exists()  # its module is done
    assert not pathlib.Path(folders["tmp_path"]).exists()  # its test passed
    assert pathlib.Path(folders["failed"]).exists()  # kept to look at
    assert pathlib.Path(folders["doctest"]).exists()
    assert not pathlib.Path(folders["passed-doctest"]).exists()
    assert pathlib.Path(folders["session"]).exists()  # still in use
"""


def test_fixture_folders_go_at_their_teardown_and_failed_tests_keep_theirs(pytester):
    retention = [line for line in (ROOT / "setup.cfg").read_text().splitlines()
                 if line.startswith("tmp_path_retention")]  # fmt: skip
    pytester.makeini("\n".join(["[pytest]", *retention]))
    pytester.makeconftest((ROOT / "conftest.py").read_text() + HELPERS)
    pytester.makepyfile(test_first=FIRST, test_later=LATER, a_doctest=DOCTEST)
    result = pytester.runpytest("-p", "no:randomly", "-p", "no:cacheprovider", "a_doctest.py",
                                "--doctest-modules", "test_first.py", "test_later.py")  # fmt: skip
    result.assert_outcomes(passed=4, failed=2)

"""The README's Python blocks run. (Docstring examples run through `--doctest-modules`.)"""

import pathlib
import re
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_readme_python_blocks_run(monkeypatch, imagenet_dir, tmp_path):
    monkeypatch.chdir(ROOT)
    # The examples write a 233 MB export under tempfile.mkdtemp(): keep it in pytest's tmp.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert blocks, "the README has no Python example"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})

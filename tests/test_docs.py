"""The runnable examples: every docstring `>>>` example and the README's Python blocks."""

import doctest
import importlib
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODULES = [
    "alexnet_keras",
    "alexnet_keras.layers",
    "alexnet_keras.model",
    "alexnet_keras.preprocessing",
    "alexnet_keras.summary",
    "alexnet_keras.weights",
    "alexnet_keras.geometry",
    "alexnet_keras.registry",
    "alexnet_keras.converters.safe_pickle",
    "alexnet_keras.converters.bvlc_npy",
    "alexnet_keras.converters.caffemodel",
    "alexnet_keras.converters.prototxt",
    "alexnet_keras.converters.chm_cfg",
    "alexnet_keras.converters.convert",
    "alexnet_keras.serving",
    "alexnet_keras.export",
    "alexnet_keras.prediction",
    "alexnet_keras.chm_model",
    "alexnet_keras.convnet_layers",
    "alexnet_keras.converters.chm_weights",
    "alexnet_keras.converters.cuda_convnet",
    "alexnet_keras.convnet_data",
    "alexnet_keras.converters.convnet_reference",
    "alexnet_keras.convnet_training",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, monkeypatch, imagenet_dir):
    monkeypatch.chdir(ROOT)  # examples name ../shared relative to the repository root
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_readme_python_blocks_run(monkeypatch, imagenet_dir):
    monkeypatch.chdir(ROOT)
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert blocks, "the README has no Python example"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})

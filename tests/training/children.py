"""Helpers of the training tests that run children: TensorFlow's start-up noise, tiny runs.

TF 2.21 writes a few `I0000 ...` lines to stderr before absl's logging is set
up, whatever `TF_CPP_MIN_LOG_LEVEL` says; they are not the CLI's output, so the
one-line checks of `tests.sandbox` look at stderr without them.
"""

import dataclasses
import re

from tests.conftest import SHARED, require
from tests.sandbox import assert_loaded, assert_refused

MINI = SHARED / "data" / "cifar10-mini"
CFG = SHARED / "data" / "chm-release" / "example-layers"
_TF_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\).*|[IWE]\d{4} .*)\n?", re.M
)


def quiet(outcome):
    """`outcome` without TensorFlow's start-up lines on stderr."""
    return dataclasses.replace(outcome, stderr=_TF_NOISE.sub("", outcome.stderr))


def refused(outcome, *fragments, code=2, after_log=False):
    """`assert_refused` on stderr without TF's noise. `after_log`: the run logged its start
    (dataset, notes) before it stopped; then the `Error:` line must be the last and only one."""
    outcome = quiet(outcome)
    if after_log:
        lines = outcome.stderr.strip().splitlines()
        assert lines and not any("Error:" in line for line in lines[:-1]), outcome.describe()
        outcome = dataclasses.replace(outcome, stderr=lines[-1] + "\n")
    return assert_refused(outcome, *fragments, code=code)


def loaded(outcome):
    assert_loaded(outcome)
    return quiet(outcome)


def tiny_run(model_dir, *extra):
    """`train` of cuda-convnet's 80-second CIFAR net (0.3 M weights) on cifar10-mini: about
    4 s a run, with checkpoints of 1.2 MB."""
    require(MINI)
    return ["train", "--dataset", f"folder:{MINI}", "--chm-layers", CFG / "layers-80sec.cfg",
            "--chm-params", CFG / "layer-params-80sec.cfg", "--model-dir", model_dir,
            "--batch-size", "8", "--eval-steps", "1", "--seed", "0", *extra]  # fmt: skip

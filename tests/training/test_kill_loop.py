"""SIGKILL at any moment of a run, then resume: the run always completes, and its final
weights are those of an uninterrupted run, bit for bit.

A tiny cuda-convnet net (`children.tiny_run`, 3 epochs of 6 steps, a checkpoint
at every step and at each epoch's end) is killed at random moments, each kill
followed by a resume, until a run finishes. Kills aimed at the epoch-end save
use the checkpoint module's test hook (`ALEXNET_KERAS_TEST_KILL`): inside
TensorFlow's write, after the data and index are written but before the state
file, and after the state file but before TensorFlow's index is rewritten.
"""

import csv
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.training.children import tiny_run

EXTRA = ("--epochs", "3", "--steps-per-epoch", "6", "--checkpoint-every", "1")


def _start(model_dir, **env):
    args = [sys.executable, "-m", "alexnet_keras", *map(str, tiny_run(model_dir, *EXTRA))]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **env},
                            start_new_session=True)  # fmt: skip


def _finish(proc, timeout=180):
    stdout, stderr = proc.communicate(timeout=timeout)
    return proc.returncode, stdout, stderr


def _resume_to_the_end(model_dir):
    rc, stdout, stderr = _finish(_start(model_dir))
    assert rc == 0 and "Traceback" not in stderr, stderr[-3000:]
    assert "done: val top-1" in stdout
    return stderr


def _arrays(path):
    """Every dataset of a weights file, read with h5py (the file is our own)."""
    import h5py

    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(
            obj, h5py.Dataset) else None)  # fmt: skip
    return out


def _same_weights(a, b):
    first, second = _arrays(a / "model.weights.h5"), _arrays(b / "model.weights.h5")
    assert first.keys() == second.keys() and len(first) >= 8
    for name in first:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)
    epochs = [row["epoch"] for row in csv.DictReader(open(b / "metrics.csv"))]
    assert epochs == ["1", "2", "3"], epochs


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "m"
    _resume_to_the_end(out)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["write+0.001", "write+0.005", "written", "state"])
def test_a_kill_inside_the_epoch_end_save_resumes_to_the_same_weights(reference, tmp_path, stage):
    out = tmp_path / "m"
    rc, _, stderr = _finish(_start(out, ALEXNET_KERAS_TEST_KILL=f"epoch:{stage}"))
    if stage in ("written", "state"):  # deterministic stages: the kill must have happened
        assert rc == -signal.SIGKILL, stderr[-3000:]
    _resume_to_the_end(out)
    _same_weights(reference, out)


def _newest_save(model_dir):
    folder = model_dir / "checkpoints"
    names = os.listdir(folder) if folder.is_dir() else []
    return max((int(n.split("-")[1].split(".")[0]) for n in names if n.endswith(".state.json")),
               default=0)  # fmt: skip


def _kill_after(proc, model_dir, rng, alternate):
    """Kills `proc` at a random wall-clock moment of its first 3 s (start-up: imports, the
    lock, the dataset, the restore) or, every other time, a random 1..3 saves later plus up
    to 0.1 s (inside training). Returns `_finish`'s result, or None when it was killed."""
    deadline = time.monotonic() + (rng.uniform(0.3, 3.0) if alternate else 180)
    target = _newest_save(model_dir) + rng.randint(1, 3)
    while time.monotonic() < deadline and proc.poll() is None:
        if not alternate and _newest_save(model_dir) >= target:
            time.sleep(rng.uniform(0, 0.1))
            break
        time.sleep(0.005)
    if proc.poll() is not None:
        return _finish(proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    return None


@pytest.mark.slow
def test_random_kills_then_resumes_always_complete_with_the_same_weights(reference, tmp_path):
    rng = random.Random(14)
    out = tmp_path / "m"
    started, progress = time.monotonic(), []
    for i in range(40):
        finished = _kill_after(_start(out), out, rng, alternate=i % 2 == 1)
        progress.append(_newest_save(out))
        if finished is not None:
            rc, stdout, stderr = finished
            assert rc == 0 and "Traceback" not in stderr, stderr[-3000:]
            break
    else:
        raise AssertionError(f"the run never completed: {progress}")
    print(
        f"{len(progress) - 1} kills, newest save after each run: {progress}, "
        f"{time.monotonic() - started:.0f} s"
    )
    _same_weights(reference, out)
    assert len(progress) - 1 >= 6, progress

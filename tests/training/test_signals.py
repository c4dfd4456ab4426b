"""An interrupted run saves its checkpoint, then exits 130 (SIGINT) or 143 (SIGTERM), as a
shell reports a process ended by that signal: batch systems (Kubernetes Jobs, Slurm) must not
count a preempted run as done. A real child process, a real signal."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.training.children import tiny_run

# 200 epochs of 25 steps: far more than the child runs before the signal comes.
LONG = ("--epochs", "200", "--log-every", "1", "--checkpoint-every", "1000")


def _as_from_a_terminal():
    # A shell that starts a job in the background (`pytest &`, `nohup`) sets SIGINT to
    # ignored, and the child inherits that; Ctrl-C at a terminal finds it at its default.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _newest_state(folder):
    states = sorted(folder.glob("ckpt-*.state.json"), key=lambda p: int(p.name[5:].split(".")[0]))
    return json.loads(states[-1].read_text())["state"] if states else None


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_saves_a_checkpoint_and_exits_128_plus_its_number(tmp_path, sig, code):
    out = tmp_path / "m"
    args = [sys.executable, "-m", "alexnet_keras", *map(str, tiny_run(out, *LONG))]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
                            start_new_session=True, preexec_fn=_as_from_a_terminal)  # fmt: skip
    try:
        for line in proc.stderr:  # the first training step, no checkpoint yet
            if "epoch 1/200 step 1/" in line:
                break
        assert not (out / "checkpoints").exists()
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == code, stderr[-3000:]
    assert "done" not in stdout and "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert lines[-1] == (f"{sig.name}: checkpoint saved in {out}; run the same command again "
                         "to resume"), stderr[-2000:]  # fmt: skip
    state = _newest_state(out / "checkpoints")
    assert state is not None and state["global_step"] >= 1 and state["epoch"] < 200
    assert not (out / "model.weights.h5").exists()


def test_ctrl_c_while_starting_exits_130_in_one_line(tmp_path):
    """Before the loop takes SIGINT over (TensorFlow still loading), Ctrl-C is a
    KeyboardInterrupt: one line, exit 130, no traceback, no folder."""
    args = [sys.executable, "-m", "alexnet_keras", *map(str, tiny_run(tmp_path / "m", *LONG))]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
                            start_new_session=True, preexec_fn=_as_from_a_terminal)  # fmt: skip
    try:
        time.sleep(1.5)  # the imports take several seconds
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr and stdout == ""
    assert stderr.strip().splitlines()[-1].startswith("SIGINT: stopped outside the training loop")
    assert not (tmp_path / "m").exists()


def test_a_signal_during_validation_ends_the_run_at_the_epoch_end_checkpoint(tmp_path):
    import keras
    import tensorflow as tf

    from alexnet_keras.training import config as train_config
    from alexnet_keras.training import setups
    from alexnet_keras.training.trainer import Trainer

    data = tf.data.Dataset.from_tensor_slices(
        (tf.random.normal((8, 4), seed=1), tf.constant([0, 1] * 4))
    ).batch(4)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="fc8")])
    config = train_config.resolve("train", {"dataset": "toy", "weights": "none", "epochs": 3,
                                            "model_dir": str(tmp_path)})  # fmt: skip
    setup = setups.Setup(model=model, factors=[(1.0, None), (1.0, None)],
                         make_train=lambda epoch, skip: data.skip(skip),
                         make_eval=lambda: data, steps=2)  # fmt: skip
    trainer = Trainer(config, tf.distribute.get_strategy(), setup)
    stop = type("Stop", (), {"requested": None})()
    evaluate = trainer.evaluate

    def evaluate_then_signal():
        stop.requested = "SIGTERM"  # as if it came during the pass
        return evaluate()

    trainer.evaluate = evaluate_then_signal
    assert trainer.fit(stop) == "interrupted"
    state = _newest_state(tmp_path / "checkpoints")
    assert (state["epoch"], state["step_in_epoch"], state["global_step"]) == (1, 0, 2)

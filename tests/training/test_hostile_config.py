"""Hostile configs and `TF_CONFIG`: one `Error:` line and exit 2 (exit 1 for an unreachable
peer), before anything trains. Each case runs the real CLI in a child with a timeout and an
RSS cap (`tests.sandbox`); config refusals come before TensorFlow loads, so they cost about
half a second each.
"""

import json
import math
import socket

import pytest

from alexnet_keras.training import config as train_config
from alexnet_keras.training import strategies
from tests.conftest import SHARED, require
from tests.loopback import closed_port
from tests.sandbox import assert_refused, run_isolated
from tests.training.children import refused

MINI = SHARED / "data" / "cifar10-mini"


def train_args(tmp_path, *extra):
    return ["train", "--dataset", f"folder:{require(MINI)}", "--model-dir", tmp_path / "m",
            "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "2", "--eval-steps", "1",
            *extra]  # fmt: skip


# A `--config` file's text -> what the one line must name.
HOSTILE_FILES = {
    "lr_mults: [1, 2]\n": "lr_mults",
    "step_epochs: 0\n": "step_epochs",
    "lr: NaN\n": "`lr`",
    "lr: Infinity\n": "`lr`",
    "lr: -Infinity\n": "`lr`",
    "lr: -0.1\n": "`lr`",
    "lr: '0.1'\n": "`lr`",
    "momentum: 1.5\n": "momentum",
    "epochs: 2.5\n": "epochs",
    "epochs: true\n": "epochs",
    "batch_size: 99999999999999999999999\n": "batch_size",
    "seed: -1\n": "seed",
    "decay_biases: 'yes'\n": "decay_biases",
    "lr_mults:\n  fc9: 2\n": "lr_mults",
    "lr_mults:\n  fc8: NaN\n": "lr_mults",
    "lr_mults:\n  fc8:\n    deeper: 1\n": "lr_mults",
    "milestones: [30, 10]\n": "milestones",
    "milestones: 30\n": "milestones",
    "input_size: '227'\n": "input_size",
    "data_dir: [a, b]\n": "data_dir",
    "chm_layers: {a: 1}\n": "chm_layers",
    "schedule: [step]\n": "schedule",
    "holdout: 2\n": "holdout",
    "cpu_devices: 100000\n": "cpu_devices",
    "warmup_epochs: NaN\n": "warmup_epochs",
    "milestones: " + "[" * 100_000 + "\n": "nested too deeply",
    "a:\n" + "".join(" " * i + f"k{i}:\n" for i in range(1, 40)) + " " * 40 + "x: 1\n": "nested",
    "\udcff: 1\n": "UTF-8",
}


@pytest.mark.parametrize("text", list(HOSTILE_FILES), ids=range(len(HOSTILE_FILES)))
def test_a_hostile_config_file_is_one_line(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    outcome = run_isolated(cli=[*train_args(tmp_path), "--config", path], timeout=60)
    assert_refused(outcome, path, HOSTILE_FILES[text])
    assert not (tmp_path / "m").exists()  # refused before the model dir was made


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_a_non_finite_learning_rate_on_the_command_line_is_bad_input(tmp_path, value):
    outcome = run_isolated(cli=train_args(tmp_path, "--lr", value), timeout=60)
    assert_refused(outcome, "`lr`", value)


def test_a_config_file_that_is_a_fifo_or_too_big(tmp_path):
    import os

    os.mkfifo(tmp_path / "fifo.yaml")
    assert_refused(run_isolated(cli=[*train_args(tmp_path), "--config", tmp_path / "fifo.yaml"],
                                timeout=30), "fifo.yaml")  # fmt: skip
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * (2 << 20) + "\n")
    assert_refused(run_isolated(cli=[*train_args(tmp_path), "--config", big], timeout=30),
                   "big.yaml")  # fmt: skip


def test_every_typed_key_is_checked_in_process():
    """The type check comes from `TrainConfig`'s annotations: no key is left unchecked."""
    for key in train_config.defaults("train"):
        if key in ("command", "dataset"):
            continue
        with pytest.raises(ValueError, match=key):
            train_config.resolve("train", {"dataset": "x", key: object()})
    with pytest.raises(ValueError, match="`lr`"):
        train_config.resolve("train", {"dataset": "x", "lr": math.nan})


# `TF_CONFIG` values -> what the one line must name.
HOSTILE_TF_CONFIGS = {
    "{": "not JSON",
    "[1, 2]": "JSON object",
    '{"cluster": {"worker": "a:1"}}': "cluster.worker",
    '{"cluster": {"worker": [1, 2]}, "task": {"type": "worker", "index": 0}}': "cluster.worker[0]",
    '{"cluster": {"worker": ["a:99999"]}, "task": {"type": "worker"}}': "cluster.worker[0]",
    '{"cluster": {"worker": ["a b:1"]}, "task": {"type": "worker"}}': "cluster.worker[0]",
    '{"cluster": {"boss": ["a:1"]}, "task": {"type": "boss"}}': "boss",
    '{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}': "task.type",
    '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}': "task.index",
    '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": "0"}}': "task.index",
    '{"cluster": {"worker": ["a:1"]}, "task": [0]}': "task",
    '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": true}}': "task.index",
    '{"cluster": {"worker": ' + json.dumps([f"h:{i + 1}" for i in range(2000)]) + "}}": "1024",
    "[" * 100_000: "TF_CONFIG",
}


@pytest.mark.parametrize("text", list(HOSTILE_TF_CONFIGS), ids=range(len(HOSTILE_TF_CONFIGS)))
def test_a_hostile_tf_config_is_one_line(text):
    with pytest.raises(ValueError, match="TF_CONFIG") as e:
        strategies.tf_config_task({"TF_CONFIG": text})
    assert HOSTILE_TF_CONFIGS[text] in str(e.value) and "\n" not in str(e.value)


def test_a_hostile_tf_config_is_refused_by_the_cli_before_tensorflow(tmp_path):
    bad = '{"cluster": {"worker": ["127.0.0.1:x"]}, "task": {"type": "worker", "index": 0}}'
    outcome = run_isolated(cli=train_args(tmp_path, "--strategy", "multi-worker"),
                           env={"TF_CONFIG": bad}, timeout=30)  # fmt: skip
    assert_refused(outcome, "TF_CONFIG", "cluster.worker[0]")


def test_an_unreachable_peer_is_named_after_a_bounded_wait(tmp_path):
    own, peer = closed_port(), closed_port()
    tf_config = {"cluster": {"worker": [f"127.0.0.1:{own}", f"127.0.0.1:{peer}"]},
                 "task": {"type": "worker", "index": 0}}  # fmt: skip
    outcome = run_isolated(
        cli=train_args(tmp_path, "--strategy", "multi-worker"), timeout=60,
        env={"TF_CONFIG": json.dumps(tf_config), "ALEXNET_KERAS_PEER_WAIT": "1"},
    )  # fmt: skip
    refused(outcome, "worker 1", f"127.0.0.1:{peer}", "after 1 s", code=1)


def test_the_peer_wait_sees_a_listening_peer_and_gives_its_port_back():
    with socket.socket() as peer:
        peer.bind(("127.0.0.1", 0))
        peer.listen()
        own = closed_port()
        cluster = {"worker": [("127.0.0.1", own), ("127.0.0.1", peer.getsockname()[1])]}
        strategies.wait_for_peers(cluster, "worker", 0, seconds=5)
    with socket.socket() as again:  # the beacon let go of this task's port
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("", own))
    with pytest.raises(ValueError, match="ALEXNET_KERAS_PEER_WAIT"):
        strategies.peer_wait_seconds({"ALEXNET_KERAS_PEER_WAIT": "nan"})

"""Checkpoints under faults: damaged saves, a second trainer, a full disk, leftovers of a kill.

Each case runs in a child with a timeout and an RSS cap (`tests.sandbox`). The
damage kinds run together in one child against `Checkpoints` and a tiny model
(TensorFlow starts once); the end-to-end cases run the real CLI on a tiny
cuda-convnet net (`children.tiny_run`).
"""

import fcntl
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time

import pytest

from tests.sandbox import Outcome, run_isolated
from tests.training.children import loaded, refused, tiny_run

DAMAGE = ("truncated", "zeroed", "bit_flipped", "bad_index", "no_data", "swapped", "bad_state",
          "foreign_file", "deep_state", "wrong_shape", "bad_schedule", "fifo_data")  # fmt: skip

_CHILD = textwrap.dedent(
    """
    import json, logging, os, pathlib, shutil, sys
    import keras, numpy as np, tensorflow as tf
    from alexnet_keras.training.checkpoints import Checkpoints

    root = pathlib.Path(sys.argv[1])
    lines = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    logging.getLogger("alexnet_keras").addHandler(handler)

    def make(folder, units=3):
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(units, name="fc")])
        opt = keras.optimizers.SGD(0.1, momentum=0.9)
        opt.build(model.trainable_variables)
        return model, Checkpoints(tf.distribute.get_strategy(), model, opt, folder, 3)

    def state(step):
        return {"epoch": 0, "step_in_epoch": step, "global_step": step,
                "schedule": {"scale": 1.0, "best": None, "bad_epochs": 0}}

    def flip(path, at):
        data = bytearray(path.read_bytes()); data[at] ^= 0x10; path.write_bytes(bytes(data))

    def damage(kind, d):
        data, index = d / "ckpt-3.data-00000-of-00001", d / "ckpt-3.index"
        st = d / "ckpt-3.state.json"
        if kind == "truncated": data.write_bytes(data.read_bytes()[:10])
        if kind == "zeroed": data.write_bytes(bytes(data.stat().st_size))
        if kind == "bit_flipped": flip(data, 5)
        if kind == "bad_index": flip(index, index.stat().st_size // 2)
        if kind == "no_data": data.unlink()
        if kind == "swapped":  # a consistent pair, but another save's
            shutil.copy(d / "ckpt-2.data-00000-of-00001", data)
            shutil.copy(d / "ckpt-2.index", index)
        if kind == "bad_state": st.write_text("{not json")
        if kind == "foreign_file":
            doc = json.loads(st.read_text()); doc["files"]["../../etc/passwd"] = {}
            st.write_text(json.dumps(doc))
        if kind == "deep_state": st.write_text("[" * 50000)
        if kind == "bad_schedule":
            doc = json.loads(st.read_text()); doc["state"]["schedule"]["scale"] = "x"
            st.write_text(json.dumps(doc))
        if kind == "fifo_data": data.unlink(); os.mkfifo(data)
        if kind == "wrong_shape":  # the newest save is of another model
            _, other = make(d.parent / "other", units=4)
            for step in (1, 2, 3): other.save(state(step))
            for f in (d.parent / "other" / "checkpoints").glob("ckpt-3.*"): shutil.copy(f, d)

    results = {}
    for kind in sys.argv[2].split(","):
        folder = root / kind
        model, ckpts = make(folder)
        kernels = {}
        for step in (1, 2, 3):
            model.layers[0].kernel.assign(np.full((2, 3), step, "float32"))
            kernels[step] = model.layers[0].kernel.numpy()
            ckpts.save(state(step))
        damage(kind, ckpts.folder)
        lines.clear()
        model, ckpts = make(folder)
        got = ckpts.restore()
        results[kind] = {"step": got["global_step"], "lines": list(lines),
                         "kernel_ok": bool((model.layers[0].kernel.numpy() == kernels[2]).all()),
                         "left": sorted(p.name for p in ckpts.folder.glob("ckpt-3*"))}
    # None intact: every save damaged.
    model, ckpts = make(root / "all")
    for step in (1, 2): ckpts.save(state(step))
    for p in ckpts.folder.glob("*.data-*"): p.write_bytes(b"x")
    try:
        make(root / "all")[1].restore()
    except ValueError as e:
        results["none_intact"] = str(e)
    print(json.dumps(results))
    """
)


def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(tmp_path):
    code = _CHILD.replace("sys.argv[1]", repr(str(tmp_path)))
    code = code.replace("sys.argv[2]", repr(",".join(DAMAGE)))
    outcome = loaded(run_isolated(code=code, timeout=120, rss_mb=2000))
    results = json.loads(outcome.stdout.strip().splitlines()[-1])
    for kind in DAMAGE:
        got = results[kind]
        assert got["step"] == 2 and got["kernel_ok"], (kind, got)
        assert len(got["lines"]) == 1, (kind, got)
        line = got["lines"][0]
        assert "ckpt-3" in line and "resuming from ckpt-2" in line and "\n" not in line, line
        assert got["left"] == [], (kind, got)  # the damaged save is gone once replaced
    message = results["none_intact"]
    assert "no intact checkpoint" in message and "ckpt-2" in message and "ckpt-1" in message
    assert "ckpt-2.data-00000-of-00001" in message and "\n" not in message


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A tiny run of 1 epoch of 2 steps, a checkpoint at each step and at the epoch's end."""
    out = tmp_path_factory.mktemp("run") / "m"
    args = tiny_run(out, "--epochs", "1", "--steps-per-epoch", "2", "--checkpoint-every", "1")
    loaded(run_isolated(cli=args, timeout=120, rss_mb=2000))
    return out, args


def _states(folder):
    return {int(p.name.split("-")[1].split(".")[0]): json.loads(p.read_text())["state"]
            for p in folder.glob("ckpt-*.state.json")}  # fmt: skip


def test_each_save_gets_a_fresh_number(finished_run):
    out, _ = finished_run
    states = _states(out / "checkpoints")
    # Step 2 is the epoch's last step: its step save and the epoch-end save share
    # the global step, and TensorFlow rewrote a listed checkpoint; now they are 2 and 3.
    assert sorted(states) == [1, 2, 3]
    assert [states[n]["global_step"] for n in (1, 2, 3)] == [1, 2, 2]
    assert (states[2]["epoch"], states[3]["epoch"]) == (0, 1)
    index = (out / "checkpoints" / "checkpoint").read_text()
    assert 'model_checkpoint_path: "ckpt-3"' in index


def test_resume_falls_back_and_cleans_an_interrupted_save(finished_run, tmp_path):
    out = tmp_path / "m"
    shutil.copytree(finished_run[0], out)
    args = [out if a == finished_run[0] else a for a in finished_run[1]]
    ckpts = out / "checkpoints"
    data = ckpts / "ckpt-3.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])  # truncated
    # What a kill leaves: TensorFlow's temp folder, a save without its state, our temps.
    (ckpts / "ckpt-4_temp").mkdir()
    (ckpts / "ckpt-4_temp" / "part-00000-of-00001.data-00000-of-00001.tempstate1").write_bytes(
        bytes(1000)
    )
    (ckpts / "ckpt-4.index").write_bytes(b"partial")
    (ckpts / "ckpt-5.state.json.tmp").write_text("{")
    (out / ".model.weights.h5.abc123.weights.h5").write_bytes(bytes(1000))
    (out / "config.yaml.tmp").write_text("half")
    outcome = loaded(run_isolated(cli=[*args, "--epochs", "2"], timeout=120, rss_mb=2000))
    damaged = [line for line in outcome.stderr.splitlines() if "damaged" in line]
    assert len(damaged) == 1 and "ckpt-3" in damaged[0] and "resuming from ckpt-2" in damaged[0]
    assert "resuming from" in outcome.stderr and "done: val top-1" in outcome.stdout
    names = {p.name for p in ckpts.iterdir()} | {p.name for p in out.iterdir()}
    assert not [n for n in names if "temp" in n or n.endswith(".tmp") or n.startswith(".model")]
    rows = (out / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows] == ["epoch", "1", "2"]  # epoch 1 once


def test_no_intact_checkpoint_is_exit_2_naming_the_files(finished_run, tmp_path):
    out = tmp_path / "m"
    shutil.copytree(finished_run[0], out)
    args = [out if a == finished_run[0] else a for a in finished_run[1]]
    for path in (out / "checkpoints").glob("*.data-*"):
        path.write_bytes(bytes(path.stat().st_size))  # zeroed
    outcome = run_isolated(cli=[*args, "--epochs", "2"], timeout=120, rss_mb=2000)
    refused(outcome, "no intact checkpoint", "ckpt-3", "ckpt-2", "ckpt-1",
            "ckpt-3.data-00000-of-00001", after_log=True)  # fmt: skip


def test_a_second_trainer_is_refused_in_one_line(tmp_path):
    out = tmp_path / "m"
    out.mkdir()
    with open(out / ".lock", "w") as holder:  # what a running trainer holds
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        holder.write("4242\n")
        holder.flush()
        outcome = run_isolated(cli=tiny_run(out, "--epochs", "1"), timeout=60)
        refused(outcome, str(out), "another trainer (pid 4242) is running in this folder")
    assert not (out / "checkpoints").exists() and not (out / "config.yaml").exists()


def test_a_full_disk_is_one_line_with_the_space_needed(tmp_path):
    """RLIMIT_FSIZE stands in for a full disk: writes past it fail as on a full one."""
    out = tmp_path / "m"
    args = tiny_run(out, "--epochs", "1", "--steps-per-epoch", "2")
    outcome = run_isolated(cli=args, timeout=120, rss_mb=2000, max_file_bytes=500_000)
    refused(outcome, f"{out / 'checkpoints' / 'ckpt-1'}: cannot be written",
            "size limit", "it needs about 1 MB", "are free", code=1, after_log=True)  # fmt: skip
    assert [p.name for p in (out / "checkpoints").iterdir()] == []  # no partial save left


def _newest_save(folder):
    names = [p.name for p in folder.glob("ckpt-*.state.json")] if folder.is_dir() else []
    return max((int(n.split("-")[1].split(".")[0]) for n in names), default=0)


def _start(args):
    return subprocess.Popen([sys.executable, "-m", "alexnet_keras", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})  # fmt: skip


def _wait_for_a_save(proc, folder, timeout=120):
    deadline = time.monotonic() + timeout
    while _newest_save(folder) < 1:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
        time.sleep(0.02)


def _read_only(paths):
    """Makes folders read-only, for root too (`chattr +i`); returns the undo."""
    if os.geteuid() != 0:
        for path in paths:
            path.chmod(0o555)
        return lambda: [path.chmod(0o755) for path in paths]
    if shutil.which("chattr") is None:
        pytest.skip("needs chattr to make a folder read-only for root")
    for path in paths:
        if subprocess.run(["chattr", "+i", path], capture_output=True).returncode:
            pytest.skip("chattr +i is not permitted here")
    return lambda: [subprocess.run(["chattr", "-i", path]) for path in paths]


@pytest.mark.slow
def test_a_folder_that_turns_read_only_mid_run_is_one_line_then_resumes(tmp_path):
    out = tmp_path / "m"
    args = tiny_run(out, "--epochs", "1", "--steps-per-epoch", "60", "--checkpoint-every", "1")
    proc = _start(args)
    _wait_for_a_save(proc, out / "checkpoints")
    undo = _read_only([out, out / "checkpoints"])
    try:
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        undo()
    outcome = Outcome(proc.returncode, stdout, stderr, 0, False, False)
    refused(outcome, str(out / "checkpoints"), "cannot be written", "permission denied",
            "it needs about", code=1, after_log=True)  # fmt: skip
    resumed = loaded(run_isolated(cli=args, timeout=180, rss_mb=2000))
    assert "resuming from" in resumed.stderr and "done: val top-1" in resumed.stdout


@pytest.mark.slow
def test_a_second_real_trainer_is_refused_while_the_first_runs(tmp_path):
    out = tmp_path / "m"
    args = tiny_run(out, "--epochs", "1", "--steps-per-epoch", "40", "--checkpoint-every", "1")
    first = _start(args)
    try:
        _wait_for_a_save(first, out / "checkpoints")
        second = run_isolated(cli=args, timeout=60)
        refused(second, str(out), f"another trainer (pid {first.pid}) is running")
    finally:
        first.kill()
        first.communicate()
    # The kernel dropped the killed trainer's lock: a third run resumes at once.
    resumed = loaded(run_isolated(cli=args, timeout=180, rss_mb=2000))
    assert "resuming from" in resumed.stderr

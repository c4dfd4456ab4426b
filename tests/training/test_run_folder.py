"""The default run folder, and what a run leaves behind when its inputs are bad.

Without `--model-dir` a run trains in `runs/<dataset>-<run_id>`, a hash of the
config without the keys a resume may change: the same command run again
resumes, another learning rate gets its own folder. A refused input (a missing
TFDS set, missing weights, a URL for a folder, a bad `TF_CONFIG`) leaves no
folder at all, and neither does a run refused once its folder was made.
"""

import json
import re

import pytest
from click.testing import CliRunner

from alexnet_keras.cli import cli
from alexnet_keras.training import config as train_config
from alexnet_keras.training.run import run
from tests.sandbox import run_isolated
from tests.training.children import MINI, refused, tiny_run


def _without_model_dir(*extra, quick=("--epochs", "1", "--steps-per-epoch", "2")):
    args = [str(a) for a in tiny_run("unused", *quick, *extra)]
    i = args.index("--model-dir")
    return args[:i] + args[i + 2 :]


def _invoke(args):
    return CliRunner().invoke(cli, args, catch_exceptions=False)


def test_the_same_command_again_resumes_in_the_same_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = _invoke(_without_model_dir())
    assert first.exit_code == 0, first.output
    (folder,) = (tmp_path / "runs").iterdir()
    assert re.fullmatch(r"cifar10-mini-[0-9a-f]{8}", folder.name)
    assert f"weights runs/{folder.name}/model.weights.h5" in first.output
    # Each validation pass draws the one progress meter, with a total and an ETA.
    assert re.search(r"^validate: 8/8 img, [\d.]+ img/s, ETA 0s$", first.output, re.M)
    again = _invoke(_without_model_dir("--epochs", "2"))  # more epochs: still the same run
    assert again.exit_code == 0, again.output
    assert f"resuming from runs/{folder.name}/checkpoints/ckpt-" in again.output
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [folder.name]
    other = _invoke(_without_model_dir("--lr", "0.5"))
    assert other.exit_code == 0, other.output
    assert "resuming" not in other.output
    assert len(list((tmp_path / "runs").iterdir())) == 2


def test_the_folder_is_the_hash_of_what_may_not_change():
    base = train_config.resolve("finetune", {"dataset": "folder:/data/flowers/"})
    assert base.model_dir == f"runs/flowers-{train_config.run_id(base)}"
    same = train_config.resolve("finetune", {"dataset": "folder:/data/flowers/", "epochs": 30,
                                             "eval_steps": 0, "data_dir": "/x"})  # fmt: skip
    assert same.model_dir == base.model_dir
    for change in ({"lr": 0.01}, {"batch_size": 32}, {"seed": 1}, {"weights": "none"}):
        other = train_config.resolve("finetune", {"dataset": "folder:/data/flowers/", **change})
        assert other.model_dir != base.model_dir, change
    train = train_config.resolve("train", {"dataset": "folder:/data/flowers/"})
    assert train.model_dir != base.model_dir
    odd = train_config.resolve("train", {"dataset": "folder:/data/../"})
    assert re.fullmatch(r"runs/_-[0-9a-f]{8}|runs/data-[0-9a-f]{8}", odd.model_dir)


def test_run_returns_numbers(tmp_path):
    args = dict(zip(*[iter(_without_model_dir()[1:])] * 2, strict=True))
    options = {k[2:].replace("-", "_"): v for k, v in args.items()}
    for key in ("batch_size", "eval_steps", "seed", "epochs", "steps_per_epoch"):
        options[key] = int(options[key])
    config = train_config.resolve("train", {**options, "model_dir": str(tmp_path / "m")})
    result = run(config)
    m = result["metrics"]
    assert result["status"] == "finished" and result["signal"] is None
    assert type(m["epoch"]) is int and type(m["step"]) is int and m["epoch"] == 1
    for key in ("lr", "train_loss", "train_acc", "val_loss", "val_top1", "val_top5", "seconds"):
        assert type(m[key]) is float, key
    assert 0 <= m["val_top1"] <= m["val_top5"] <= 1


BAD_INPUTS = {
    "missing TFDS set": (["--dataset", "cifar10", "--data-dir", "{tmp}/nowhere"], {},
                         "cifar10"),
    "missing weights": (["--weights", "{tmp}/none.weights.h5"], {}, "none.weights.h5"),
    "gs:// model dir": (["--model-dir", "gs://bucket/run"], {}, "--model-dir gs://bucket/run"),
    "gs:// data dir": (["--dataset", "cifar10", "--data-dir", "gs://tfds-data/datasets"], {},
                       "--data-dir gs://tfds-data/datasets: a URL"),
    "bad TF_CONFIG": ([], {"TF_CONFIG": "{"}, "TF_CONFIG: not JSON"),
    "cluster with one-device": (["--strategy", "one-device"], {"TF_CONFIG": (
        '{"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, '
        '"task": {"type": "worker", "index": 1}}')}, "--strategy one-device trains on this"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_a_refused_input_leaves_nothing_behind(tmp_path, case):
    extra, env, message = BAD_INPUTS[case]
    work = tmp_path / "work"
    work.mkdir()
    args = ["finetune", "--dataset", f"folder:{MINI}", "--batch-size", "2",
            "--weights", "none", *[a.replace("{tmp}", str(tmp_path)) for a in extra]]  # fmt: skip
    # Offline: a TFDS set that is not prepared must not be downloaded here.
    outcome = run_isolated(cli=args, env={"ALEXNET_KERAS_OFFLINE": "1", **env}, cwd=work,
                           timeout=120)  # fmt: skip
    # A set that cannot be fetched now is a network failure (exit 1), as for weights.
    refused(outcome, message, code=1 if case == "missing TFDS set" else 2)
    assert list(work.iterdir()) == []  # no runs/, no ./gs:


def test_a_run_refused_after_its_folder_was_made_removes_it(tmp_path):
    """200 images make no batch of 512: the setup refuses once the folder exists."""
    work = tmp_path / "work"
    work.mkdir()
    too_big = _without_model_dir("--batch-size", "512", quick=())
    outcome = run_isolated(cli=too_big, cwd=work, timeout=120)
    refused(outcome, "make no batch of 512", after_log=True)
    assert list(work.iterdir()) == []


@pytest.mark.slow
def test_a_folder_the_user_made_is_kept_with_its_lock(tmp_path):
    kept = tmp_path / "mine"
    kept.mkdir()
    too_big = _without_model_dir("--batch-size", "512", "--model-dir", kept, quick=())
    refused(run_isolated(cli=too_big, cwd=tmp_path, timeout=120), "make no batch of 512",
            after_log=True)  # fmt: skip
    assert [p.name for p in kept.iterdir()] == [".lock"]


def test_auto_under_a_tf_config_cluster_is_a_multi_worker_run(tmp_path):
    """It waits for its peer (which never comes), as multi-worker does; a standalone run
    would have trained."""
    from tests.loopback import closed_port

    own, peer = closed_port(), closed_port()
    tf_config = json.dumps({"cluster": {"worker": [f"127.0.0.1:{own}", f"127.0.0.1:{peer}"]},
                            "task": {"type": "worker", "index": 0}})  # fmt: skip
    outcome = run_isolated(
        cli=[*_without_model_dir(), "--strategy", "auto"], cwd=tmp_path, timeout=120,
        env={"TF_CONFIG": tf_config, "ALEXNET_KERAS_PEER_WAIT": "1"},
    )  # fmt: skip
    refused(outcome, "worker 1", f"127.0.0.1:{peer}", "after 1 s", code=1)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "cluster, strategy, expected",
    [
        ({"worker": ["a:1", "b:1"]}, "auto", "multi-worker"),
        ({"chief": ["a:1"], "worker": ["b:1"]}, "auto", "multi-worker"),
        ({"worker": ["a:1"]}, "auto", "auto"),  # one task: a standalone run is the cluster
        ({"worker": ["a:1"], "evaluator": ["e:1"]}, "auto", "auto"),
        ({"worker": ["a:1", "b:1"]}, "multi-worker", "multi-worker"),
        ({"worker": ["a:1", "b:1"]}, "mirrored", "TF_CONFIG: names a cluster of 2 tasks"),
        ({"worker": ["a:1", "b:1"]}, "one-device", "--strategy one-device trains on this"),
    ],
)
def test_the_strategy_a_tf_config_cluster_gets(cluster, strategy, expected):
    from alexnet_keras.training.strategies import pick_strategy

    env = {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}})}
    if expected.startswith(("TF_CONFIG", "--")):
        with pytest.raises(ValueError, match=re.escape(expected)):
            pick_strategy(strategy, env)
    else:
        assert pick_strategy(strategy, env) == expected
    assert pick_strategy(strategy, {}) == strategy  # no TF_CONFIG: as given
    with pytest.raises(ValueError, match="TF_CONFIG: not JSON"):
        pick_strategy(strategy, {"TF_CONFIG": "{"})


def test_a_folder_another_trainer_locked_meanwhile_keeps_its_lock(tmp_path):
    """Two trainers make the same new folder: the one the lock refuses removes nothing."""
    import fcntl
    import os

    from alexnet_keras.training import run as run_module

    out = tmp_path / "runs" / "x"
    out.mkdir(parents=True)
    fd = os.open(out / ".lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, b"4242\n")
        with pytest.raises(ValueError, match=r"another trainer \(pid 4242\)"):
            with run_module._new_folder(out, ".lock"):
                pass
        assert (out / ".lock").exists()
    finally:
        os.close(fd)
    with pytest.raises(KeyError):  # unlocked: a failure before config.yaml removes it all
        with run_module._new_folder(tmp_path / "new" / "run", ".lock"):
            raise KeyError
    assert not (tmp_path / "new").exists()


def test_a_folder_spelt_another_way_gets_the_same_run_folder():
    """`folder:x/` and `folder:./x` are `folder:x`: the same command resumes however it is typed."""
    folders = {
        train_config.resolve("finetune", {"dataset": spec}).model_dir
        for spec in ("folder:data/x", "folder:data/x/", "folder:./data/x", "folder:data//x/")
    }
    assert len(folders) == 1, folders
    assert (
        train_config.resolve("finetune", {"dataset": "folder:data/x/"}).dataset == "folder:data/x"
    )
    other = train_config.resolve("finetune", {"dataset": "folder:data/y"}).model_dir
    assert other not in folders

"""Bad input to finetune / train / evaluate: exit code 2 and one clear line."""

import shutil

import pytest
from click.testing import CliRunner

from alexnet_keras.cli import cli
from tests.conftest import SHARED, require
from tests.training.test_trainer import QUICK

MINI = SHARED / "data" / "cifar10-mini"


def fails(args, *fragments):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[-1], lines[-1]
    return lines[-1]


def test_unknown_dataset(tmp_path):
    fails(["finetune", "--dataset", "no_such_set", "--weights", "none",
           "--model-dir", str(tmp_path)], "no_such_set")  # fmt: skip


def test_missing_data_dir(tmp_path):
    """Not prepared there, and offline: one line naming the archive and the manual dir, exit 1."""
    result = CliRunner().invoke(cli, ["finetune", "--offline", "--dataset", "cifar10", "--data-dir",
                                      str(tmp_path / "nope"), "--weights", "none", "--model-dir",
                                      str(tmp_path / "m")])  # fmt: skip
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "cifar-10-binary.tar.gz" in lines[0] and str(tmp_path / "nope" / "downloads" / "manual")
    assert not (tmp_path / "m").exists()


def test_empty_folder_and_one_class_folder(tmp_path):
    (tmp_path / "empty" / "train" / "a").mkdir(parents=True)
    fails(["train", "--dataset", f"folder:{tmp_path / 'empty'}", "--model-dir",
           str(tmp_path / "m1")], "empty")  # fmt: skip
    one = tmp_path / "one" / "train" / "cat"
    one.mkdir(parents=True)
    shutil.copy(next((require(MINI) / "train" / "cat").iterdir()), one / "x.jpg")
    fails(["train", "--dataset", f"folder:{tmp_path / 'one'}", "--model-dir",
           str(tmp_path / "m2")], "one class")  # fmt: skip


def test_input_size_200(tmp_path):
    fails(["finetune", "--dataset", "cifar10", "--input-size", "200", "--weights", "none",
           "--model-dir", str(tmp_path)], "224..227", "200")  # fmt: skip


def test_unconverted_default_weights_offline_say_how_to_get_them(tmp_path, monkeypatch):
    """The default release is fetched like any other (tests/test_pretrained.py); offline, exit 1."""
    from tests.loopback import closed_port

    monkeypatch.setenv("ALEXNET_KERAS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ALEXNET_KERAS_MIRROR", f"http://127.0.0.1:{closed_port()}/")
    args = ["finetune", "--dataset", f"folder:{require(MINI)}", "--model-dir", str(tmp_path / "m")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output
    line = result.stderr.strip().splitlines()[-1]
    assert "bvlc_alexnet is not in the cache" in line
    assert "alexnet-keras convert bvlc_alexnet.caffemodel" in line


def test_cache_features_needs_a_frozen_backbone(tmp_path, imagenet_weights):  # noqa: F811
    args = ["finetune", "--dataset", f"folder:{require(MINI)}", "--weights", str(imagenet_weights),
            "--cache-features", "--model-dir", str(tmp_path / "m")]  # fmt: skip
    fails(args, "--trainable-from fc8")


def test_resuming_with_an_incompatible_config(tmp_path, imagenet_weights):  # noqa: F811
    out = tmp_path / "run"
    args = ["finetune", "--dataset", f"folder:{require(MINI)}", "--weights", str(imagenet_weights),
            "--model-dir", str(out), *QUICK]  # fmt: skip
    assert CliRunner().invoke(cli, args).exit_code == 0
    changed = [a if a != "4" else "8" for a in args]  # --batch-size 4 -> 8
    fails(changed, str(out), "batch_size: 4 -> 8")


def _corrupt_folder(tmp_path):
    root = tmp_path / "data"
    for split in ("train", "test"):
        for cls in ("cat", "dog"):
            src = require(MINI) / split / cls
            shutil.copytree(src, root / split / cls)
    bad = root / "train" / "cat"
    good = next(bad.iterdir()).read_bytes()
    (bad / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (bad / "text.jpg").write_text("not an image")
    (bad / "empty.jpg").write_bytes(b"")
    return root


# Slow set: tests/test_hostile_folders.py skips and counts bad files through the same listing.
@pytest.mark.slow
def test_corrupt_images_are_skipped_and_counted(tmp_path, imagenet_weights):  # noqa: F811
    root = _corrupt_folder(tmp_path)
    result = CliRunner().invoke(cli, ["finetune", "--dataset", f"folder:{root}", "--weights",
                                      str(imagenet_weights), "--model-dir", str(tmp_path / "m"),
                                      *QUICK])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "skipped 3" in result.output


def test_strict_data_makes_a_corrupt_image_an_error(tmp_path, imagenet_weights):  # noqa: F811
    root = _corrupt_folder(tmp_path)
    line = fails(["finetune", "--dataset", f"folder:{root}", "--weights", str(imagenet_weights),
                  "--strict-data", "--model-dir", str(tmp_path / "m"), *QUICK])  # fmt: skip
    assert any(name in line for name in ("truncated.jpg", "text.jpg", "empty.jpg"))


def test_evaluate_with_weights_for_another_class_count(tmp_path, imagenet_weights):  # noqa: F811
    fails(["evaluate", "--weights", str(imagenet_weights), "--dataset", f"folder:{require(MINI)}"],
          "1000 classes", "10")  # fmt: skip


def test_a_new_head_that_the_config_freezes(tmp_path, imagenet_weights):  # noqa: F811
    config = tmp_path / "c.yaml"
    config.write_text("lr_mults:\n  fc8: 0\n")
    fails(["finetune", "--dataset", f"folder:{require(MINI)}", "--weights", str(imagenet_weights),
           "--config", str(config), "--model-dir", str(tmp_path / "m"), *QUICK],
          "1000 classes", "has 10", "must train")  # fmt: skip


def test_a_diverging_run_stops_with_exit_1_and_says_why(tmp_path):
    result = CliRunner().invoke(cli, ["finetune", "--dataset", f"folder:{require(MINI)}",
                                      "--weights", "none", "--lr", "1e6", "--model-dir",
                                      str(tmp_path / "m"), "--epochs", "1", "--steps-per-epoch",
                                      "4", "--batch-size", "4", "--eval-steps", "1"])  # fmt: skip
    assert result.exit_code == 1, result.output
    line = result.stderr.strip().splitlines()[-1]
    assert "diverged at step" in line and "lower --lr" in line
    assert not (tmp_path / "m" / "model.weights.h5").exists()


def test_offline_with_neither_the_set_nor_the_weights_names_both(tmp_path, monkeypatch):
    """A new user offline learns everything to fetch in one run: the archive and the weights."""
    monkeypatch.setenv("ALEXNET_KERAS_HOME", str(tmp_path / "cache"))
    result = CliRunner().invoke(
        cli,
        [
            "finetune",
            "--offline",
            "--dataset",
            "cifar10",
            "--data-dir",
            str(tmp_path / "tfds"),
            "--model-dir",
            str(tmp_path / "m"),
        ],
    )
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "cifar-10-binary.tar.gz" in lines[0] and "Also: bvlc_alexnet" in lines[0]
    assert str(tmp_path / "cache" / "downloads" / "bvlc_alexnet.caffemodel") in lines[0]
    assert not (tmp_path / "m").exists()

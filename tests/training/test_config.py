"""The trainer's configuration, schedules and per-variable factors (no training here)."""

import math

import pytest

from alexnet_keras.training import config_file
from alexnet_keras.training import config as train_config
from alexnet_keras.training.schedules import Schedule


def test_train_defaults_are_the_papers_recipe():
    c = train_config.resolve("train", {"dataset": "imagenet2012"})
    assert (c["batch_size"], c["lr"], c["momentum"], c["weight_decay"]) == (128, 0.01, 0.9, 5e-4)
    assert (c["schedule"], c["epochs"], c["weights"]) == ("plateau", 90, None)


def test_config_file_then_command_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("# a comment\ndataset: cifar10\nepochs: 3\nlr_mults:\n  fc7: 2\nlr: 0.05\n")
    c = train_config.resolve("finetune", {"lr": 0.002, "epochs": None}, path)
    assert (c["dataset"], c["epochs"], c["lr"], c["lr_mults"]) == ("cifar10", 3, 0.002, {"fc7": 2})


def test_written_config_is_real_yaml_and_reads_back(tmp_path):
    yaml = pytest.importorskip("yaml")
    c = train_config.resolve("finetune", {"dataset": "folder:/data/x y", "weights": "none"})
    text = config_file.dump(c, header="resolved")
    (tmp_path / "c.yaml").write_text(text)
    assert yaml.safe_load(text) == c == config_file.load(tmp_path / "c.yaml")


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"input_size": 200}, "224..227"),
        ({"schedule": "exp"}, "schedule"),
        ({"batch_size": 0}, "batch_size"),
        ({"dataset": None}, "--dataset"),
    ],
)
def test_bad_values(overrides, message):
    with pytest.raises(ValueError, match=message):
        train_config.resolve("finetune", {"dataset": "cifar10", **overrides})


def test_unknown_key_in_a_config_file(tmp_path):
    (tmp_path / "c.yaml").write_text("dataset: cifar10\nlearning_rate: 0.1\n")
    with pytest.raises(ValueError, match="unknown keys learning_rate"):
        train_config.resolve("finetune", {}, tmp_path / "c.yaml")


def test_resume_names_what_differs():
    a = train_config.resolve("finetune", {"dataset": "cifar10", "model_dir": "m"})
    b = dict(a, batch_size=32, epochs=20)
    with pytest.raises(ValueError, match=r"batch_size: 64 -> 32") as e:
        train_config.check_resume(a, b, "m")
    assert "epochs" not in str(e.value)  # more epochs is a normal resume
    train_config.check_resume(a, dict(a, epochs=20), "m")


def _schedule(**kw):
    c = train_config.resolve("train", {"dataset": "x", **kw})
    return Schedule(c, steps_per_epoch=10)


def test_schedules():
    step = _schedule(schedule="step", step_epochs=2, lr=0.1)
    assert [round(step(s), 6) for s in (0, 19, 20, 40)] == [0.1, 0.1, 0.01, 0.001]
    cos = _schedule(schedule="cosine", epochs=4, lr=1.0)
    assert cos(0) == 1.0 and math.isclose(cos(20), 0.5) and cos(40) < 1e-12
    warm = _schedule(schedule="constant", warmup_epochs=1, lr=1.0)
    assert math.isclose(warm(0), 0.1) and math.isclose(warm(9), 1.0) and warm(50) == 1.0


def test_plateau_divides_by_ten_and_its_state_round_trips():
    s = _schedule(schedule="plateau", lr=0.01, plateau_patience=1)
    for acc in (0.1, 0.2, 0.2):
        s.end_epoch(acc)
    assert math.isclose(s(0), 0.001)
    other = _schedule(schedule="plateau", lr=0.01)
    other.load(s.state())
    assert other(0) == s(0)

"""The trainer's configuration, schedules and per-variable factors (no training here)."""

import dataclasses
import math

import pytest

from alexnet_keras.training import chm_data, config_file
from alexnet_keras.training import config as train_config
from alexnet_keras.training.schedules import Schedule


def test_train_defaults_are_the_papers_recipe():
    c = train_config.resolve("train", {"dataset": "imagenet2012"})
    assert (c.batch_size, c.lr, c.momentum, c.weight_decay) == (128, 0.01, 0.9, 5e-4)
    assert (c.schedule, c.epochs, c.weights) == ("plateau", 90, None)


def test_config_file_then_command_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("# a comment\ndataset: cifar10\nepochs: 3\nlr_mults:\n  fc7: 2\nlr: 0.05\n")
    c = train_config.resolve("finetune", {"lr": 0.002, "epochs": None}, path)
    assert (c.dataset, c.epochs, c.lr, c.lr_mults) == ("cifar10", 3, 0.002, {"fc7": 2})


def test_written_config_is_real_yaml_and_reads_back(tmp_path):
    yaml = pytest.importorskip("yaml")
    c = train_config.resolve("finetune", {"dataset": "folder:/data/x y", "weights": "none"})
    text = config_file.dump(c.as_dict(), header="resolved")
    (tmp_path / "c.yaml").write_text(text)
    assert yaml.safe_load(text) == c.as_dict() == config_file.load(tmp_path / "c.yaml")


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
    b = dataclasses.replace(a, batch_size=32, epochs=20)
    with pytest.raises(ValueError, match=r"batch_size: 64 -> 32") as e:
        train_config.check_resume(a.as_dict(), b, "m")
    assert "epochs" not in str(e.value)  # more epochs is a normal resume
    train_config.check_resume(a.as_dict(), dataclasses.replace(a, epochs=20), "m")


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


# What `finetune --dataset folder:/data/x --model-dir runs/m` wrote as config.yaml before the
# config became a dataclass (plus --config lr_mults and milestones), byte for byte: a run made
# then must still resume, and a run made now must write the same file.
OLD_FINETUNE_YAML = """\
# alexnet-keras finetune: resolved
dataset: folder:/data/x
data_dir: null
weights: bvlc_alexnet
variant: null
input_size: null
epochs: 10
batch_size: 64
lr: 0.001
momentum: 0.9
weight_decay: 0.0005
decay_biases: false
bias_lr_mult: 1.0
head_lr_mult: 10.0
lr_mults:
  fc7: 2
schedule: step
step_epochs: 4
gamma: 0.1
plateau_patience: 1
warmup_epochs: 0
freeze_backbone: false
trainable_from: null
mixed_precision: null
model_dir: runs/m
checkpoint_every: 500
max_to_keep: 3
seed: 0
strategy: auto
cpu_devices: 1
steps_per_epoch: null
eval_steps: null
cache_features: false
feature_layer: fc7
cache_flip: true
strict_data: false
holdout: 0.1
pca_std: 0.1
ten_crop: false
log_every: 20
milestones: [3, 5]
chm_layers: null
chm_params: null
command: finetune
"""
OLD_TRAIN_DEFAULTS = {"epochs": 90, "batch_size": 128, "lr": 0.01, "head_lr_mult": 1.0,
                      "lr_mults": {}, "schedule": "plateau", "step_epochs": 30, "weights": None,
                      "milestones": []}  # fmt: skip


def test_config_yaml_is_the_one_written_before_and_an_old_run_resumes(tmp_path):
    (tmp_path / "old.yaml").write_text(OLD_FINETUNE_YAML)
    overrides = {"dataset": "folder:/data/x", "model_dir": "runs/m", "lr_mults": {"fc7": 2},
                 "milestones": [3, 5]}  # fmt: skip
    c = train_config.resolve("finetune", overrides)
    assert config_file.dump(c.as_dict(), header="alexnet-keras finetune: resolved") == (
        OLD_FINETUNE_YAML
    )
    train_config.check_resume(config_file.load(tmp_path / "old.yaml"), c, "runs/m")
    train = train_config.resolve("train", {"dataset": "x", "model_dir": "m"}).as_dict()
    assert {k: train[k] for k in OLD_TRAIN_DEFAULTS} == OLD_TRAIN_DEFAULTS
    assert list(train) == list(config_file.load(tmp_path / "old.yaml"))


def test_the_config_is_frozen_and_replace_validates():
    c = train_config.resolve("finetune", {"dataset": "cifar10", "model_dir": "m"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.lr = 0.1
    with pytest.raises(TypeError):
        c.lr_mults["fc8"] = 0  # a read-only view
    with pytest.raises(ValueError, match=r"`batch_size` must be a positive integer. Received: 0"):
        dataclasses.replace(c, batch_size=0)
    assert dataclasses.replace(c, epochs=20).epochs == 20 and c.epochs == 10


def test_each_commands_defaults():
    finetune, train = train_config.defaults("finetune"), train_config.defaults("train")
    assert (finetune["lr"], finetune["weights"], finetune["head_lr_mult"]) == (
        0.001,
        "bvlc_alexnet",
        10.0,
    )
    assert (train["lr"], train["epochs"], train["weights"], train["schedule"]) == (
        0.01,
        90,
        None,
        "plateau",
    )
    resolved = train_config.resolve("finetune", {"dataset": "x", "model_dir": "m"}).as_dict()
    unset = set(chm_data.OPTIONS)  # a cfg run's provider options: in config.yaml when set
    assert resolved == {k: v for k, v in {**finetune, "dataset": "x", "model_dir": "m"}.items()
                        if k not in unset}  # fmt: skip

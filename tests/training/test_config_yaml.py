"""`--config FILE.yaml` is YAML as PyYAML reads it; `config.yaml` reads back as written."""

import pytest
import yaml

from alexnet_keras.training import config as train_config
from alexnet_keras.training import config_file


def _resolve(tmp_path, text, **given):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return train_config.resolve("finetune", {"model_dir": "m", **given}, path)


@pytest.mark.parametrize(
    "word, frozen",
    [("no", False), ("No", False), ("off", False), ("false", False),
     ("yes", True), ("on", True), ("True", True)],
)  # fmt: skip
def test_yaml_1_1_booleans_as_pyyaml_reads_them(tmp_path, word, frozen):
    c = _resolve(tmp_path, f"freeze_backbone: {word}\n", dataset="cifar10")
    assert c.freeze_backbone is frozen
    assert c.trainable_from == ("fc6" if frozen else None)  # `no` does not freeze


def test_y_and_n_are_strings_that_a_boolean_key_refuses(tmp_path):
    with pytest.raises(ValueError) as e:
        _resolve(tmp_path, "freeze_backbone: n\n", dataset="cifar10")
    assert str(e.value) == f"{tmp_path / 'c.yaml'}: `freeze_backbone` must be true or false. " \
                           "Received: 'n'"  # fmt: skip


def test_a_quoted_hash_is_kept_and_a_comment_is_not(tmp_path):
    c = _resolve(tmp_path, "dataset: 'folder:/data/a #1'  # the first set\nweights: \"x#y\"\n")
    assert (c.dataset, c.weights) == ("folder:/data/a #1", "x#y")


def test_lists_nested_keys_and_floats_behave_as_in_yaml(tmp_path):
    text = ("milestones:\n  - 3\n  - 5\nlr_mults: {fc7: 2, fc8: 10.5}\nlr: 1e-3\n"
            "weight_decay: 5.0e-4\nepochs: 0x10\n")  # fmt: skip
    c = _resolve(tmp_path, text, dataset="cifar10")
    assert c.milestones == (3, 5) and dict(c.lr_mults) == {"fc7": 2, "fc8": 10.5}
    assert (c.lr, c.weight_decay, c.epochs) == (0.001, 0.0005, 16)


@pytest.mark.parametrize(
    "text, message",
    [
        ("- epochs: 3\n", "must be a mapping of keys to values. Received: a list"),
        ("just words\n", "must be a mapping of keys to values. Received: a str"),
        ("epochs: [1\n", "not YAML (line 2"),
        ("1: 2\n", "keys must be names. Received: 1"),
        ("lr: 0.1\nlr: [\n", "not YAML"),
        ("x: !!python/object/apply:os.system ['true']\n", "not YAML"),
        ("lr: '0.1'\n", "`lr` must be a non-negative finite number. Received: '0.1'"),
        ("epochs: 2.5\n", "`epochs` must be a positive integer. Received: 2.5"),
        ("lr_mults: [fc8]\n", "`lr_mults` must map layer names"),
    ],
)
def test_bad_files_are_one_line_naming_the_file(tmp_path, text, message):
    with pytest.raises(ValueError) as e:
        _resolve(tmp_path, text, dataset="cifar10")
    assert str(e.value).startswith(str(tmp_path / "c.yaml")) and message in str(e.value)
    assert "\n" not in str(e.value)


def test_an_alias_bomb_is_refused_without_expanding_it(tmp_path):
    """The billion laughs, shortened: 6 levels of 10 aliases each are 10**6 strings."""
    lines = ['a0: &a0 "lol"']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 7)]
    with pytest.raises(ValueError, match=r"more than 10,000 values \(aliases expanded\)"):
        _resolve(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="nested more than 8 deep"):
        _resolve(tmp_path, "a: &x [*x]\n")  # a list that holds itself
    c = _resolve(tmp_path, "dataset: cifar10\nlr: &r 0.01\nmomentum: *r\n")
    assert (c.lr, c.momentum) == (0.01, 0.01)  # a plain alias is fine


def test_a_file_of_comments_only_changes_nothing(tmp_path):
    given = {"dataset": "cifar10", "model_dir": "m"}
    assert _resolve(tmp_path, "# nothing yet\n", **given) == train_config.resolve("finetune", given)


@pytest.mark.parametrize(
    "value", ["no", "yes", "null", "~", "1e5", "0x10", "12:30", "a #b", "2024-01-01", "", " x",
              "folder:/data/x y", "true", "3", "-", "[a]"],
)  # fmt: skip
def test_dump_writes_what_safe_load_reads_back(tmp_path, value):
    config = {"dataset": value, "lr": 1e-05, "gamma": 1e20, "milestones": [3, 5],
              "lr_mults": {"fc8": 10.0}, "empty": {}, "none": None, "flag": False}  # fmt: skip
    text = config_file.dump(config, header="resolved\n#2")
    assert yaml.safe_load(text) == config
    (tmp_path / "c.yaml").write_text(text)
    assert config_file.load(tmp_path / "c.yaml") == config

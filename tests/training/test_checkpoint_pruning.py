"""Checkpoint side files go with their checkpoints: after N saves, `max_to_keep` of each."""

import collections
import re

import pytest


@pytest.fixture
def checkpoints(tmp_path):
    import keras
    import tensorflow as tf

    from alexnet_keras.training.checkpoints import Checkpoints

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="fc8")])
    optimizer = keras.optimizers.SGD(0.1, momentum=0.9)
    optimizer.build(model.trainable_variables)
    return Checkpoints(tf.distribute.get_strategy(), model, optimizer, tmp_path, max_to_keep=2)


def _kinds(folder):
    """{save number: the kinds of its files}, and the files that belong to no save."""
    saves, other = collections.defaultdict(set), []
    for path in folder.iterdir():
        match = re.match(r"^ckpt-(\d+)\.(index|data-\d{5}-of-\d{5}|state\.json)$", path.name)
        if match:
            saves[int(match.group(1))].add(match.group(2).split("-")[0])
        else:
            other.append(path.name)
    return dict(saves), sorted(other)


def test_after_n_saves_only_max_to_keep_of_each_file_remain(checkpoints):
    state = {"epoch": 0, "step_in_epoch": 0, "global_step": 0,
             "schedule": {"scale": 1.0, "best": None, "bad_epochs": 0}}  # fmt: skip
    for step in range(1, 7):
        checkpoints.save({**state, "global_step": step})
        saves, other = _kinds(checkpoints.folder)
        kept = list(range(max(1, step - 1), step + 1))
        assert sorted(saves) == kept, (step, saves)
        assert all(kinds == {"index", "data", "state.json"} for kinds in saves.values()), saves
        assert other == ["checkpoint"], other
    index = (checkpoints.folder / "checkpoint").read_text()
    assert 'model_checkpoint_path: "ckpt-6"' in index and "ckpt-4" not in index
    assert checkpoints.restore()["global_step"] == 6

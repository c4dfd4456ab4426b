"""The validation pass: its default size, an evenly spread sample, and its progress line."""

import dataclasses

from alexnet_keras.training import config as train_config
from alexnet_keras.training.setups import eval_limit, eval_sample
from tests.conftest import require
from tests.training.children import MINI


def test_the_default_pass_is_2000_images_in_whole_batches_and_0_is_all():
    c = train_config.resolve("finetune", {"dataset": "cifar10", "model_dir": "m"})
    assert c.eval_steps is None and eval_limit(c) == 2048  # 32 batches of 64
    assert eval_limit(dataclasses.replace(c, batch_size=128)) == 2048
    assert eval_limit(dataclasses.replace(c, batch_size=3000)) == 3000
    assert eval_limit(dataclasses.replace(c, eval_steps=3)) == 192
    assert eval_limit(dataclasses.replace(c, eval_steps=0)) is None


def test_a_sorted_folder_is_sampled_over_every_class():
    from alexnet_keras.data import open_dataset

    splits, info = open_dataset(f"folder:{require(MINI)}")
    labels = [int(y) for _, y in splits["eval"]]
    assert labels == sorted(labels) and len(labels) == 100  # the first 20 are 2 classes
    sample = eval_sample(splits["eval"], 20)
    got = [int(y) for _, y in sample]
    assert len(sample) == len(got) == 20 and sorted(set(got)) == list(range(10))
    assert eval_sample(splits["eval"], None) is splits["eval"]
    assert eval_sample(splits["eval"], 500) is splits["eval"]
    assert len(list(eval_sample(splits["eval"], 30))) == len(eval_sample(splits["eval"], 30))

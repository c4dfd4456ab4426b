"""Every pipeline the package iterates ends in `prefetched`, and the trainer turns tf.data
autotuning off for any setup: no autotuning thread.

With that thread, deleting an epoch's iterator waited for its sleep (up to a minute); the
delete's time is measured in `benchmarks/bench_epoch_boundary.py`, not here.
"""

import pathlib
import re

import numpy as np
import pytest

from alexnet_keras.cuda_convnet.cifar_provider import MemoryProvider, load_split
from alexnet_keras.cuda_convnet.cropped_provider import CroppedProvider
from alexnet_keras.data import eval_pipeline, open_dataset, train_pipeline
from alexnet_keras.data.prefetch import prefetched
from tests.conftest import SHARED

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "alexnet_keras"
CIFAR_MINI = SHARED / "data" / "cifar10-mini"


@pytest.fixture(scope="module")
def splits():
    return open_dataset(f"folder:{CIFAR_MINI}")[0]


def autotuned(ds):
    return ds.options().autotune.enabled is not False


def test_prefetched_keeps_the_elements_and_turns_autotuning_off():
    import tensorflow as tf

    ds = tf.data.Dataset.range(10).map(lambda x: x * 3, num_parallel_calls=tf.data.AUTOTUNE)
    out = prefetched(ds.batch(4))
    assert [b.tolist() for b in out.as_numpy_iterator()] == [[0, 3, 6, 9], [12, 15, 18, 21],
                                                             [24, 27]]  # fmt: skip
    assert autotuned(ds) and not autotuned(out)


def test_the_image_pipelines_are_not_autotuned(splits):
    kw = {"input_size": 32, "batch_size": 4, "preprocessing": "bvlc", "resize": 36}
    assert not autotuned(train_pipeline(splits["train"], seed=0, epoch=0, **kw))
    assert not autotuned(eval_pipeline(splits["eval"], **kw))
    assert not autotuned(eval_pipeline(splits["eval"], ten_crop=True, **kw))


def test_the_cuda_convnet_providers_are_not_autotuned(splits):
    memory = MemoryProvider(splits, "cifar10-mini", image_size=32, batch_size=10)
    assert not autotuned(memory.train(epoch=1)) and not autotuned(memory.eval())
    rng = np.random.default_rng(0)
    arrays = [(rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), np.zeros(n, np.int32))
              for n in (20, 6)]  # fmt: skip
    for multiview in (False, True):
        cropped = CroppedProvider(None, "synthetic", arrays=arrays, image_size=32, crop=24,
                                  batch_size=5, multiview=multiview)  # fmt: skip
        assert not autotuned(cropped.train(epoch=0)) and not autotuned(cropped.eval())
    images, labels = load_split(splits["eval"], "cifar10-mini", 32)
    assert images.shape[1:] == (32, 32, 3) and len(images) == len(labels)


def test_no_pipeline_prefetches_around_it():
    # One home: a new pipeline that ends in its own prefetch(AUTOTUNE) gets the stall back.
    found = [f"{p.relative_to(PACKAGE.parent)}:{i}"
             for p in sorted(PACKAGE.rglob("*.py")) if p.name != "prefetch.py"
             for i, line in enumerate(p.read_text().splitlines(), 1)
             if re.search(r"\.prefetch\(", line)]  # fmt: skip
    assert found == []


def test_the_trainer_turns_autotuning_off_for_any_setup(tmp_path, monkeypatch):
    # A user's setup whose datasets are autotuned (no `prefetched` tail) gets it off too.
    import keras
    import tensorflow as tf

    from alexnet_keras.training import config as train_config
    from alexnet_keras.training import setups
    from alexnet_keras.training.trainer import Trainer

    data = tf.data.Dataset.from_tensor_slices((tf.zeros((8, 4)), tf.constant([0, 1] * 4)))
    data = data.map(lambda x, y: (x + 1, y), num_parallel_calls=tf.data.AUTOTUNE).batch(4)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="fc8")])
    config = train_config.resolve("train", {"dataset": "toy", "weights": "none",
                                            "model_dir": str(tmp_path)})  # fmt: skip
    setup = setups.Setup(model=model, factors=[(1.0, None), (1.0, None)],
                         make_train=lambda epoch, skip: data.skip(skip),
                         make_eval=lambda: data, steps=2)  # fmt: skip
    strategy = tf.distribute.get_strategy()
    trainer = Trainer(config, strategy, setup)
    seen = []
    distribute = strategy.experimental_distribute_dataset
    monkeypatch.setattr(strategy, "experimental_distribute_dataset",
                        lambda ds, *a, **k: seen.append(ds) or distribute(ds, *a, **k))  # fmt: skip
    batch = next(iter(trainer.distribute(setup.make_train(0, 0))))
    assert autotuned(data) and len(seen) == 1 and not autotuned(seen[0])
    assert float(trainer.train_step(batch, global_step=0)[2]) == 4.0

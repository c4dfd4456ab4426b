"""End-to-end training through the real CLI, on real data, with tiny step counts.

Full AlexNet at batch 4 for a couple of steps: enough to exercise the loop,
checkpoints, logs, the final weights file and `evaluate`, in seconds.
"""

import csv
import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

import alexnet_keras
from alexnet_keras.cli import cli
from alexnet_keras.weights import read_arrays
from tests.conftest import SHARED, load_script, require

MINI = SHARED / "data" / "cifar10-mini"
TFDS = SHARED / "data" / "tfds"
QUICK = ["--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "4", "--eval-steps", "2",
         "--checkpoint-every", "1", "--seed", "0"]  # fmt: skip


def invoke(args):
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    return result


def check_run_dir(model_dir, classes):
    assert (model_dir / "config.yaml").exists()
    assert list((model_dir / "checkpoints").glob("ckpt-*.index"))
    assert list((model_dir / "checkpoints").glob("ckpt-*.state.json"))
    assert list((model_dir / "tensorboard").glob("events.out.tfevents.*"))
    rows = list(csv.DictReader(open(model_dir / "metrics.csv")))
    assert rows and {"val_top1", "val_top5", "train_loss", "img_per_s"} <= set(rows[0])
    meta = alexnet_keras.weights.read_metadata(model_dir / "model.weights.h5")
    assert meta["classes"] == classes and len(meta["class_names"]) == classes
    model = alexnet_keras.AlexNet(weights=model_dir / "model.weights.h5")
    assert model.output_shape == (None, classes)
    return meta


def test_finetune_on_an_image_folder_then_evaluate(imagenet_weights, tmp_path):
    require(MINI)
    out = tmp_path / "run"
    result = invoke(["finetune", "--dataset", f"folder:{MINI}", "--weights", str(imagenet_weights),
                     "--model-dir", str(out), *QUICK])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "done: val top-1" in result.output
    meta = check_run_dir(out, 10)
    assert meta["class_names"][0] == "airplane" and meta["preprocessing"]["color_order"] == "BGR"
    # The backbone came from the file; fc8 is new (10 classes).
    trained, initial = read_arrays(out / "model.weights.h5"), read_arrays(imagenet_weights)
    assert trained["fc8"][0].shape == (4096, 10)
    assert not np.array_equal(trained["conv1"][0], initial["conv1"][0])  # it trained
    ev = invoke(["evaluate", "--weights", str(out / "model.weights.h5"), "--dataset",
                 f"folder:{MINI}", "--json"])  # fmt: skip
    assert ev.exit_code == 0, ev.output
    report = json.loads(ev.stdout)  # the progress line goes to stderr
    assert report["count"] == 100 and 0 <= report["top1"] <= report["top5"] <= 1
    assert len(report["per_class"]) == 10 and os.path.exists(report["confusion_matrix"])
    text = invoke(["evaluate", "--weights", str(out / "model.weights.h5"), "--dataset",
                   f"folder:{MINI}", "--ten-crop"]).output  # fmt: skip
    assert "top-1" in text and "airplane" in text and "ten crops" in text


def test_finetune_on_tfds_cifar10_with_a_frozen_backbone(imagenet_weights, tmp_path):
    require(TFDS)
    out = tmp_path / "run"
    result = invoke(["finetune", "--dataset", "cifar10", "--data-dir", str(TFDS), "--weights",
                     str(imagenet_weights), "--freeze-backbone", "--input-size", "224",
                     "--model-dir", str(out), *QUICK])  # fmt: skip
    assert result.exit_code == 0, result.output
    check_run_dir(out, 10)
    trained, initial = read_arrays(out / "model.weights.h5"), read_arrays(imagenet_weights)
    np.testing.assert_array_equal(trained["conv5"][0], initial["conv5"][0])  # frozen
    assert not np.array_equal(trained["fc6"][0], initial["fc6"][0])


# Slow set: `train` from scratch runs in test_run_folder and the 80sec cfg test;
# this is its 1000-class twin.
@pytest.mark.slow
def test_train_from_scratch_on_the_1000_class_imagenet_sample(imagenet_dir, tmp_path):
    out = tmp_path / "run"
    result = invoke(["train", "--dataset", f"folder:{imagenet_dir}", "--variant", "chm2012",
                     "--model-dir", str(out), *QUICK])  # fmt: skip
    assert result.exit_code == 0, result.output
    meta = check_run_dir(out, 1000)
    assert meta["variant"] == "chm2012" and meta["preprocessing"]["color_order"] == "RGB"


def test_cache_features_trains_the_head_on_cached_fc7(imagenet_weights, tmp_path):
    require(MINI)
    out = tmp_path / "run"
    args = ["finetune", "--dataset", f"folder:{MINI}", "--weights", str(imagenet_weights),
            "--trainable-from", "fc8", "--cache-features", "--model-dir", str(out),
            "--epochs", "2", "--batch-size", "16", "--seed", "0"]  # fmt: skip
    result = invoke(args)
    assert result.exit_code == 0, result.output
    check_run_dir(out, 10)
    (cache,) = (out / "features").iterdir()
    train = np.load(cache / "train.npy", mmap_mode="r")
    assert train.shape == (400, 4096)  # 200 images and their mirror images
    trained, initial = read_arrays(out / "model.weights.h5"), read_arrays(imagenet_weights)
    np.testing.assert_array_equal(trained["fc7"][0], initial["fc7"][0])
    # The head trained on cached features is the full model's fc8: the saved
    # model reproduces the features' logits.
    model = alexnet_keras.AlexNet(weights=out / "model.weights.h5", classifier_activation=None)
    assert model.get_layer("fc8").get_weights()[0].shape == (4096, 10)
    again = invoke(args)  # a second run reuses the cache (and resumes: nothing left to do)
    assert again.exit_code == 0 and "reusing cached features" in again.output


@pytest.mark.slow
def test_bf16_mixed_precision_run(imagenet_weights, tmp_path):
    require(MINI)
    out = tmp_path / "run"
    result = invoke(["finetune", "--dataset", f"folder:{MINI}", "--weights", str(imagenet_weights),
                     "--mixed-precision", "bf16", "--model-dir", str(out), *QUICK])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert np.isfinite(float(next(csv.DictReader(open(out / "metrics.csv")))["train_loss"]))
    import keras

    assert keras.mixed_precision.global_policy().name == "float32"  # restored


@pytest.mark.slow
def test_the_python_api_example_runs(tmp_path):
    require(TFDS)
    module = load_script("examples/finetune_cifar10.py")
    module.main(["--data-dir", str(TFDS), "--weights", "none", "--epochs", "1",
                 "--steps-per-epoch", "1", "--eval-steps", "1", "--batch-size", "4",
                 "--model-dir", str(tmp_path / "ex")])  # fmt: skip
    assert (tmp_path / "ex" / "model.weights.h5").exists()


# Slow set: the default set trains under `auto` on one CPU, which is the same one-device path.
@pytest.mark.slow
def test_one_device_strategy(imagenet_weights, tmp_path):
    require(MINI)
    out = tmp_path / "run"
    result = invoke(["finetune", "--dataset", f"folder:{MINI}", "--weights", str(imagenet_weights),
                     "--strategy", "one-device", "--model-dir", str(out), *QUICK])  # fmt: skip
    assert result.exit_code == 0, result.output
    check_run_dir(out, 10)

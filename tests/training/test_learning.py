"""Learning is real: on the full shared CIFAR-10, accuracy must beat chance (10 %) clearly.

Both runs are long on a 2-core CPU (marked slow); the closing notes give the
numbers and times measured:

- a frozen random-feature AlexNet (no pretrained weights exist on these
  machines): fc7 features of every image cached once, a linear fc8 head
  trained on them;
- a short from-scratch run of the whole network on CIFAR-10 upsampled to 224.
"""

import csv

import pytest
from click.testing import CliRunner

from alexnet_keras.cli import cli
from tests.conftest import SHARED, require

TFDS = SHARED / "data" / "tfds"


def final_metrics(model_dir):
    return list(csv.DictReader(open(model_dir / "metrics.csv")))[-1]


@pytest.mark.slow
def test_frozen_random_features_beat_chance_on_full_cifar10(tmp_path):
    require(TFDS)
    out = tmp_path / "probe"
    result = CliRunner().invoke(cli, [
        "finetune", "--dataset", "cifar10", "--data-dir", str(TFDS), "--weights", "none",
        "--trainable-from", "fc8", "--cache-features", "--no-cache-flip", "--input-size", "224",
        "--epochs", "10", "--batch-size", "256", "--lr", "0.001", "--head-lr-mult", "1",
        "--schedule", "cosine", "--model-dir", str(out),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    top1 = float(final_metrics(out)["val_top1"])
    print(f"\nfrozen random fc7 features, linear head, 10k CIFAR-10 test images: top-1 {top1:.4f}")
    assert top1 > 0.2


@pytest.mark.slow
@pytest.mark.parametrize("precision", [None, "auto"])
def test_short_from_scratch_run_beats_chance(tmp_path, precision):
    """`auto` is bf16 on a CPU with AVX-512 BF16 or AMX: it must learn as float32 does."""
    require(TFDS)
    out = tmp_path / "scratch"
    extra = ["--mixed-precision", precision] if precision else []
    result = CliRunner().invoke(cli, [
        "train", "--dataset", "cifar10", "--data-dir", str(TFDS), "--input-size", "224",
        "--epochs", "1", "--steps-per-epoch", "300", "--batch-size", "32", "--lr", "0.01",
        "--schedule", "constant", "--eval-steps", "32", "--model-dir", str(out), *extra,
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    top1 = float(final_metrics(out)["val_top1"])
    print(
        f"\nfrom scratch ({precision or 'float32'}), 300 steps of 32 at 224, 1,024 test "
        f"images: top-1 {top1:.4f}, {final_metrics(out)['seconds']} s"
    )
    assert top1 > 0.15

"""A cfg run on cuda-convnet's cropped provider: the options, the run, `evaluate`'s multiview.

`evaluate` is checked against numpy: the views of each test image (2011's
nine starts {0, b, 2b}^2 of `convdata.py` l.103-110 at 7f28479, no mirror;
2012's five starts and their mirrors of HEAD l.104-111), minus the centre of
the stored 32x32 mean (l.77), the saved net's softmax on each, their mean
(`worker.cu` l.152-162), its argmax.
"""

import csv
import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from alexnet_keras.cli import cli
from alexnet_keras.cuda_convnet.cfg_net import read_net
from alexnet_keras.cuda_convnet.cfg_weights import load_mirror
from alexnet_keras.cuda_convnet.cifar_provider import load_split
from alexnet_keras.data import open_dataset
from tests.conftest import SHARED, require

MINI = SHARED / "data" / "cifar10-mini"
CFG = SHARED / "data" / "chm-release" / "example-layers"


def train_args(model_dir, *extra, net="80sec"):
    return ["train", "--dataset", f"folder:{MINI}", "--chm-layers", str(CFG / f"layers-{net}.cfg"),
            "--chm-params", str(CFG / f"layer-params-{net}.cfg"), "--epochs", "1",
            "--steps-per-epoch", "2", "--batch-size", "20", "--model-dir", str(model_dir),
            *extra]  # fmt: skip


def numpy_multiview(weights, era):
    """`(top-1, nll)` of the saved net on MINI's test images, softmax averaged over the views."""
    model, meta = load_mirror(weights)
    mean = np.asarray(meta["mean"], np.float64)  # CHW 3x32x32, as batches.meta holds it
    b, inner = 4, 24
    centre = mean[:, b : b + inner, b : b + inner]
    splits, _ = open_dataset(f"folder:{MINI}")
    images, labels = load_split(splits["eval"], "mini", 32, 3)
    chw = images.transpose(0, 3, 1, 2).astype(np.float64)
    if era == "2011":
        starts = [(y, x) for y in (0, b, 2 * b) for x in (0, b, 2 * b)]
    else:
        starts = [(0, 0), (0, 2 * b), (b, b), (2 * b, 0), (2 * b, 2 * b)]
    pics = [chw[:, :, y : y + inner, x : x + inner] for y, x in starts]
    views = [p - centre for p in pics]
    if era == "2012":
        views += [p[:, :, :, ::-1] - centre for p in pics]
    probs = [model.predict(v.transpose(0, 2, 3, 1).astype(np.float32), verbose=0) for v in views]
    mean_probs = np.mean(np.asarray(probs, np.float64), axis=0)
    nll = -np.log(mean_probs[np.arange(len(labels)), labels]).mean()
    return float((mean_probs.argmax(-1) == labels).mean()), float(nll)


@pytest.mark.parametrize("era, views", [(None, 9), ("2012", 10)])
def test_a_cropped_run_records_its_provider_and_evaluate_uses_its_multiview(tmp_path, era, views):
    # layers-80sec is an r331/r333 file: the 2011 code's nine views unless told 2012.
    require(CFG)
    require(MINI)
    run = tmp_path / "r"
    semantics = ["--convnet-semantics", era] if era else []
    result = CliRunner().invoke(cli, train_args(run, "--chm-provider", "cifar-cropped",
                                                "--multiview", *semantics),
                                catch_exceptions=False)  # fmt: skip
    era = era or "2011"
    assert result.exit_code == 0, result.output
    assert "cuda-convnet cropped CIFAR provider (--chm-provider): random 24x24 crops of 32x32" in (
        result.output
    )
    assert f"validation on {views} views ({era} code), softmax averaged" in result.output
    assert "image size 24: --chm-provider cifar-cropped reads 24x24 crops" in result.output
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["chm_provider"] == "cifar-cropped" and saved["multiview"] is True
    weights = run / "model.weights.h5"
    model, meta = load_mirror(weights)
    assert model.input_shape == (None, 24, 24, 3) and np.asarray(meta["mean"]).shape == (3, 32, 32)
    out = CliRunner().invoke(cli, ["evaluate", "--weights", str(weights), "--dataset",
                                   f"folder:{MINI}", "--json"])  # fmt: skip
    assert out.exit_code == 0, out.output
    report = json.loads(out.output[out.output.index("{") :])
    assert report["views"] == f"{views} views of 24x24 ({era} cuda-convnet)"
    assert report["count"] == 100
    trained = next(csv.DictReader(open(run / "metrics.csv")))
    assert report["top1"] == pytest.approx(float(trained["val_top1"]), abs=1e-9)
    top1, nll = numpy_multiview(weights, era)
    assert report["top1"] == pytest.approx(top1, abs=1e-9)
    assert float(trained["val_loss"]) == pytest.approx(nll, rel=1e-5)  # the averaged softmax
    other, count = ("2012", 10) if era == "2011" else ("2011", 9)  # --multiview-era: the other set
    out = CliRunner().invoke(cli, ["evaluate", "--weights", str(weights), "--dataset",
                                   f"folder:{MINI}", "--json", "--multiview-era",
                                   other])  # fmt: skip
    report = json.loads(out.output[out.output.index("{") :])
    assert report["views"] == f"{count} views of 24x24 ({other} cuda-convnet)"
    assert report["top1"] == pytest.approx(numpy_multiview(weights, other)[0], abs=1e-9)


@pytest.mark.slow  # two runs; the one-run test above covers the provider
def test_a_later_phase_starts_from_an_earlier_runs_weights_and_mean(tmp_path):
    require(CFG)
    require(MINI)
    first = tmp_path / "phase1"
    args = train_args(first, "--chm-provider", "cifar-cropped")
    assert CliRunner().invoke(cli, args).exit_code == 0
    second = tmp_path / "phase2"
    args = train_args(second, "--chm-provider", "cifar-cropped", "--lr", "0",
                      "--weights", str(first / "model.weights.h5"))  # fmt: skip
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    a, meta_a = load_mirror(first / "model.weights.h5")
    b, meta_b = load_mirror(second / "model.weights.h5")
    for x, y in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(x, y)  # lr 0: the phase-1 weights, unchanged
    assert meta_a["mean"] == meta_b["mean"]
    bad = CliRunner().invoke(
        cli, train_args(tmp_path / "p3", "--weights", str(first / "config.yaml"))
    )
    assert bad.exit_code == 2 and "a --chm-layers run starts from a cfg-model weights file" in (
        bad.output
    )


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--train-range", "7"], "--train-range 7: expected N or N-M within 1-6"),
        (["--train-range", "1-4"], "batches are CIFAR-10's data_batch_1..5"),
        (["--chm-provider", "cifar", "--multiview"], "--multiview: the views are crops"),
        (["--multiview"], "--multiview: the views are crops, and"),
    ],
)
def test_cli_refuses_bad_provider_options_in_one_line(tmp_path, extra, message):
    require(CFG)
    result = CliRunner().invoke(cli, train_args(tmp_path / "r", *extra))
    assert result.exit_code == 2 and message in result.output, result.output
    assert "Traceback" not in result.output


def test_provider_options_are_for_cfg_runs_only(tmp_path):
    args = ["train", "--dataset", f"folder:{MINI}", "--model-dir", str(tmp_path / "r"),
            "--multiview", "--test-range", "5"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert "--multiview, --test-range: for a --chm-layers run" in result.output


def test_conv_local_nets_read_24x24_crops_and_cifar_reads_them_whole():
    require(CFG)
    net = read_net(CFG / "layers-conv-local-13pct.cfg")
    assert net.image_size == 24 and "'local3' is a local layer" in net.notes[0]
    assert read_net(CFG / "layers-18pct.cfg").image_size == 32
    from alexnet_keras.training.chm_data import net_image_size

    assert net_image_size(24, "cifar") == 32 and net_image_size(32, "cifar-cropped") == 24


def test_multiview_era_is_refused_where_there_is_no_multiview(tmp_path):
    from alexnet_keras import weights
    from alexnet_keras.evaluation import evaluate
    from alexnet_keras.model import AlexNet

    path = weights.save_weights(AlexNet(classes=10), tmp_path / "m.weights.h5", variant="bvlc")
    with pytest.raises(ValueError, match="m.weights.h5: --multiview-era is for a cfg net"):
        evaluate(path, f"folder:{MINI}", multiview_era="2011")


def test_multiview_era_is_refused_for_a_cfg_net_that_reads_whole_images(tmp_path):
    from alexnet_keras.cuda_convnet.cfg_mapper import mirror_arrays
    from alexnet_keras.cuda_convnet.cfg_weights import save_mirror_weights
    from tests import convnet_files as cf

    require(MINI)
    net = read_net(require(CFG / "layers-80sec.cfg"), CFG / "layer-params-80sec.cfg")
    path = save_mirror_weights(net, mirror_arrays(net, cf.layers_from_net(net, seed=1)),
                               tmp_path / "whole.weights.h5", class_names=list("abcdefghij"),
                               mean=np.zeros((3, 32, 32), np.float32))  # fmt: skip
    out = CliRunner().invoke(cli, ["evaluate", "--weights", str(path), "--dataset",
                                   f"folder:{MINI}", "--multiview-era", "2011"])  # fmt: skip
    lines = out.output.strip().splitlines()
    assert out.exit_code == 2 and len(lines) == 1, out.output
    assert lines[0].endswith("whole.weights.h5: the net reads whole 32x32 images: "
                             "--multiview-era is for a net trained on crops")  # fmt: skip

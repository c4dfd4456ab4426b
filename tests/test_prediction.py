"""`alexnet-keras predict`: labels for files and folders, JSON, ten crops, bad files."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

import alexnet_keras
from alexnet_keras.cli import cli
from tests import exports


@pytest.fixture(scope="module")
def chm_weights(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("predict")
    return exports.make_weights(tmp / "chm.weights.h5", "chm2012", classes=10)


def _invoke(*args):
    return CliRunner().invoke(cli, ["predict", *map(str, args)])


def _reference(weights, files, ten_crop=False):
    meta = alexnet_keras.weights.read_metadata(weights)
    model = alexnet_keras.AlexNet(weights=weights)
    mean = meta["preprocessing"]["mean"]
    rows = []
    for f in files:
        image = alexnet_keras.load_image(f)
        views = (
            alexnet_keras.ten_crop(image, 224)
            if ten_crop
            else alexnet_keras.center_crop(image, 224)[None]
        )
        x = alexnet_keras.preprocess_input(views, variant="chm2012", mean=mean)
        rows.append(model.predict(x, verbose=0).mean(axis=0))
    return np.stack(rows)


@pytest.mark.parametrize("ten_crop", [False, True])
def test_json_top_k_equals_the_model(chm_weights, imagenet_dir, ten_crop):
    folder = imagenet_dir / "n01440764"
    single = sorted(imagenet_dir.glob("n015*/*.JPEG"))[:2]
    args = ["--weights", chm_weights, "--top", 3, "--json", folder, *single]
    result = _invoke(*args, *(["--ten-crop"] if ten_crop else []))
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    files = [*sorted(folder.glob("*.JPEG")), *single]
    assert [r["image"] for r in out] == [str(f) for f in files]
    want = _reference(chm_weights, files, ten_crop)
    for r, row in zip(out, want, strict=True):
        top = np.argsort(-row, kind="stable")[:3]
        assert [t["index"] for t in r["top"]] == top.tolist()
        assert [t["label"] for t in r["top"]] == [exports.CIFAR_NAMES[i] for i in top]
        np.testing.assert_allclose([t["score"] for t in r["top"]], row[top], atol=1e-5)


def test_text_output_and_progress_for_long_lists(chm_weights, imagenet_dir):
    folders = sorted(p for p in imagenet_dir.iterdir() if p.is_dir())[:12]
    result = _invoke("--weights", chm_weights, "--batch-size", 4, "--top", 2, *folders)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 12 * 3 and lines[0].endswith("n01440764_tench.JPEG")
    assert lines[1].split()[1] in exports.CIFAR_NAMES and float(lines[1].split()[0]) > 0
    assert "predict: 12/12 images" in result.stderr


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "synsets.txt", "not a JPEG, PNG, BMP, GIF or WebP file"),
        (lambda d: d / "missing.jpg", "no such file or folder"),
        (lambda d: d / "empty", "a folder with no images"),
        (lambda d: d / "cut.jpg", "truncated JPEG"),
    ],
)
def test_bad_files_exit_2_naming_the_file(chm_weights, imagenet_dir, tmp_path, make, message):
    (tmp_path / "synsets.txt").write_text("n01440764 tench\n")
    (tmp_path / "empty").mkdir()
    good = sorted(imagenet_dir.glob("*/*.JPEG"))[0]
    (tmp_path / "cut.jpg").write_bytes(good.read_bytes()[:3000])
    bad = make(tmp_path)
    result = _invoke("--weights", chm_weights, good, bad)
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"Error: {bad}") and message in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_a_weights_file_that_does_not_exist_exits_2(tmp_path, imagenet_dir):
    good = sorted(imagenet_dir.glob("*/*.JPEG"))[0]
    result = _invoke("--weights", tmp_path / "none.weights.h5", good)
    assert result.exit_code == 2 and "no such weights file" in result.output

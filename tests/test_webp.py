"""WebP is an image like the others: `predict`, image folders and `load_image` take it, as the
serving graph does. The files are real lossless WebP (VP8L) written by `tests.data.images`."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

import alexnet_keras
from alexnet_keras.cli import cli
from alexnet_keras.data import open_dataset
from alexnet_keras.data.image_folder import check_image, image_files
from tests import exports
from tests.data import images

COLOURS = {"red": (200, 30, 40), "teal": (20, 160, 150)}


def _folder(root):
    """Two classes of solid-colour WebP files, one named in upper case."""
    for name, rgb in COLOURS.items():
        (root / name).mkdir(parents=True)
        for i in range(3):
            suffix = ".WEBP" if i == 0 else ".webp"
            (root / name / f"{i}{suffix}").write_bytes(images.webp_lossless(40 + i, 30, rgb))
    return root


def test_load_image_decodes_a_webp(tmp_path):
    path = tmp_path / "a.webp"
    path.write_bytes(images.webp_lossless(48, 32, COLOURS["red"]))
    image = alexnet_keras.load_image(path, size=None)
    assert image.shape == (32, 48, 3)
    assert (image == np.array(COLOURS["red"], np.float32)).all()


def test_a_folder_lists_and_checks_webp_files(tmp_path):
    root = _folder(tmp_path / "ds")
    assert len(image_files(root / "red")) == 3
    assert check_image(root / "red" / "0.WEBP") is None
    truncated = root / "red" / "cut.webp"
    truncated.write_bytes(images.webp_lossless(300, 200)[:-2])
    assert check_image(truncated).startswith("truncated WebP")


def test_a_folder_dataset_of_webp_decodes_the_colours(tmp_path):
    splits, info = open_dataset(f"folder:{_folder(tmp_path / 'ds')}", holdout=0.5)
    assert info.class_names == ["red", "teal"]
    seen = 0
    for split in splits.values():
        for image, label in split:
            rgb = COLOURS[info.class_names[int(label)]]
            assert (image.numpy() == np.array(rgb, np.uint8)).all()
            seen += 1
    assert seen == 6


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return exports.make_weights(tmp_path_factory.mktemp("webp") / "w.weights.h5", "chm2012", 10)


def test_predict_takes_webp_files_and_folders(tmp_path, weights):
    root = _folder(tmp_path / "ds")
    args = ["--weights", str(weights), "--json", "--top", "2", str(root / "teal"),
            str(root / "red" / "1.webp")]  # fmt: skip
    result = CliRunner().invoke(cli, ["predict", *args])
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    names = [r["image"].rsplit("/", 1)[-1] for r in found]
    assert names == ["0.WEBP", "1.webp", "2.webp", "1.webp"]
    scores = [[t["score"] for t in r["top"]] for r in found]
    # One colour gives one crop whatever the size; the other colour gives other scores:
    # the WebP pixels reach the model.
    assert np.allclose(scores[0], scores[1]) and np.allclose(scores[0], scores[2])
    assert not np.allclose(scores[0], scores[3])

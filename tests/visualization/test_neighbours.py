"""`alexnet-keras show neighbours`: the nearest training images in relu7, checked by brute force."""

import h5py
import keras
import numpy as np
import pytest
from click.testing import CliRunner

import alexnet_keras
from alexnet_keras.cli import cli
from alexnet_keras.features import neighbours as nb
from alexnet_keras.features.extract import extract_features
from alexnet_keras.visualization.neighbours import show_neighbours
from tests.conftest import SHARED, require
from tests.visualization.conftest import assert_a_picture

pytest.importorskip("matplotlib")

MINI = SHARED / "data" / "cifar10-mini"


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Random 10-class bvlc weights: the mechanics, not the meaning, are under test."""
    keras.utils.set_random_seed(2)
    path = tmp_path_factory.mktemp("w") / "random.weights.h5"
    return alexnet_keras.weights.save_weights(alexnet_keras.AlexNet(classes=10), path,
                                              variant="bvlc")  # fmt: skip


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Real CIFAR-10 images from cifar10-mini: 8 train and 3 test images of 3 classes."""
    root = tmp_path_factory.mktemp("data") / "mini3"
    for split, count in (("train", 8), ("test", 3)):
        for name in ("automobile", "cat", "ship"):
            (root / split / name).mkdir(parents=True)
            for f in sorted((require(MINI) / split / name).iterdir())[:count]:
                (root / split / name / f.name).write_bytes(f.read_bytes())
    return f"folder:{root}"


@pytest.fixture(scope="module")
def home(weights, dataset, tmp_path_factory):
    """`ALEXNET_KERAS_HOME` with both splits' relu7 features cached (extracted once here)."""
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as m:
        m.setenv("ALEXNET_KERAS_HOME", str(home))
        for split in ("eval", "train"):
            nb.split_features(weights, dataset, split, "relu7")
        # Every test draws from this cache: computing it again would be a bug.
        m.setattr(nb, "extract_features", _no_extraction)
        yield home


def _no_extraction(*args, **kwargs):
    raise AssertionError("the cached features were computed again")


def _cached(home, split):
    (path,) = (home / "features").glob(f"*-{split}-relu7.h5")
    with h5py.File(path) as f:
        return f["features"][()], f["indices"][()]


def test_neighbours_are_the_nearest_by_brute_force(weights, dataset, home):
    result = show_neighbours(weights, dataset, queries=4, seed=3, output=home / "n.png")
    train, train_indices = _cached(home, "train")
    evals, eval_indices = _cached(home, "eval")
    assert train.shape == (24, 4096) and evals.shape == (9, 4096)
    assert len(set(result.queries.tolist())) == 4 and set(result.queries) <= set(eval_indices)
    for query, found, distances in zip(result.queries, result.neighbours, result.distances,
                                       strict=True):  # fmt: skip
        q = evals[eval_indices.tolist().index(query)].astype(np.float64)
        d = np.sqrt(((train.astype(np.float64) - q) ** 2).sum(axis=1))
        want = np.argsort(d, kind="stable")[:6]
        assert found.tolist() == train_indices[want].tolist()
        np.testing.assert_allclose(distances, d[want], rtol=1e-9)
    assert_a_picture(result.path, min_size=(4 * 140, 7 * 120))


def test_the_command_draws_beside_the_weights_from_the_cache(weights, dataset, home):
    args = ["show", "neighbours", "--weights", str(weights), "--dataset", dataset,
            "--queries", "3"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    png = weights.parent / "random-neighbours.png"
    assert result.stdout.strip() == str(png)
    assert_a_picture(png, min_size=(3 * 140, 7 * 120))
    digest = nb.cache_path("0", dataset, "x", "y").name.split("-")[2]
    assert sorted(p.name.split("-", 1)[1] for p in (home / "features").iterdir()) == [
        f"mini3-{digest}-eval-relu7.h5", f"mini3-{digest}-train-relu7.h5"]  # fmt: skip
    png.unlink()


def test_bad_input_is_one_line(weights, dataset, home, tmp_path, monkeypatch, cfg_weights):
    monkeypatch.setattr(nb, "extract_features", extract_features)  # none of these is cached
    out = tmp_path / "n.png"
    for args, needle in (
        (["--layer", "fc9"], "Unknown layer 'fc9'. Expected one of conv1, "),
        (["--dataset", f"folder:{tmp_path / 'none'}"], "none"),
        (["--weights", str(cfg_weights)], f"{cfg_weights}: a cuda-convnet cfg net; features "),
    ):
        full = ["show", "neighbours", "--weights", str(weights), "--dataset", dataset, *args,
                "-o", str(out)]  # fmt: skip
        result = CliRunner().invoke(cli, full)
        assert result.exit_code == 2, result.output
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("Error: ") and needle in line, line
    assert not out.exists()

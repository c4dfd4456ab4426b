"""`show predictions` (Figure 4, left), and `predict` on a cuda-convnet cfg net."""

import numpy as np
import pytest
from click.testing import CliRunner

from alexnet_keras.cli import cli
from tests.conftest import SHARED, require

CIFAR = SHARED / "data" / "cifar10-mini" / "test"
NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.fixture(scope="module")
def cfg_weights(tmp_path_factory):
    """An 80sec cfg net with seeded weights and a per-pixel mean, as `train --chm-layers` writes."""
    from alexnet_keras.cuda_convnet.cfg_mapper import mirror_arrays
    from alexnet_keras.cuda_convnet.cfg_net import read_net
    from alexnet_keras.cuda_convnet.cfg_weights import save_mirror_weights
    from tests import convnet_files as cf

    folder = SHARED / "data" / "chm-release" / "example-layers"
    net = read_net(require(folder / "layers-80sec.cfg"), folder / "layer-params-80sec.cfg")
    arrays = mirror_arrays(net, cf.layers_from_net(net, seed=3))
    mean = np.random.default_rng(0).uniform(90, 160, (3, 32, 32)).astype(np.float32)
    path = tmp_path_factory.mktemp("cfg") / "net.weights.h5"
    return save_mirror_weights(net, arrays, path, class_names=NAMES, mean=mean), mean


def _files(*classes, per_class=2):
    return [sorted((require(CIFAR) / c).iterdir())[i] for c in classes for i in range(per_class)]


def _reference(path, mean, files):
    """cuda-convnet's input: the 32x32 image's bytes decoded, minus the per-pixel mean (HWC)."""
    import tensorflow as tf

    from alexnet_keras.cuda_convnet.cfg_weights import load_mirror

    model, _ = load_mirror(path)
    images = [tf.io.decode_jpeg(f.read_bytes(), channels=3).numpy() for f in files]
    x = np.stack(images).astype(np.float32) - mean.transpose(1, 2, 0)
    return model.predict(x, verbose=0)


def test_predict_runs_a_cfg_net_on_images_minus_its_mean(cfg_weights):
    from alexnet_keras.prediction import predict_files

    path, mean = cfg_weights
    files = _files("cat", "ship")
    expected = _reference(path, mean, files)
    results = predict_files(path, files, top=10)
    for row, result in zip(expected, results, strict=True):
        got = {t["index"]: t["score"] for t in result["top"]}
        np.testing.assert_allclose([got[i] for i in range(10)], row, rtol=1e-5, atol=1e-6)
        assert result["top"][0]["label"] == NAMES[int(np.argmax(row))]
    # The check can fail: without the mean, the scores miss the reference's at this tolerance.
    blind = _reference(path, np.zeros_like(mean), files)
    assert not np.allclose(blind, expected, rtol=1e-5, atol=1e-6)


def test_predict_refuses_ten_crop_for_a_cfg_net(cfg_weights):
    result = CliRunner().invoke(cli, ["predict", "--weights", str(cfg_weights[0]), "--ten-crop",
                                      str(_files("cat", per_class=1)[0])])  # fmt: skip
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "reads one view" in result.output


def test_true_index_reads_ids_and_names_and_refuses_ambiguous_names():
    from alexnet_keras.visualization.predictions import true_index

    names = [("n02012849", "crane"), ("n03126707", "crane"), ("n02085620", "Chihuahua")]
    assert true_index("x/n03126707/a.jpg", names) == 1
    assert true_index("x/crane/a.jpg", names) is None  # two cranes: only the id tells
    assert true_index("x/chihuahua/a.jpg", names) == 2
    assert true_index("x/golden_retriever/a.jpg", ["golden retriever"]) == 0
    assert true_index("x/other/a.jpg", names) is None


def _pixels(path):
    import tensorflow as tf

    return tf.io.decode_png(path.read_bytes()).numpy()


def test_show_predictions_draws_each_image_with_its_bars_and_marks_the_truth(cfg_weights,
                                                                             tmp_path):  # fmt: skip
    from alexnet_keras.prediction import predict_files

    path, mean = cfg_weights
    files = _files("cat", "dog", "ship")
    out = tmp_path / "p.png"
    result = CliRunner().invoke(cli, ["show", "predictions", "--weights", str(path), "--columns",
                                      "3", "-o", str(out), *map(str, files)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(out)
    pixels = _pixels(out)
    assert pixels.shape[:2] == (2 * 320, 3 * 240)  # 2 rows of 3 cells, 2.4 x 3.2 in at 100 dpi
    assert pixels[..., :3].std() > 20  # not blank
    assert not list(tmp_path.glob(".*tmp"))  # written atomically, nothing left over

    # The bars: the true class in red, the others blue, in score order.
    from alexnet_keras.visualization import predictions as vp

    results = predict_files(path, files)
    truths = [vp.true_index(f, NAMES) for f in files]
    assert truths == [3, 3, 5, 5, 8, 8]
    fig = vp.draw_predictions(results, [np.zeros((32, 32, 3))] * 6, truths, NAMES, columns=3)
    bars = [ax for ax in fig.axes if ax.patches]
    for ax, result, truth in zip(bars, results, truths, strict=True):
        widths = [p.get_width() for p in ax.patches]
        assert widths == [t["score"] for t in result["top"]]
        red = [i for i, p in enumerate(ax.patches) if p.get_facecolor()[0] > 0.8]
        assert red == [i for i, t in enumerate(result["top"]) if t["index"] == truth]


def test_show_predictions_default_output_is_beside_the_first_input(cfg_weights, tmp_path):
    import shutil

    folder = tmp_path / "cat"
    folder.mkdir()
    for f in _files("cat"):
        shutil.copy(f, folder / f.name)
    result = CliRunner().invoke(cli, ["show", "predictions", "--weights", str(cfg_weights[0]),
                                      str(folder)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(folder / "predictions.png")
    assert (folder / "predictions.png").stat().st_size > 1000


@pytest.mark.parametrize("problem", ["broken", "missing", "folder-output"])
def test_show_predictions_bad_input_is_one_line(cfg_weights, tmp_path, problem):
    image = _files("cat", per_class=1)[0]
    out = tmp_path / "p.png"
    if problem == "broken":
        image = tmp_path / "bad.jpg"
        image.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    elif problem == "missing":
        image = tmp_path / "nothing.jpg"
    else:
        out = tmp_path
    result = CliRunner().invoke(cli, ["show", "predictions", "--weights", str(cfg_weights[0]),
                                      "-o", str(out), str(image)])  # fmt: skip
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and result.output.startswith("Error: ")
    assert not list(tmp_path.glob("*.png")) and not list(tmp_path.glob(".*tmp"))

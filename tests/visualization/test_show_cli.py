"""`alexnet-keras show filters|curves`: the path printed, one-line errors, no half-written PNG."""

import os
import pathlib
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from alexnet_keras.cli import cli
from tests.visualization.conftest import assert_a_picture

pytest.importorskip("matplotlib")

ROOT = pathlib.Path(__file__).resolve().parents[2]
METRICS = ROOT / "examples" / "chm_cifar10" / "metrics"


def _run(args):
    result = CliRunner().invoke(cli, args)
    return result.exit_code, result.output


def _one_error_line(code, output, *needles):
    assert code == 2, output
    assert len(output.strip().splitlines()) == 1 and output.startswith("Error: "), output
    assert "Traceback" not in output and all(n in output for n in needles), output


@pytest.fixture
def run_folders(tmp_path):
    for seed in ("s0", "s1"):
        (tmp_path / seed).mkdir()
        shutil.copy(METRICS / f"18pct-2011-{seed}.csv", tmp_path / seed / "metrics.csv")
    return tmp_path / "s0", tmp_path / "s1"


def test_curves_default_output_is_in_the_first_run(run_folders):
    code, output = _run(["show", "curves", *map(str, run_folders)])
    assert code == 0, output
    assert output.strip() == str(run_folders[0] / "curves.png")
    assert_a_picture(run_folders[0] / "curves.png")


def test_curves_bad_input_is_one_line_and_no_picture(run_folders):
    bad = run_folders[1] / "metrics.csv"
    lines = bad.read_bytes().split(b"\r\n")
    cells = lines[2].split(b",")
    lines[2] = b",".join([*cells[:4], b"x" + cells[4], *cells[5:]])  # train_acc, epoch 2
    bad.write_bytes(b"\r\n".join(lines))
    out = run_folders[0] / "c.png"
    code, output = _run(["show", "curves", str(run_folders[0]), str(bad), "-o", str(out)])
    _one_error_line(code, output, f"{bad}: line 3: train_acc is 'x0.")
    assert not list(run_folders[0].parent.rglob("*.png")) and not out.exists()


def test_filters_default_output_is_beside_the_weights(cfg_weights, tmp_path):
    weights = tmp_path / "model.weights.h5"
    shutil.copy(cfg_weights, weights)
    code, output = _run(["show", "filters", "--weights", str(weights)])
    assert code == 0, output
    assert output.strip() == str(tmp_path / "model-filters.png")
    code, output = _run(["show", "filters", "--weights", str(weights), "--layer", "conv2"])
    assert output.strip() == str(tmp_path / "model-conv2-filters.png"), output
    assert_a_picture(tmp_path / "model-conv2-filters.png")


def test_filters_bad_input_is_one_line_and_no_picture(cfg_weights, tmp_path):
    out = tmp_path / "f.png"
    code, output = _run(["show", "filters", "--weights", str(cfg_weights), "--layer", "fc10",
                         "-o", str(out)])  # fmt: skip
    _one_error_line(code, output, f"{cfg_weights}: no conv layer 'fc10'")
    code, output = _run(["show", "filters", "--weights", str(tmp_path / "none.weights.h5")])
    _one_error_line(code, output, "none.weights.h5: no such weights file")
    code, output = _run(["show", "filters", "--weights", str(METRICS / "80sec-2011.csv")])
    _one_error_line(code, output, "80sec-2011.csv: not an HDF5 file")
    code, output = _run(["show", "filters", "--weights", str(cfg_weights), "-o",
                         str(METRICS / "80sec-2011.csv" / "f.png")])  # fmt: skip
    _one_error_line(code, output, "f.png: cannot be written: ", "is not a folder")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("command", ["curves", "filters"])
def test_without_matplotlib_show_says_what_to_install(command, cfg_weights, tmp_path):
    args = [str(METRICS / "80sec-2011.csv")] if command == "curves" else [
        "--weights", str(cfg_weights)]  # fmt: skip
    argv = ["show", command, *args, "-o", str(tmp_path / "x.png")]
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        f"from alexnet_keras.cli import cli; cli({argv!r}, prog_name='alexnet-keras')"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "Error: drawing pictures needs matplotlib: pip install 'alexnet-keras[viz]'"
    ]
    assert not (tmp_path / "x.png").exists()

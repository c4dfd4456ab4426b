"""The `alexnet-keras` command line."""

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from alexnet_keras.cli import cli


@pytest.fixture
def runner():
    return CliRunner()


def test_help_lists_summary(runner):
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0
    assert "summary" in result.output


@pytest.mark.parametrize("variant", ["bvlc", "chm2012"])
def test_summary_prints_the_layer_table(runner, variant):
    result = runner.invoke(cli, ["summary", "--variant", variant, "--input-size", "224"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Total params: 60,965,224" in out
    assert "conv2" in out and "groups=2" in out and "27x27x256" in out
    assert "fc6" in out and "37,752,832" in out
    if variant == "chm2012":
        assert "cnorm2" in out and "pad top/bottom 0/3" in out and "k=2 groups=2" in out
    else:
        assert "conv1" in out and "54x54x96" in out  # Caffe floors conv1 at 224


def test_summary_classes(runner):
    result = runner.invoke(cli, ["summary", "--variant", "caffenet", "--classes", "10"])
    assert result.exit_code == 0
    assert "fc8" in result.output and "40,970" in result.output


def test_summary_bad_input_is_one_line_exit_2(runner):
    result = runner.invoke(cli, ["summary", "--input-size", "64"])
    assert result.exit_code == 2
    assert (
        result.output.startswith("Error: ") and "Received: input_shape=(64, 64, 3)" in result.output
    )
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    result = runner.invoke(cli, ["summary", "--variant", "vgg"])
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_console_script_runs(tmp_path):
    """The installed entry point, in a fresh process, as a user runs it."""
    exe = os.path.join(os.path.dirname(sys.executable), "alexnet-keras")
    if not os.path.exists(exe):
        pytest.skip("the package is not installed with its console script")
    done = subprocess.run([exe, "summary", "--variant", "caffenet"], capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "pool1" in done.stdout and "Total params: 60,965,224" in done.stdout


def test_chm_summary_prints_layers_and_training_config(runner):
    from tests.conftest import SHARED, require

    folder = require(SHARED / "data" / "chm-release" / "example-layers")
    result = runner.invoke(cli, ["chm", "summary", str(folder / "layers-80sec.cfg"),
                                 str(folder / "layer-params-80sec.cfg")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "145,578 parameters" in result.output and "conv1_neuron" in result.output
    assert "26% error on CIFAR-10 in 80 seconds" in result.output and "wc=0.004" in result.output


def test_chm_summary_refuses_unsupported_layers_exit_2(runner, tmp_path):
    from tests.conftest import SHARED, require

    cfg = require(SHARED / "data" / "chm-release" / "layers" / "layers-120.cfg")
    result = runner.invoke(cli, ["chm", "summary", str(cfg)])
    assert result.exit_code == 2 and "layer 'blur0' has type 'blur'" in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    missing = runner.invoke(cli, ["chm", "summary", str(tmp_path / "none.cfg")])
    assert missing.exit_code == 2 and "none.cfg" in missing.output

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


def _help_lines(runner, command):
    """`command --help` as {option: its help text}, unwrapped (one line per option)."""
    result = runner.invoke(cli, [command, "--help"], terminal_width=400, max_content_width=400)
    assert result.exit_code == 0, result.output
    lines, name = {}, None
    for line in result.output.split("Options:")[1].splitlines():
        if line.strip().startswith("-"):  # an option; a long one has its help on the next line
            name, _, text = line.strip().partition(" ")
            lines[name] = text
        elif name is not None:
            lines[name] += " " + line.strip()
    return lines


def test_finetune_and_train_help_show_their_own_options_and_defaults(runner):
    finetune, train = _help_lines(runner, "finetune"), _help_lines(runner, "train")
    assert "[default: 0.001]" in finetune["--lr"] and "[default: 0.01]" in train["--lr"]
    assert "[default: bvlc_alexnet]" in finetune["--weights"]
    assert "default" not in train["--weights"]  # train starts from random weights
    assert "[default: 10]" in finetune["--epochs"] and "[default: 90]" in train["--epochs"]
    assert "[default: 64]" in finetune["--batch-size"] and "[default: 128]" in train["--batch-size"]
    assert "[default: 10.0]" in finetune["--head-lr-mult"]
    assert (
        "[default: step]" in finetune["--schedule"] and "[default: plateau]" in train["--schedule"]
    )
    assert "[default: no-decay-biases]" in finetune["--decay-biases"]
    assert "--chm-layers" in train and "--chm-params" in train
    assert "--chm-layers" not in finetune and "--chm-params" not in finetune
    train_only = {"--chm-layers", "--chm-params", "--convnet-semantics", "--chm-provider",
                  "--multiview", "--train-range", "--test-range"}  # fmt: skip
    assert set(finetune) | train_only == set(train)


def test_an_option_not_given_keeps_the_config_files_value(runner, tmp_path, monkeypatch):
    import alexnet_keras.training.config as train_config

    seen = {}

    def resolve(command, overrides, config_path=None):
        seen.update(overrides)
        raise ValueError("stop here")

    monkeypatch.setattr(train_config, "resolve", resolve)
    result = runner.invoke(cli, ["finetune", "--dataset", "x", "--config", str(tmp_path / "c")])
    assert result.exit_code == 2 and "stop here" in result.output
    assert seen["dataset"] == "x" and seen["lr"] is None and seen["decay_biases"] is None

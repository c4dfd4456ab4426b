"""A quiet terminal: the console script, as a user runs it, prints no TensorFlow, absl,
oneDNN or CUDA lines; bad input is one `Error:` line, exit code 2; `--verbose` lets the
logs through."""

import concurrent.futures
import os
import subprocess
import sys

import pytest

from tests.data import images

EXE = os.path.join(os.path.dirname(sys.executable), "alexnet-keras")

# One bad input per command; most fail after TensorFlow is imported, where its noise was.
BAD_INPUTS = {
    "summary": ["summary", "--input-size", "32"],
    "convert": ["convert", "garbage.npy", "-o", "out.weights.h5"],
    "evaluate": ["evaluate", "--weights", "garbage.weights.h5", "--dataset", "folder:empty"],
    "predict": ["predict", "--weights", "garbage.weights.h5", "cat.png"],
    "export": ["export", "--weights", "garbage.weights.h5", "--output", "served/1"],
    "finetune": ["finetune", "--dataset", "folder:empty"],
    "train": ["train", "--dataset", "folder:empty", "--epochs", "1"],
    "chm summary": ["chm", "summary", "garbage.cfg"],
    "usage": ["summary", "--variant", "vgg16"],
}
# What each message must name.
# evaluate reads the dataset (and labels) before it resolves the weights, so the folder is named.
NAMES = {"summary": "(32, 32, 3)", "convert": "garbage.npy", "evaluate": "empty",
         "predict": "garbage.weights.h5", "export": "garbage.weights.h5", "finetune": "empty",
         "train": "empty", "chm summary": "garbage.cfg", "usage": "vgg16"}  # fmt: skip
CASES = {**{f"bad {k}": v for k, v in BAD_INPUTS.items()},
         "summary": ["summary", "--variant", "caffenet"],
         "verbose summary": ["summary", "--verbose"]}  # fmt: skip


def _environment(tmp):
    env = dict(os.environ, ALEXNET_KERAS_HOME=str(tmp / "home"), KERAS_HOME=str(tmp / "keras"))
    # The user's own choices would change what is printed; a new user has none.
    for name in ("TF_CPP_MIN_LOG_LEVEL", "KERAS_BACKEND", "PYTHONWARNINGS"):
        env.pop(name, None)
    return env


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every case in its own process, a few at a time (each imports TensorFlow, ~4 s)."""
    if not os.path.exists(EXE):
        pytest.skip("the package is not installed with its console script")
    tmp = tmp_path_factory.mktemp("quiet")
    (tmp / "garbage.npy").write_bytes(b"not an array\n")
    (tmp / "garbage.weights.h5").write_bytes(b"not HDF5\n")
    (tmp / "garbage.cfg").write_text("[conv1]\ntype=bogus\n")
    (tmp / "cat.png").write_bytes(images.png(40, 30))
    (tmp / "empty").mkdir()
    env = _environment(tmp)

    def run(args):
        return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=300,
                              cwd=tmp, env=env, stdin=subprocess.DEVNULL)  # fmt: skip

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        return dict(zip(CASES, pool.map(run, CASES.values()), strict=True))


@pytest.mark.parametrize("command", BAD_INPUTS)
def test_bad_input_is_one_error_line_exit_2(runs, command):
    done = runs[f"bad {command}"]
    lines = done.stderr.splitlines()
    assert done.returncode == 2, done.stderr[-2000:]
    assert len(lines) == 1, done.stderr[-2000:]
    assert lines[0].startswith("Error: ") and NAMES[command] in lines[0], lines[0]
    assert done.stdout == ""


def test_summary_prints_nothing_on_stderr(runs):
    done = runs["summary"]
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr == ""
    assert "Total params: 60,965,224" in done.stdout


def test_verbose_lets_tensorflows_logs_through(runs):
    """`--verbose` after the command (the group form is the same option): TF's own lines."""
    done = runs["verbose summary"]
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(done.stderr.splitlines()) >= 2, done.stderr
    assert "Total params: 60,965,224" in done.stdout


@pytest.mark.parametrize(
    "args,named",
    [
        (["evaluate", "--dataset", "cifar10"], "--weights"),
        (["predict"], "IMAGES"),
        (["no-such-command"], "no-such-command"),
        (["summary", "--no-such-option"], "--no-such-option"),
        (["chm", "summary"], "LAYERS"),
        (["finetune", "--milestones", "x,y"], "--milestones"),
    ],
)
def test_a_usage_error_is_one_line_exit_2(args, named):
    from click.testing import CliRunner

    from alexnet_keras.cli import cli

    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    lines = result.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and named in lines[0], result.output
    assert lines[0].endswith("--help'.")


def test_no_command_shows_the_help():
    from click.testing import CliRunner

    from alexnet_keras.cli import cli

    result = CliRunner().invoke(cli, [])
    assert "Commands:" in result.output and "--verbose" in result.output


def test_the_library_honours_a_users_quiet_tf_cpp_min_log_level(tmp_path):
    """TF's import-time lines ignore `TF_CPP_MIN_LOG_LEVEL`; with the package imported first,
    a level of 2 the user set keeps them off stderr too."""
    env = _environment(tmp_path)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    code = "import alexnet_keras; print(alexnet_keras.AlexNet(include_top=False).output_shape)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr == "" and "(None, 6, 6, 256)" in done.stdout


@pytest.mark.parametrize(
    "args",
    [["summary"], ["convert"], ["evaluate"], ["predict"], ["export"], ["finetune"], ["train"],
     ["chm"], ["chm", "summary"]],
)  # fmt: skip
def test_every_command_takes_verbose(args):
    from click.testing import CliRunner

    from alexnet_keras.cli import cli

    result = CliRunner().invoke(cli, ["--verbose", *args, "--verbose", "--help"])
    assert result.exit_code == 0, result.output
    assert "--verbose" in result.output

"""Fetching what a command needs: offline mode, bounded network failures, the cache folder,
the `imagenet` alias, and legacy files (`bvlc_alexnet.npy`, a cuda-convnet checkpoint) given
to `--weights`. The network is the loopback server (tests/loopback.py) or a socket that never
answers; nothing here reaches the internet.
"""

import os
import re
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

from alexnet_keras import limits, pretrained, registry
from alexnet_keras.cli import cli
from tests.conftest import SHARED, require
from tests.loopback import closed_port, serve
from tests.test_registry import _fake_manifest

CLI = os.path.join(os.path.dirname(sys.executable), "alexnet-keras")
CAFFEMODEL_URL = "http://dl.caffe.berkeleyvision.org/bvlc_alexnet.caffemodel"

pytestmark = pytest.mark.usefixtures("home")  # tests/conftest.py: an empty cache each


@pytest.fixture(autouse=True)
def _online(monkeypatch):
    monkeypatch.delenv("ALEXNET_KERAS_OFFLINE", raising=False)
    monkeypatch.delenv("KERAS_HOME", raising=False)


# --- offline mode and the cache folder ------------------------------------------------------


@pytest.mark.parametrize(
    "value, want",
    [("1", True), ("true", True), ("YES", True), (" yes ", True), ("0", False), ("", False),
     ("no", False), ("offline", False)],
)  # fmt: skip
def test_offline_reads_the_variable(monkeypatch, value, want):
    monkeypatch.setenv("ALEXNET_KERAS_OFFLINE", value)
    assert registry.offline() is want


def test_keras_home_moves_the_cache_and_alexnet_keras_home_wins(monkeypatch, tmp_path):
    monkeypatch.delenv("ALEXNET_KERAS_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert registry.cache_dir() == tmp_path / "user" / ".keras" / "models" / "alexnet_keras"
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    assert registry.cache_dir() == tmp_path / "keras" / "models" / "alexnet_keras"
    monkeypatch.setenv("ALEXNET_KERAS_HOME", str(tmp_path / "mine"))
    assert registry.cache_dir() == tmp_path / "mine"


def test_keras_home_is_where_a_release_is_found(monkeypatch, tmp_path):
    monkeypatch.delenv("ALEXNET_KERAS_HOME")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    cached = registry.converted_name("bvlc_alexnet", "0123abcd")
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"stands in for a converted file")
    assert cached.parent == tmp_path / "keras" / "models" / "alexnet_keras"
    assert pretrained.resolve("bvlc_alexnet") == cached


def test_the_offline_flag_is_offline_for_the_command_only(monkeypatch):
    seen = []
    monkeypatch.setattr(pretrained, "resolve", lambda w, **k: seen.append(registry.offline()))
    result = CliRunner().invoke(cli, ["export", "--offline", "--weights", "x", "--output", "o"])
    assert seen == [True], result.output
    assert "ALEXNET_KERAS_OFFLINE" not in os.environ


def test_offline_download_raises_at_once_and_sends_nothing(server, home, monkeypatch):
    entry = _fake_manifest(monkeypatch)
    serve(server, "bvlc_alexnet.caffemodel", b"never fetched")
    monkeypatch.setenv("ALEXNET_KERAS_OFFLINE", "1")
    with pytest.raises(registry.OfflineError) as info:
        registry.download("bvlc_alexnet", progress=False)
    message = str(info.value)
    assert "\n" not in message and "offline mode" in message
    assert f"Download {entry['url']} (sha1 {entry['sha1']})" in message
    assert f"put it at {home / 'downloads' / 'bvlc_alexnet.caffemodel'}" in message
    assert server.requests == []


# --- network failures are bounded -----------------------------------------------------------


@pytest.fixture
def black_hole():
    """A loopback port whose listen queue is full: a SYN to it is dropped, so connect() hangs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(8):  # fill the accept queue (its length is backlog + 1 on Linux)
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        fillers.append(s)
    time.sleep(0.2)
    yield port
    for s in fillers + [listener]:
        s.close()


def test_a_host_that_never_accepts_fails_within_the_connect_timeout(black_hole, monkeypatch):
    _fake_manifest(monkeypatch)
    monkeypatch.setenv("ALEXNET_KERAS_MIRROR", f"http://127.0.0.1:{black_hole}/m")
    monkeypatch.setattr(limits, "CONNECT_TIMEOUT_SECONDS", 1)
    start = time.monotonic()
    with pytest.raises(
        registry.OfflineError, match=r"no connection to 127\.0\.0\.1:\d+ within 1 s"
    ):
        registry.download("bvlc_alexnet", progress=False)
    assert time.monotonic() - start < 5


def test_a_closed_port_fails_at_once(monkeypatch):
    _fake_manifest(monkeypatch)
    monkeypatch.setenv("ALEXNET_KERAS_MIRROR", f"http://127.0.0.1:{closed_port()}/m")
    start = time.monotonic()
    with pytest.raises(registry.OfflineError, match=r"cannot connect to 127\.0\.0\.1:\d+"):
        registry.download("bvlc_alexnet", progress=False)
    assert time.monotonic() - start < 2


def test_a_server_that_accepts_but_never_answers_is_bounded(monkeypatch, home):
    _fake_manifest(monkeypatch)
    listener = socket.socket()  # the kernel completes the handshake; nobody ever reads or writes
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    monkeypatch.setenv("ALEXNET_KERAS_MIRROR", f"http://127.0.0.1:{listener.getsockname()[1]}/m")
    monkeypatch.setattr(limits, "READ_TIMEOUT_SECONDS", 1)
    start = time.monotonic()
    with listener, pytest.raises(registry.OfflineError, match="timed out"):
        registry.download("bvlc_alexnet", progress=False)
    assert time.monotonic() - start < 5
    assert not (home / "downloads").exists() or not any((home / "downloads").iterdir())


def test_the_connect_probe_bounds_a_slow_name_lookup(monkeypatch):
    from alexnet_keras.registry import network

    def stuck(*args, **kwargs):
        time.sleep(3)
        raise OSError("too late")

    monkeypatch.setattr(network.socket, "getaddrinfo", stuck)
    start = time.monotonic()
    problem = registry.connect_problem("http://example.invalid/x", timeout=0.5)
    assert problem == "cannot connect to example.invalid:80: name lookup of example.invalid " \
                      "did not finish in 0.5 s"  # fmt: skip
    assert time.monotonic() - start < 2


def test_a_connection_cut_mid_transfer_is_a_network_failure(server, monkeypatch):
    body = os.urandom(1000)
    _fake_manifest(monkeypatch, body, size=None)
    serve(server, "bvlc_alexnet.caffemodel", body, extra=500)
    with pytest.raises(registry.OfflineError, match="truncated transfer: received 1000 of 1500"):
        registry.download("bvlc_alexnet", progress=False)
    serve(server, "bvlc_alexnet.caffemodel", body, extra="chunked")
    with pytest.raises(registry.OfflineError, match=r"truncated transfer after \d+ bytes"):
        registry.download("bvlc_alexnet", progress=False)


# --- the download progress line -------------------------------------------------------------


def test_download_progress_shows_size_rate_and_eta_on_a_non_tty(server, monkeypatch, capsys):
    body = os.urandom(3_000_000)
    _fake_manifest(monkeypatch, body)
    serve(server, "bvlc_alexnet.caffemodel", body)
    registry.download("bvlc_alexnet")
    err = capsys.readouterr().err
    # A log file gets whole lines, no carriage returns; the last one is the finished download.
    assert "\r" not in err and err.endswith("\n")
    line = err.splitlines()[-1]
    assert re.fullmatch(r"bvlc_alexnet\.caffemodel: 3\.0/3\.0 MB, \d+\.\d MB/s, ETA \d+s", line), (
        err
    )


# --- release names: the imagenet alias, the unverified npy --------------------------------


def test_imagenet_means_bvlc_alexnet(home):
    cached = registry.converted_name("bvlc_alexnet", "0123abcd")
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"stands in for a converted file")
    assert pretrained.resolve("imagenet") == cached == pretrained.resolve("bvlc_alexnet")


def test_imagenet_offline_names_the_bvlc_alexnet_file(home, monkeypatch):
    monkeypatch.setenv("ALEXNET_KERAS_OFFLINE", "1")
    with pytest.raises(registry.OfflineError) as info:
        pretrained.resolve("imagenet")
    assert str(info.value).startswith("bvlc_alexnet is not in the cache")
    assert CAFFEMODEL_URL in str(info.value)


def test_an_unknown_name_says_what_imagenet_means():
    with pytest.raises(
        ValueError, match=r'known: bvlc_alexnet, bvlc_reference_caffenet; "imagenet"'
    ):
        pretrained.resolve("imagenet1k")


def test_the_offline_error_names_an_unverified_npy_conversion(home, monkeypatch):
    unverified = registry.converted_name("bvlc_alexnet-unverified", "89abcdef")
    unverified.parent.mkdir(parents=True)
    unverified.write_bytes(b"stands in for a converted bvlc_alexnet.npy")
    monkeypatch.setenv("ALEXNET_KERAS_OFFLINE", "1")
    with pytest.raises(registry.OfflineError) as info:
        pretrained.resolve("bvlc_alexnet")
    assert f"pass --weights {unverified} to use it" in str(info.value)
    assert "\n" not in str(info.value)


def test_a_keras_zip_is_not_taken_for_a_checkpoint(tmp_path):
    keras_file = tmp_path / "model.keras"
    keras_file.write_bytes(b"PK\x03\x04 a .keras file is a zip")
    assert pretrained.resolve(keras_file) == keras_file  # the weights loader reports on it


# --- the console script, offline and without a network --------------------------------------


def _child(args, home, **env):
    child = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ALEXNET_KERAS_", "KERAS_HOME")) and "proxy" not in k.lower()
    }
    child.update(ALEXNET_KERAS_HOME=str(home), NO_PROXY="127.0.0.1", **env)  # fmt: skip
    start = time.monotonic()
    result = subprocess.run([CLI, *map(str, args)], capture_output=True, text=True, env=child,
                            timeout=120)  # fmt: skip
    return result, time.monotonic() - start


@pytest.mark.parametrize(
    "args, env",
    [(["convert", "--offline", "bvlc_alexnet"], {}),
     (["predict", "--weights", "imagenet", "x.jpg"], {"ALEXNET_KERAS_OFFLINE": "yes"})],
    ids=["convert --offline", "predict ALEXNET_KERAS_OFFLINE"],
)  # fmt: skip
def test_offline_commands_fail_in_one_line_naming_the_file(home, tmp_path, args, env):
    sample = sorted((require(SHARED / "data" / "cifar10-mini" / "test")).rglob("*.jpg"))[0]
    shutil.copy(sample, tmp_path / "x.jpg")
    result, seconds = _child([a.replace("x.jpg", str(tmp_path / "x.jpg")) for a in args], home,
                             **env)  # fmt: skip
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: bvlc_alexnet is not in the cache and could not be")
    assert f"Download {CAFFEMODEL_URL} (sha1 9116a64c0fbe4459d18f4bb6b56d647b63920377)" in lines[0]
    assert f"put it at {home / 'downloads' / 'bvlc_alexnet.caffemodel'}" in lines[0]
    assert not home.exists() or not any(home.rglob("*"))
    print(f"\n{args[0]}: exit 1 after {seconds:.1f} s (process start and imports included)")


def test_without_a_network_convert_fails_in_one_line_within_seconds(home):
    mirror = f"http://127.0.0.1:{closed_port()}/"
    result, seconds = _child(["convert", "bvlc_alexnet"], home, ALEXNET_KERAS_MIRROR=mirror)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot connect to 127.0.0.1:" in lines[0], result.stderr
    assert seconds < 30


# --- legacy files given to --weights (full-size AlexNet conversions: slow) ------------------


@pytest.fixture(scope="module")
def npy_file(tmp_path_factory):
    """A caffe-tensorflow `bvlc_alexnet.npy` (random weights, Python 2 pickle), as users have."""
    from tests.npy_files import keras_to_npy_dict, write_py2_npy
    from tests.reference import random_caffe_params
    from tests.test_reference import caffe_to_keras

    params = random_caffe_params(np.random.default_rng(3), classes=10)
    path = tmp_path_factory.mktemp("npy") / "bvlc_alexnet.npy"
    return write_py2_npy(path, keras_to_npy_dict(caffe_to_keras(params)))


@pytest.mark.slow
def test_convert_names_the_npy_output_and_every_command_takes_the_npy(
    npy_file, home, monkeypatch, tmp_path
):
    from tests.test_pretrained import _commands, _Resolved

    result = CliRunner().invoke(cli, ["convert", str(npy_file)])
    assert result.exit_code == 0, result.output
    output = re.search(r"^output +(\S+) \(keras\)$", result.stdout, re.M).group(1)
    assert f"note     use it with --weights {output}" in result.stdout
    assert os.path.basename(output).startswith("bvlc_alexnet-unverified-")
    written = os.stat(output).st_mtime_ns

    tiny = tmp_path / "tiny"  # each command stops once its weights resolve
    mini = require(SHARED / "data" / "cifar10-mini")
    for split in ("train", "test"):
        for label in ("airplane", "cat"):
            (tiny / split / label).mkdir(parents=True)
            shutil.copy(mini / split / label / "0000.jpg", tiny / split / label)
    resolved = _Resolved(monkeypatch)
    resolved.stop = True
    for name, args in _commands(str(npy_file), tiny, tmp_path).items():
        if name == "convert":
            continue
        result = CliRunner().invoke(cli, args)
        assert result.stderr.strip().splitlines()[-1].startswith("Error: stopped after"), name
        assert str(resolved[-1][1]) == output, name
    assert os.stat(output).st_mtime_ns == written  # converted once, then found in the cache
    monkeypatch.setenv("ALEXNET_KERAS_OFFLINE", "1")
    with pytest.raises(registry.OfflineError, match=f"pass --weights {re.escape(output)}"):
        pretrained.resolve("bvlc_alexnet")


@pytest.mark.slow
def test_a_cuda_convnet_checkpoint_is_taken_by_weights(home, tmp_path):
    from alexnet_keras.cuda_convnet import cfg_net
    from tests import convnet_files as cf

    chm = SHARED / "data" / "chm-release" / "layers"
    net = cfg_net.read_net(require(chm / "layers-145.cfg"), chm / "layer-params-145.cfg")
    folder = tmp_path / "ConvNet__2012-09-13_03.43.56"
    cf.write_checkpoint(folder, cf.layers_from_net(net, seed=5), epoch=90, batchnum=2,
                        container="dir")  # fmt: skip
    sample = sorted((SHARED / "data" / "imagenet-sample").rglob("*.JPEG"))[0]
    result = CliRunner().invoke(cli, ["predict", "--weights", str(folder), "--top", "1",
                                      str(sample)])  # fmt: skip
    assert result.exit_code == 0, result.output
    converted = list(home.glob("ConvNet__2012-09-13_03-*.weights.h5"))
    assert len(converted) == 1
    from alexnet_keras.weights import read_metadata

    assert read_metadata(converted[0])["variant"] == "chm2012"
    assert pretrained.resolve(folder) == converted[0]  # found in the cache, not converted again

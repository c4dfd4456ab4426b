"""A TFDS set that is not prepared is downloaded and prepared by the console script, or the error
says in one line what to fetch and where to put it (`alexnet_keras.data.preparation`).

The network is the loopback server, serving a tiny CIFAR-10 archive that the test writes in the
published binary layout. The child process reaches it through a test-only `sitecustomize.py` on
its PYTHONPATH: when TFDS imports its cifar module, the hook points `Cifar10`'s archive URL at the
loopback server and registers the fake archive's size and sha256 in place of the real one's. So
TFDS's own download manager downloads, checks and extracts it over HTTP; nothing in
alexnet_keras knows about the test.
"""

import hashlib
import io
import os
import pathlib
import subprocess
import sys
import tarfile
import textwrap
import time

import numpy as np
import pytest

from tests import exports
from tests.loopback import closed_port, serve

CLI = os.path.join(os.path.dirname(sys.executable), "alexnet-keras")
NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
REAL_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"

HOOK = '''
"""Test-only: TFDS's cifar10 archive comes from $TEST_CIFAR10_URL, with the fake's checksum."""
import importlib.abc
import importlib.util
import os
import sys

TARGET = "tensorflow_datasets.image_classification.cifar"


def _patch(module):
    from tensorflow_datasets.core.download import checksums

    url = os.environ["TEST_CIFAR10_URL"]
    info = module.Cifar10._cifar_info.fget
    module.Cifar10._cifar_info = property(lambda self: info(self)._replace(url=url))
    module.Cifar10.url_infos = {url: checksums.UrlInfo(
        size=int(os.environ["TEST_CIFAR10_SIZE"]), checksum=os.environ["TEST_CIFAR10_SHA256"],
        filename="cifar-10-binary.tar.gz")}


class _Hook(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != TARGET:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            _patch(module)

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _Hook())
'''


def _records(rng, count):
    labels = rng.integers(0, 10, count).astype(np.uint8)
    pixels = rng.integers(0, 256, (count, 3, 32, 32), dtype=np.uint8)  # CHW, as published
    pairs = zip(labels, pixels, strict=True)
    body = b"".join(bytes([label]) + image.tobytes() for label, image in pairs)
    return labels, pixels.transpose(0, 2, 3, 1), body


def cifar10_archive():
    """`(bytes of cifar-10-binary.tar.gz, {"train": (labels, images), "test": ...})`."""
    rng = np.random.default_rng(7)
    members, want = {}, {"train": ([], []), "test": None}
    for i in range(1, 6):
        labels, images, members[f"data_batch_{i}.bin"] = _records(rng, 4)
        want["train"][0].append(labels)
        want["train"][1].append(images)
    labels, images, members["test_batch.bin"] = _records(rng, 3)
    want["test"] = (labels, images)
    want["train"] = tuple(np.concatenate(part) for part in want["train"])
    members["batches.meta.txt"] = ("\n".join(NAMES) + "\n\n").encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            entry = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            entry.size = len(data)
            tar.addfile(entry, io.BytesIO(data))
    return buffer.getvalue(), want


@pytest.fixture(scope="module")
def archive():
    return cifar10_archive()


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A 10-class chm2012 weights file, for `evaluate` (the cheapest command that reads a set)."""
    return exports.make_weights(tmp_path_factory.mktemp("w") / "cifar.weights.h5", "chm2012", 10)


def _run(args, tmp_path, url=None, archive_bytes=b"", **env):
    hooks = tmp_path / "hooks"
    hooks.mkdir(exist_ok=True)
    (hooks / "sitecustomize.py").write_text(textwrap.dedent(HOOK))
    mine = ("ALEXNET_KERAS_", "TFDS_", "KERAS_HOME")
    child = {k: v for k, v in os.environ.items()
             if not k.startswith(mine) and "proxy" not in k.lower()}  # fmt: skip
    child.update(ALEXNET_KERAS_HOME=str(tmp_path / "cache"), NO_PROXY="127.0.0.1", **env)
    if url:
        child.update(PYTHONPATH=str(hooks), TEST_CIFAR10_URL=url,
                     TEST_CIFAR10_SIZE=str(len(archive_bytes)),
                     TEST_CIFAR10_SHA256=hashlib.sha256(archive_bytes).hexdigest())  # fmt: skip
    start = time.monotonic()
    result = subprocess.run([CLI, *map(str, args)], capture_output=True, text=True, env=child,
                            timeout=300)  # fmt: skip
    return result, time.monotonic() - start


def test_evaluate_downloads_and_prepares_cifar10(server, archive, weights, tmp_path):
    body, want = archive
    serve(server, "cifar-10-binary.tar.gz", body)
    data_dir = tmp_path / "tfds"  # does not exist yet
    result, _ = _run(["evaluate", "--weights", weights, "--dataset", "cifar10",
                      "--data-dir", data_dir, "--json"], tmp_path,
                     f"{server.url}/cifar-10-binary.tar.gz", body)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert server.requests == ["/mirror/cifar-10-binary.tar.gz"]
    assert '"count": 3' in result.stdout  # the 3 test records
    # TFDS's progress bars, but none of its absl log lines.
    noise = [line for line in result.stderr.splitlines() if "absl" in line or "Error" in line]
    assert noise == [], result.stderr
    assert (data_dir / "cifar10" / "3.0.2" / "dataset_info.json").is_file()

    # What the child prepared is what open_dataset reads: labels, pixels and the class names.
    from alexnet_keras.data import open_dataset

    splits, info = open_dataset("cifar10", data_dir=str(data_dir))
    assert info.class_names == NAMES and info.num_examples == {"train": 20, "eval": 3}
    for split, key in (("eval", "test"), ("train", "train")):
        got = sorted((int(label), image.numpy().tobytes()) for image, label in splits[split])
        pairs = zip(*want[key], strict=True)
        assert got == sorted((int(label), image.tobytes()) for label, image in pairs), split


def _one_error_line(result, progress=False):
    """The one `Error:` line; with `progress`, TFDS's progress bars may come before it."""
    lines = result.stderr.strip().splitlines()
    if progress:
        lines = [line for line in lines if "Error" in line or "rror:" in line]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert result.stderr.strip().endswith(lines[0])
    return lines[0]


def test_offline_names_the_archive_and_the_manual_dir(weights, tmp_path):
    data_dir = tmp_path / "tfds"
    result, seconds = _run(["evaluate", "--offline", "--weights", weights, "--dataset", "cifar10",
                            "--data-dir", data_dir], tmp_path)  # fmt: skip
    assert result.returncode == 1
    line = _one_error_line(result)
    assert "'cifar10' is not prepared" in line and "offline mode" in line
    assert f"Download {REAL_URL} (170052171 bytes, sha256 c4a38c50a1bc5f3a" in line
    assert f"into {data_dir / 'downloads' / 'manual'}/" in line
    assert not data_dir.exists()
    print(f"\noffline error after {seconds:.1f} s (process start included)")


def test_no_network_is_one_line_within_seconds(weights, tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/cifar-10-binary.tar.gz"
    result, seconds = _run(["evaluate", "--weights", weights, "--dataset", "cifar10",
                            "--data-dir", tmp_path / "tfds"], tmp_path, url, b"x")  # fmt: skip
    assert result.returncode == 1
    line = _one_error_line(result)
    assert "cannot be downloaded (cannot connect to 127.0.0.1:" in line
    assert f"Download {url} (1 bytes" in line
    assert seconds < 60  # the process start and the TF import; the probe itself is instant


@pytest.mark.slow  # ~20 s: a child process evaluates after preparing
def test_the_archive_in_the_manual_dir_prepares_offline(archive, weights, tmp_path):
    body, _ = archive
    manual = tmp_path / "tfds" / "downloads" / "manual"
    manual.mkdir(parents=True)
    (manual / "cifar-10-binary.tar.gz").write_bytes(body)
    url = f"http://127.0.0.1:{closed_port()}/cifar-10-binary.tar.gz"  # never contacted
    result, _ = _run(["evaluate", "--offline", "--weights", weights, "--dataset", "cifar10",
                      "--data-dir", tmp_path / "tfds", "--json"], tmp_path, url, body)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert '"count": 3' in result.stdout


def test_a_tampered_archive_is_one_line_and_prepares_nothing(server, archive, weights, tmp_path):
    body, _ = archive
    serve(server, "cifar-10-binary.tar.gz", body[:-1] + bytes([body[-1] ^ 1]))
    data_dir = tmp_path / "tfds"
    result, _ = _run(["evaluate", "--weights", weights, "--dataset", "cifar10",
                      "--data-dir", data_dir], tmp_path,
                     f"{server.url}/cifar-10-binary.tar.gz", body)  # fmt: skip
    assert result.returncode == 2
    assert "wrong checksum" in _one_error_line(result, progress=True)
    assert not (data_dir / "cifar10" / "3.0.2" / "dataset_info.json").exists()
    assert pathlib.Path(data_dir / "cifar10").exists() is False or not any(
        p.name.endswith(".tfrecord-00000-of-00001") for p in (data_dir / "cifar10").rglob("*")
    )

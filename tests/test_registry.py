"""The release manifest, the cache and verified downloads (against a loopback HTTP server)."""

import copy
import hashlib
import json
import os
import pathlib
import re
import time
import urllib.parse

import pytest

from alexnet_keras import registry, variants
from tests.loopback import closed_port as _closed_port
from tests.loopback import serve as _serve

ROOT = pathlib.Path(__file__).resolve().parents[1]
REPO_MANIFEST = ROOT / "weights" / "manifest.json"
PACKAGE_MANIFEST = ROOT / "alexnet_keras" / "resources" / "manifest.json"

RELEASE_KEYS = {
    "description",
    "variant",
    "input_size",
    "classes",
    "class_order",
    "preprocessing",
    "accuracy",
    "license",
    "source",
    "sources",
    "files",
}
FILE_KEYS = {"format", "filename", "url", "size", "sha1", "sha256", "sources"}
BODY = os.urandom(300_000)


pytestmark = pytest.mark.usefixtures("home")  # tests/conftest.py: an empty cache each


def _fake_manifest(monkeypatch, body=BODY, **file_overrides):
    """The real manifest with bvlc_alexnet's caffemodel replaced by `body`'s digests."""
    fake = copy.deepcopy(registry.manifest())
    files = fake["releases"]["bvlc_alexnet"]["files"]
    caffemodel = next(f for f in files if f["format"] == "caffemodel")
    caffemodel.update(
        size=len(body),
        sha1=hashlib.sha1(body).hexdigest(),
        sha256=hashlib.sha256(body).hexdigest(),
    )
    caffemodel.update(file_overrides)
    monkeypatch.setattr(registry, "manifest", lambda: fake)
    return caffemodel


def _listing(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --- the manifest -------------------------------------------------------------------------


def test_manifest_copies_are_byte_identical():
    assert REPO_MANIFEST.read_bytes() == PACKAGE_MANIFEST.read_bytes()


def test_manifest_schema():
    doc = json.loads(PACKAGE_MANIFEST.read_text())
    assert doc["format_version"] == 1
    assert {"bvlc_alexnet", "bvlc_reference_caffenet"} <= set(doc["releases"])
    for name, entry in doc["releases"].items():
        assert RELEASE_KEYS <= set(entry), (name, RELEASE_KEYS - set(entry))
        spec = variants.VARIANTS[entry["variant"]]
        assert entry["input_size"] == spec.default_size == 227
        assert entry["classes"] == 1000
        assert entry["class_order"] == "caffe-sorted-wnid"
        pre = entry["preprocessing"]
        assert pre["color_order"] == spec.color_order
        assert pre["mean"] == pytest.approx(list(spec.mean))
        assert pre["pixel_range"] == [0, 255]
        acc = entry["accuracy"]
        assert 0 < acc["top5"] <= 100 and 0 < acc["top1"] < acc["top5"]
        assert acc["protocol"] and acc["citation"]
        assert entry["source"]["readme"].startswith("https://")
        assert entry["files"] and entry["files"][0]["format"] == "caffemodel"
        for f in entry["files"]:
            assert FILE_KEYS <= set(f), (name, FILE_KEYS - set(f))
            assert f["format"] in ("caffemodel", "npy")
            assert f["url"].startswith(("http://", "https://"))
            assert urllib.parse.urlparse(f["url"]).path.rsplit("/", 1)[-1] == f["filename"]
            assert f["size"] is None or (isinstance(f["size"], int) and f["size"] > 0)
            for key, n in (("sha1", 40), ("sha256", 64)):
                assert f[key] is None or re.fullmatch(f"[0-9a-f]{{{n}}}", f[key]), (name, key)
            for key in ("size", "sha1", "sha256"):
                if f[key] is not None:
                    assert f["sources"].get(key), f"{name} {f['filename']}: {key} has no source"
            if f["sha1"] is None and f["sha256"] is None:
                assert f.get("notes"), f"{name} {f['filename']}: unverifiable without a note"


def test_manifest_holds_the_bvlc_published_checksums():
    files = {f["filename"]: f for e in registry.manifest()["releases"].values() for f in e["files"]}
    assert files["bvlc_alexnet.caffemodel"]["sha1"] == "9116a64c0fbe4459d18f4bb6b56d647b63920377"
    assert (
        files["bvlc_reference_caffenet.caffemodel"]["sha1"]
        == "4c8d77deb20ea792f84eb5e6d0a11ca0a8660a46"
    )
    assert registry.get_release("bvlc_reference_caffenet")["variant"] == "caffenet"


def test_release_names_and_unknown_release():
    assert registry.release_names() == ["bvlc_alexnet", "bvlc_reference_caffenet"]
    assert registry.get_release("bvlc_alexnet")["variant"] == "bvlc"
    with pytest.raises(
        ValueError, match=r"bvlc_alexnet, bvlc_reference_caffenet\. Received: name='vgg16'"
    ):
        registry.get_release("vgg16")


# --- the cache ----------------------------------------------------------------------------


def test_cache_dir_env_override_and_default(home, tmp_path, monkeypatch):
    assert registry.cache_dir() == home
    monkeypatch.delenv("ALEXNET_KERAS_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert registry.cache_dir() == tmp_path / "user" / ".keras" / "models" / "alexnet_keras"


def test_file_digests_streams_several_chunks(tmp_path):
    data = os.urandom(2 * (1 << 20) + 12345)
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert registry.file_digests(path) == {
        "sha1": hashlib.sha1(data).hexdigest(),
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
    }


def test_identify_by_sha256_then_sha1(monkeypatch):
    sha1 = "9116a64c0fbe4459d18f4bb6b56d647b63920377"
    sha256 = "4bff209a9837298157915ef50a4831a59636a6ca1a6b8ebacd990c3a5f3053e0"
    name, f = registry.identify({"sha1": sha1, "sha256": sha256, "size": 1})
    assert (name, f["format"]) == ("bvlc_alexnet", "caffemodel")
    # A published sha256 decides: a right sha1 with a wrong sha256 is not the release.
    assert registry.identify({"sha1": sha1, "sha256": "0" * 64}) is None
    assert registry.identify({"sha1": "0" * 40, "sha256": "0" * 64}) is None
    # A file with only a sha1 in the manifest is matched by sha1.
    _fake_manifest(monkeypatch, sha256=None)
    got = registry.identify({"sha1": hashlib.sha1(BODY).hexdigest(), "sha256": "1" * 64})
    assert got is not None and got[0] == "bvlc_alexnet"


def test_converted_name_and_path(home):
    assert registry.converted_path("bvlc_alexnet") is None  # no cache folder yet
    assert registry.converted_name("bvlc_alexnet", "4bff209a" + "0" * 56) == (
        home / "bvlc_alexnet-4bff209a.weights.h5"
    )
    with pytest.raises(ValueError, match="sha256"):
        registry.converted_name("bvlc_alexnet", "xyz")
    home.mkdir(parents=True)
    old, new = home / "bvlc_alexnet-00000000.weights.h5", home / "bvlc_alexnet-ffffffff.weights.h5"
    decoys = [
        "bvlc_alexnet-0123456.weights.h5",  # 7 hex
        "bvlc_alexnet-ABCDEF01.weights.h5",  # upper case
        "bvlc_alexnet_x-12345678.weights.h5",
        "bvlc_reference_caffenet-12345678.weights.h5",
        "bvlc_alexnet-12345678.weights.h5.tmp",
    ]
    # The decoys are the newest files: a loose pattern would pick one of them.
    for path, age in [(old, 20), (new, 10), *((home / d, 0) for d in decoys)]:
        path.write_bytes(b"x")
        os.utime(path, (time.time() - age, time.time() - age))
    assert registry.converted_path("bvlc_alexnet") == new
    assert registry.converted_path("bvlc_reference_caffenet").name.endswith("-12345678.weights.h5")


# --- downloads ----------------------------------------------------------------------------


def test_download_verifies_renames_and_reuses(server, home, monkeypatch, capsys):
    _fake_manifest(monkeypatch)
    _serve(server, "bvlc_alexnet.caffemodel", BODY)
    path = registry.download("bvlc_alexnet", progress=False)
    assert path == home / "downloads" / "bvlc_alexnet.caffemodel"
    assert path.read_bytes() == BODY
    assert _listing(path.parent) == ["bvlc_alexnet.caffemodel"]
    assert registry.download("bvlc_alexnet", "caffemodel", progress=False) == path
    assert server.requests == ["/mirror/bvlc_alexnet.caffemodel"]  # the second call reused it
    assert capsys.readouterr().err == ""


def test_download_progress_line_and_dest_dir(server, tmp_path, monkeypatch, capsys):
    _fake_manifest(monkeypatch)
    _serve(server, "bvlc_alexnet.caffemodel", BODY)
    path = registry.download("bvlc_alexnet", dest_dir=tmp_path / "elsewhere")
    assert path == tmp_path / "elsewhere" / "bvlc_alexnet.caffemodel"
    err = capsys.readouterr().err
    assert "bvlc_alexnet.caffemodel: 0.3/0.3 MB" in err and "MB/s" in err
    assert err.count("\n") == 1


def test_download_uses_the_manifest_url_without_a_mirror(server, monkeypatch):
    _fake_manifest(monkeypatch, url=server.url + "/bvlc_alexnet.caffemodel")
    monkeypatch.delenv("ALEXNET_KERAS_MIRROR")
    _serve(server, "bvlc_alexnet.caffemodel", BODY)
    assert registry.download("bvlc_alexnet", progress=False).read_bytes() == BODY


def test_download_wrong_hash_leaves_nothing(server, home, monkeypatch):
    f = _fake_manifest(monkeypatch)
    tampered = BODY[:-1] + bytes([BODY[-1] ^ 1])
    _serve(server, "bvlc_alexnet.caffemodel", tampered)
    with pytest.raises(ValueError) as info:
        registry.download("bvlc_alexnet", progress=False)
    message = str(info.value)
    assert message.startswith(server.url + "/bvlc_alexnet.caffemodel: sha256 mismatch")
    assert f"expected {f['sha256']}. Received: {hashlib.sha256(tampered).hexdigest()}" in message
    assert "\n" not in message
    assert _listing(home / "downloads") == []


def test_download_sha1_only_entry_checks_sha1(server, home, monkeypatch):
    _fake_manifest(monkeypatch, sha256=None, sha1="0" * 40)
    _serve(server, "bvlc_alexnet.caffemodel", BODY)
    with pytest.raises(ValueError, match="sha1 mismatch: expected 0000"):
        registry.download("bvlc_alexnet", progress=False)
    assert _listing(home / "downloads") == []


def test_download_truncated_transfer_leaves_nothing(server, home, monkeypatch):
    _fake_manifest(monkeypatch, size=None)  # only Content-Length can tell
    _serve(server, "bvlc_alexnet.caffemodel", BODY, extra=1000)
    with pytest.raises(ValueError, match=f"truncated transfer: received {len(BODY)} of"):
        registry.download("bvlc_alexnet", progress=False)
    assert _listing(home / "downloads") == []


def test_download_incomplete_chunk_leaves_nothing(server, home, monkeypatch):
    _fake_manifest(monkeypatch)
    _serve(server, "bvlc_alexnet.caffemodel", BODY, extra="chunked")
    with pytest.raises(ValueError, match=r"truncated transfer after \d+ bytes \(IncompleteRead\)"):
        registry.download("bvlc_alexnet", progress=False)
    assert _listing(home / "downloads") == []


def test_download_shorter_than_the_manifest_size_is_truncated(server, home, monkeypatch):
    _fake_manifest(monkeypatch, size=len(BODY) + 7)
    _serve(server, "bvlc_alexnet.caffemodel", BODY)
    with pytest.raises(ValueError, match=f"truncated transfer: expected {len(BODY) + 7} bytes"):
        registry.download("bvlc_alexnet", progress=False)
    assert _listing(home / "downloads") == []


def test_download_unreachable_raises_offline_error(home, monkeypatch):
    f = _fake_manifest(monkeypatch)
    mirror = f"http://127.0.0.1:{_closed_port()}/m"
    monkeypatch.setenv("ALEXNET_KERAS_MIRROR", mirror)
    with pytest.raises(registry.OfflineError) as info:
        registry.download("bvlc_alexnet", progress=False)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert f"{mirror}/bvlc_alexnet.caffemodel" in message
    assert f"Download {f['url']} (sha1 {f['sha1']})" in message
    assert str(home / "downloads" / "bvlc_alexnet.caffemodel") in message
    assert "alexnet-keras convert bvlc_alexnet.caffemodel" in message
    assert _listing(home / "downloads") == []


def test_offline_error_says_when_the_file_in_place_fails(home, monkeypatch):
    _fake_manifest(monkeypatch)
    monkeypatch.setenv("ALEXNET_KERAS_MIRROR", f"http://127.0.0.1:{_closed_port()}")
    (home / "downloads").mkdir(parents=True)
    (home / "downloads" / "bvlc_alexnet.caffemodel").write_bytes(b"short")
    with pytest.raises(registry.OfflineError, match="the file there now fails: truncated transfer"):
        registry.download("bvlc_alexnet", progress=False)
    assert _listing(home / "downloads") == ["bvlc_alexnet.caffemodel"]  # the user's file stays


def test_downloaded_finds_a_verified_source_the_caffemodel_first(home, monkeypatch):
    _fake_manifest(monkeypatch)
    downloads = home / "downloads"
    assert registry.downloaded("bvlc_alexnet") is None  # no folder yet
    downloads.mkdir(parents=True)
    (downloads / "bvlc_alexnet.npy").write_bytes(b"npy")
    with pytest.warns(registry.UnverifiedDownloadWarning):  # no checksum is published
        assert registry.downloaded("bvlc_alexnet") == downloads / "bvlc_alexnet.npy"
    (downloads / "bvlc_alexnet.caffemodel").write_bytes(
        BODY[:-1] + bytes([BODY[-1] ^ 1])
    )  # fails its sha256
    with pytest.warns(registry.UnverifiedDownloadWarning):
        assert registry.downloaded("bvlc_alexnet") == downloads / "bvlc_alexnet.npy"
    assert registry.downloaded("bvlc_alexnet", "caffemodel") is None
    (downloads / "bvlc_alexnet.caffemodel").write_bytes(BODY)
    assert registry.downloaded("bvlc_alexnet") == downloads / "bvlc_alexnet.caffemodel"
    with pytest.warns(registry.UnverifiedDownloadWarning):
        assert registry.downloaded("bvlc_alexnet", "npy") == downloads / "bvlc_alexnet.npy"
    with pytest.raises(ValueError, match="Unknown weights release"):
        registry.downloaded("alexnet_v2")


def test_download_http_error_is_offline_error(server, monkeypatch):
    _fake_manifest(monkeypatch)
    with pytest.raises(registry.OfflineError, match="HTTP Error 404"):
        registry.download("bvlc_alexnet", progress=False)


def test_download_replaces_a_corrupt_cached_file(server, home, monkeypatch):
    _fake_manifest(monkeypatch)
    _serve(server, "bvlc_alexnet.caffemodel", BODY)
    (home / "downloads").mkdir(parents=True)
    (home / "downloads" / "bvlc_alexnet.caffemodel").write_bytes(BODY[:1000])
    assert registry.download("bvlc_alexnet", progress=False).read_bytes() == BODY
    assert len(server.requests) == 1


def test_download_without_checksum_warns(server, home, monkeypatch):
    _serve(server, "bvlc_alexnet.npy", b"npy bytes")
    with pytest.warns(registry.UnverifiedDownloadWarning, match="without a checksum"):
        path = registry.download("bvlc_alexnet", "npy", progress=False)
    assert path.read_bytes() == b"npy bytes"
    with pytest.raises(ValueError, match="has no 'h5' file"):
        registry.download("bvlc_alexnet", "h5")

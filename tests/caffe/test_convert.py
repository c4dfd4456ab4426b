"""Converting real-format legacy files, checked against the numpy Caffe reference.

The fixtures are full-size AlexNet weights (random, calibrated so every layer
and both LRNs work in their real range) written in the exact byte formats of
the releases: a Python 2 pickle inside `.npy` (both flavours, `str` and
`bytes` keys) and `.caffemodel` in the current and the V1 layer form. Each is
converted with `convert_file`, loaded with `AlexNet(weights=...)` and run on
real ImageNet images; the fc8 logits must match `reference.caffe_forward`
(float64, Caffe semantics, Caffe layouts) to 1e-4 relative.
"""

import dataclasses
import hashlib
import importlib.util
import json
import pathlib
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

import alexnet_keras
from alexnet_keras import registry
from alexnet_keras import variants as V
from alexnet_keras.caffe import mapper
from alexnet_keras.caffe.convert import convert_file
from alexnet_keras.caffe.source import SourceLayer, SourceNet
from alexnet_keras.cli import cli
from tests import caffe_files
from tests import reference as ref
from tests.loopback import closed_port, serve
from tests.npy_files import keras_to_npy_dict, write_py2_npy
from tests.test_reference import CAFFE_TARGETS, caffe_to_keras, rel_err
from tests.test_registry import _fake_manifest

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def crops(imagenet_images):
    return np.stack([alexnet_keras.center_crop(im, 227) for im in imagenet_images]).astype(
        np.float64
    )


@pytest.fixture(scope="module")
def case(crops):
    """Calibrated Caffe-layout params and their reference logits, per variant."""
    cache = {}

    def get(variant):
        if variant not in cache:
            params = ref.random_caffe_params(np.random.default_rng(7), classes=1000)
            x = (crops[..., ::-1] - np.array(V.IMAGENET_MEAN_BGR)).transpose(0, 3, 1, 2)
            order = "pool_lrn" if variant == "caffenet" else "lrn_pool"
            want = ref.caffe_forward(x, params, order=order, calibrate=CAFFE_TARGETS)
            params = {
                k: [w.astype(np.float32), b.astype(np.float32)] for k, (w, b) in params.items()
            }
            cache[variant] = dict(params=params, x=x, want=want, order=order)
        return cache[variant]

    return get


def keras_logits(path, crops, variant="bvlc"):
    model = alexnet_keras.AlexNet(weights=path, classifier_activation=None)
    return model.predict_on_batch(alexnet_keras.preprocess_input(crops.copy(), variant=variant))


def write_npy_fixture(path, params, flavour, keys):
    arrays = caffe_to_keras(params)  # caffe-tensorflow's transform (formats.md §4)
    if keys == "py3-bytes":  # re-saved by Python 3 after encoding="bytes" loading
        holder = np.empty((), dtype=object)
        holder[()] = keras_to_npy_dict(arrays, flavour, key_type=bytes)
        np.save(path, holder, allow_pickle=True)
    else:
        write_py2_npy(path, keras_to_npy_dict(arrays, flavour))
    return path


def write_caffemodel_fixture(path, params, caffenet=False, **options):
    layers = caffe_files.alexnet_layers(params, caffenet=caffenet)
    caffe_files.write_caffemodel(path, layers, **options)
    return path


FIXTURES = {
    "npy py2 dict of lists": lambda p, prm: write_npy_fixture(p, prm, "lists", "py2"),
    "npy py2 dict of dicts": lambda p, prm: write_npy_fixture(p, prm, "dicts", "py2"),
    "npy py3 bytes keys": lambda p, prm: write_npy_fixture(p, prm, "lists", "py3-bytes"),
    "caffemodel layer": lambda p, prm: write_caffemodel_fixture(p, prm),
    "caffemodel V1 legacy shapes": lambda p, prm: write_caffemodel_fixture(
        p, prm, v1=True, legacy_shape=True
    ),
}


@pytest.fixture(scope="module")
def converted(case, tmp_path_factory):
    """`kind -> (source path, report)`, each fixture written and converted once.

    The files (466 MB each) go in one folder made at setup, which the root conftest
    removes at the module's end.
    """
    cache, root = {}, tmp_path_factory.mktemp("converted")

    def get(kind):
        if kind not in cache:
            folder = root / kind.replace(" ", "_")
            folder.mkdir()
            suffix = ".npy" if kind.startswith("npy") else ".caffemodel"
            src = FIXTURES[kind](folder / f"bvlc_alexnet{suffix}", case("bvlc")["params"])
            cache[kind] = src, convert_file(src, folder / "out.weights.h5")
        return cache[kind]

    return get


@pytest.mark.parametrize("kind", sorted(FIXTURES))
def test_bvlc_files_convert_to_keras_that_matches_caffe(kind, case, crops, converted):
    _, report = converted(kind)
    assert report.variant == "bvlc" and report.classes == 1000
    meta = alexnet_keras.weights.read_metadata(report.output)
    assert meta["source"]["sha256"] == report.digests["sha256"]
    assert meta["source"]["format"] == report.format
    assert meta["class_names"][0] == ["n01440764", "tench"]
    assert meta["preprocessing"]["color_order"] == "BGR"
    err = rel_err(keras_logits(report.output, crops), case("bvlc")["want"])
    print(f"\n{kind}: max relative logit error vs numpy Caffe = {err:.2e}")
    assert err <= TOLERANCE


def test_caffenet_is_detected_from_the_layer_order_and_matches(case, crops, tmp_path):
    c = case("caffenet")
    src = write_caffemodel_fixture(tmp_path / "caffenet.caffemodel", c["params"], caffenet=True)
    report = convert_file(src, tmp_path / "caffenet.weights.h5")
    assert report.variant == "caffenet"
    assert any("pool1 before norm1" in n for n in report.notes)
    err = rel_err(keras_logits(report.output, crops, "caffenet"), c["want"])
    print(f"\ncaffenet caffemodel: max relative logit error = {err:.2e}")
    assert err <= TOLERANCE
    with pytest.raises(ValueError, match="caffenet.*--variant bvlc"):
        convert_file(src, tmp_path / "x.weights.h5", variant="bvlc")
    assert not (tmp_path / "x.weights.h5").exists()


@pytest.fixture(scope="module")
def bvlc_caffemodel(converted):
    return converted("caffemodel layer")[0]


def _planted_error(path, crops, case, tmp_path, **model_kwargs):
    report = convert_file(path, tmp_path / "planted.weights.h5")
    return rel_err(keras_logits(report.output, crops, **model_kwargs), case("bvlc")["want"])


def test_planted_unpermuted_fc6_fails(bvlc_caffemodel, case, crops, tmp_path, monkeypatch):
    real = mapper._to_keras_layout

    def no_fc6_permutation(name, kernel, layout, grid):
        return np.ascontiguousarray(kernel.T) if name == "fc6" else real(name, kernel, layout, grid)

    monkeypatch.setattr(mapper, "_to_keras_layout", no_fc6_permutation)
    err = _planted_error(bvlc_caffemodel, crops, case, tmp_path)
    print(f"\nplanted 'fc6 rows left in CHW order': relative logit error {err:.2e}")
    assert err > 10 * TOLERANCE


def test_planted_bgr_rgb_swap_fails(bvlc_caffemodel, case, crops, tmp_path, monkeypatch):
    real = mapper._to_keras_layout

    def rgb_conv1(name, kernel, layout, grid):  # a converter that "fixes" conv1 to RGB
        out = real(name, kernel, layout, grid)
        return np.ascontiguousarray(out[:, :, ::-1]) if name == "conv1" else out

    monkeypatch.setattr(mapper, "_to_keras_layout", rgb_conv1)
    err = _planted_error(bvlc_caffemodel, crops, case, tmp_path)
    print(f"\nplanted 'BGR/RGB swap': relative logit error {err:.2e}")
    assert err > 10 * TOLERANCE


def test_planted_lrn_alpha_bug_fails(bvlc_caffemodel, case, crops, tmp_path, monkeypatch):
    spec = V.get_variant("bvlc")
    undivided = tuple(
        dataclasses.replace(op, alpha=op.alpha * op.size) if isinstance(op, V.LRN) else op
        for op in spec.features
    )
    report = convert_file(bvlc_caffemodel, tmp_path / "planted.weights.h5")
    monkeypatch.setitem(V.VARIANTS, "bvlc", dataclasses.replace(spec, features=undivided))
    err = rel_err(keras_logits(report.output, crops), case("bvlc")["want"])
    print(f"\nplanted 'LRN alpha not divided by size': relative logit error {err:.2e}")
    assert err > 10 * TOLERANCE


def test_npy_round_trip_is_bit_exact(converted, tmp_path):
    src, report = converted("npy py2 dict of lists")
    back = convert_file(report.output, tmp_path / "back.npy", to="npy").output
    original = np.load(src, allow_pickle=True, encoding="latin1").item()
    again = np.load(back, allow_pickle=True, encoding="latin1").item()
    assert list(again) == list(mapper.WEIGHTED)
    for name in mapper.WEIGHTED:
        assert isinstance(again[name], list) and len(again[name]) == 2
        for a, b in zip(original[name], again[name], strict=False):
            assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    # ...and the written .npy converts back to the identical weights.
    second = convert_file(back, tmp_path / "b.weights.h5").output
    first, other = (alexnet_keras.weights.read_arrays(p) for p in (report.output, second))
    for name in mapper.WEIGHTED:
        for a, b in zip(first[name], other[name], strict=False):
            assert a.tobytes() == b.tobytes()


def test_caffemodel_to_npy_matches_caffe_tensorflow_layout(converted, case, tmp_path):
    out = convert_file(converted("caffemodel layer")[0], tmp_path / "c.npy", to="npy").output
    got = np.load(out, allow_pickle=True, encoding="latin1").item()
    want = caffe_to_keras(case("bvlc")["params"])
    for name in mapper.WEIGHTED:
        for a, b in zip(got[name], want[name], strict=False):
            assert a.tobytes() == b.tobytes()


def test_the_weights_file_is_what_keras_load_weights_reads(converted, case):
    model = alexnet_keras.AlexNet()
    model.load_weights(converted("caffemodel layer")[1].output)  # Keras' own loader, not ours
    want = caffe_to_keras(case("bvlc")["params"])
    for name in mapper.WEIGHTED:
        for got, expected in zip(model.get_layer(name).get_weights(), want[name], strict=False):
            np.testing.assert_array_equal(got, expected)


def _source_net(arrays, path="mem.npy"):
    layers = [SourceLayer(n, n.rstrip("0123456789"), list(v)) for n, v in arrays.items()]
    return SourceNet(path, "npy", "caffe-tensorflow", layers)


def test_float64_arrays_are_cast_and_noted(case):
    arrays = caffe_to_keras(case("bvlc")["params"])
    arrays["conv1"] = [a.astype(np.float64) for a in arrays["conv1"]]
    mapping = mapper.to_keras(_source_net(arrays))
    assert "conv1 weights stored as float64; cast to float32" in mapping.notes
    assert mapping.arrays["conv1"][0].dtype == np.float32
    np.testing.assert_array_equal(mapping.arrays["conv1"][0], arrays["conv1"][0])


def test_places_style_365_classes_are_read_from_fc8(case, tmp_path):
    arrays = caffe_to_keras(case("bvlc")["params"])
    arrays["fc8"] = [np.zeros((4096, 365), np.float32), np.zeros(365, np.float32)]
    mapping = mapper.to_keras(_source_net(arrays))
    assert mapping.classes == 365
    names = [f"place{i}" for i in range(365)]
    path = alexnet_keras.weights.write_arrays(
        tmp_path / "p.weights.h5", mapping.arrays, variant="bvlc", class_names=names
    )
    meta = alexnet_keras.weights.read_metadata(path)
    assert meta["classes"] == 365 and meta["class_names"][-1] == "place364"
    assert alexnet_keras.AlexNet(weights=path).output_shape == (None, 365)


def test_release_names_download_verify_and_convert(
    converted,
    case,
    crops,
    server,
    monkeypatch,
    tmp_path,
):
    """`convert bvlc_alexnet` and `AlexNet(weights="bvlc_alexnet")` via a loopback mirror."""
    body = converted("caffemodel layer")[0].read_bytes()
    monkeypatch.setenv("ALEXNET_KERAS_HOME", str(tmp_path / "home"))
    entry = _fake_manifest(monkeypatch, body)
    serve(server, "bvlc_alexnet.caffemodel", body)
    result = CliRunner().invoke(cli, ["convert", "bvlc_alexnet"])
    assert result.exit_code == 0, result.output
    assert "bvlc_alexnet (bvlc_alexnet.caffemodel, sha256" in result.stdout
    out = registry.converted_path("bvlc_alexnet")
    assert out.name == f"bvlc_alexnet-{entry['sha256'][:8]}.weights.h5"
    requests = len(server.requests)
    again = CliRunner().invoke(cli, ["convert", "bvlc_alexnet"])
    assert again.exit_code == 0 and "already converted" in again.stdout
    model = alexnet_keras.AlexNet(weights="bvlc_alexnet", classifier_activation=None)
    assert len(server.requests) == requests  # both used the cache
    got = model.predict_on_batch(alexnet_keras.preprocess_input(crops.copy()))
    assert rel_err(got, case("bvlc")["want"]) <= TOLERANCE


def test_release_name_offline_says_what_to_download(monkeypatch, tmp_path):
    monkeypatch.setenv("ALEXNET_KERAS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ALEXNET_KERAS_MIRROR", f"http://127.0.0.1:{closed_port()}/")
    with pytest.raises(registry.OfflineError) as e:
        alexnet_keras.AlexNet(weights="bvlc_reference_caffenet")
    message = str(e.value)
    assert "http://dl.caffe.berkeleyvision.org/bvlc_reference_caffenet.caffemodel" in message
    assert "alexnet-keras convert bvlc_reference_caffenet.caffemodel" in message
    assert str(tmp_path / "home" / "downloads") in message


def _script_in_a_copy_of_the_repository(root):
    """tools/convert_bvlc.py and both manifests, copied into `root` with the repository's layout.

    The script finds the manifests from its own location, so the copy writes
    only there: nothing is patched, and the real manifests stay untouched.
    """
    for relative in ("tools/convert_bvlc.py", *MANIFESTS):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / relative, root / relative)
    spec = importlib.util.spec_from_file_location(
        "convert_bvlc_copy", root / "tools/convert_bvlc.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


MANIFESTS = ("weights/manifest.json", "alexnet_keras/resources/manifest.json")
REPO = pathlib.Path(__file__).resolve().parents[2]


def test_convert_bvlc_script_checks_parity_and_fills_the_manifest(
    converted, imagenet_dir, tmp_path, capsys
):
    root = tmp_path / "repo"
    script = _script_in_a_copy_of_the_repository(root)
    manifests = [root / m for m in MANIFESTS]
    src = converted("caffemodel layer")[0]
    argv = [str(src), "-o", str(tmp_path / "o.weights.h5"), "--images", str(imagenet_dir),
            "--count", "2", "--release", "bvlc_alexnet", "--write"]  # fmt: skip
    # The real entry publishes BVLC's sha1: this file is not that release.
    assert script.main(argv) == 2
    assert "is not the published" in capsys.readouterr().err
    assert [m.read_bytes() for m in manifests] == [(REPO / m).read_bytes() for m in MANIFESTS]
    # An entry with no digests yet gets this file's, in both copies.
    doc = json.loads(manifests[0].read_text())
    caffemodel = doc["releases"]["bvlc_alexnet"]["files"][0]
    caffemodel.update(sha1=None, sha256=None, size=None)
    manifests[0].write_text(json.dumps(doc))
    assert script.main(argv) == 0
    out = capsys.readouterr().out
    assert "PASS" in out and '"sha256"' in out
    assert f"updated {manifests[0]} and {manifests[1]}" in out
    written = json.loads(manifests[0].read_text())["releases"]["bvlc_alexnet"]["files"][0]
    assert written["size"] == src.stat().st_size
    assert written["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert manifests[1].read_bytes() == manifests[0].read_bytes()

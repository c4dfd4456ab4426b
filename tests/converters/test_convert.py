"""`converters.convert`, the library call behind `alexnet-keras convert`, and its report.

The conversions themselves are tested with real-format files in
`tests/caffe/test_convert.py` and `tests/cuda_convnet/test_convert.py`,
through the CLI; here, what the dispatcher adds on its own.
"""

import pytest
from click.testing import CliRunner

from alexnet_keras import converters
from alexnet_keras.cli import cli
from alexnet_keras.converters.verify import TOLERANCE, VerifyResult, find_images


def test_an_already_converted_release_is_reported_not_converted(tmp_path, monkeypatch):
    monkeypatch.setenv("ALEXNET_KERAS_HOME", str(tmp_path))
    monkeypatch.setenv("ALEXNET_KERAS_MIRROR", "http://127.0.0.1:9/")  # never reached
    cached = tmp_path / "bvlc_alexnet-0123abcd.weights.h5"
    cached.write_bytes(b"x")
    report = converters.convert("bvlc_alexnet")
    assert report.output == cached and report.conversion is None and report.failure is None
    result = CliRunner().invoke(cli, ["convert", "bvlc_alexnet"])
    assert result.exit_code == 0 and result.stdout == str(report) + "\n"
    assert result.stdout == f"bvlc_alexnet: already converted: {cached}\n"


def test_a_failed_verification_is_the_report_s_failure(tmp_path):
    def result(max_rel):
        return VerifyResult(["a.jpg"], max_rel, max_rel, [["x"] * 5], [["y"] * 5])

    report = converters.ConvertReport(tmp_path / "o.weights.h5", "the conversion", result(1e-6),
                                      reference="numpy Caffe")  # fmt: skip
    assert report.failure is None
    assert str(report).splitlines()[:2] == ["the conversion", str(result(1e-6)).splitlines()[0]]
    report.verify = result(10 * TOLERANCE)
    assert report.failure == (
        f"{tmp_path / 'o.weights.h5'}: the converted model disagrees with the numpy Caffe "
        "reference (max relative logit error 0.001)"
    )


@pytest.mark.parametrize("kind", ["cuda-convnet", "caffe"])
def test_options_of_the_other_source_are_refused_before_reading(tmp_path, kind):
    src = tmp_path / ("ckpt" if kind == "cuda-convnet" else "missing.npy")
    if kind == "cuda-convnet":
        src.mkdir()  # a folder is a cuda-convnet checkpoint
    other = {"class_names": ["a"]} if kind == "cuda-convnet" else {"meta": "batches.meta"}
    with pytest.raises(ValueError, match="only$" if kind == "cuda-convnet" else "cuda-convnet$"):
        converters.convert(src, **other)


def test_verify_images_are_listed_by_the_one_image_lister(tmp_path):
    (tmp_path / "b").mkdir()
    for name in ("b/2.PNG", "1.JPG", ".hidden.jpg", "notes.txt", "3.jpeg"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in find_images(tmp_path, 8)] == ["1.JPG", "3.jpeg", "2.PNG"]
    assert [p.name for p in find_images(tmp_path, 2)] == ["1.JPG", "3.jpeg"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        ValueError, match=r"empty: no images \(.jpg, .jpeg, .png, .bmp, .gif, .webp\) found"
    ):
        find_images(tmp_path / "empty", 1)

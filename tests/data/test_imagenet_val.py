"""`imagenet-val:DIR`: a flat ILSVRC-2012 val folder with labels in each form users hold.

Real ImageNet images (`../shared/data/imagenet-sample`, one per class) are
laid out flat as `ILSVRC2012_val_XXXXXXXX.JPEG`; the label files are written
here in Caffe's, the devkit's (with `map_clsloc.txt` or a MATLAB 5
`meta.mat`) and Kaggle's forms, and must all give the same labels. Hostile
label files are one `ValueError` line naming the file, and exit 2 from the
console script.
"""

import os
import pathlib
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

from alexnet_keras import limits
from alexnet_keras.data import open_dataset
from alexnet_keras.data.imagenet_val import list_imagenet_val, read_val_labels
from alexnet_keras.data.matlab import read_mat, read_synsets
from tests import val_files as V
from tests.conftest import IMAGENET_SAMPLE, require

COUNT = 20


@pytest.fixture(scope="module")
def val(tmp_path_factory):
    require(IMAGENET_SAMPLE)
    return V.make_val_folder(IMAGENET_SAMPLE, tmp_path_factory.mktemp("ilsvrc") / "val", COUNT)


@pytest.fixture
def files(val, tmp_path):
    """Each label form, written for `val`."""
    gt = V.write_ground_truth(val, tmp_path / "ILSVRC2012_validation_ground_truth.txt")
    return {
        "caffe": V.write_caffe(val, tmp_path / "val.txt"),
        "kaggle": V.write_kaggle(val, tmp_path / "LOC_val_solution.csv"),
        "devkit meta.mat": [gt, V.write_meta_mat(tmp_path / "meta.mat")],
        "devkit meta.mat uncompressed": [gt, V.write_meta_mat(tmp_path / "u.mat", False)],
        "devkit map_clsloc.txt": [gt, V.write_map_clsloc(tmp_path / "map_clsloc.txt")],
        "devkit meta.mat found beside it": gt,
    }


def _one_line_error(labels, folder, match):
    with pytest.raises(ValueError) as e:
        list_imagenet_val(folder, labels)
    message = str(e.value)
    assert "\n" not in message and match in message, message
    return message


def test_every_label_form_gives_the_same_labels(val, files):
    for form, labels in files.items():
        listing = list_imagenet_val(val.folder, labels)
        assert listing.labels.tolist() == val.labels, form
        assert [os.fsdecode(p) for p in listing.paths] == [str(val.folder / n) for n in val.names]
        assert listing.form == form.split()[0]
        assert listing.skipped == 0
    assert len(listing.class_names) == 1000
    assert listing.class_names[0] == ["n01440764", "tench"]  # sorted wnids, Caffe's order


def test_open_dataset_yields_the_images_with_their_labels(val, files):
    splits, info = open_dataset(f"imagenet-val:{val.folder}", labels=files["kaggle"])
    assert set(splits) == {"eval"} and info.source == "imagenet-val"
    assert info.num_examples == {"train": 0, "eval": COUNT} and len(info.class_names) == 1000
    got = [(tuple(image.shape), int(label)) for image, label in splits["eval"].take(3)]
    assert [label for _, label in got] == val.labels[:3]
    assert all(shape[2] == 3 and min(shape[:2]) >= 100 for shape, _ in got)


def test_the_label_forms_are_told_apart_by_content_not_name(val, files, tmp_path):
    renamed = tmp_path / "labels.dat"
    renamed.write_bytes(pathlib.Path(files["kaggle"]).read_bytes())
    assert read_val_labels(renamed)[0] == "kaggle"
    renamed.write_bytes(pathlib.Path(files["caffe"]).read_bytes())
    assert read_val_labels(renamed)[0] == "caffe"


def test_dataset_spec_and_labels_must_agree(val, files):
    with pytest.raises(ValueError, match="needs its labels: --labels val.txt"):
        open_dataset(f"imagenet-val:{val.folder}")
    with pytest.raises(ValueError, match="--labels is for imagenet-val:PATH"):
        open_dataset("folder:/nowhere", labels=files["caffe"])
    _one_line_error(files["caffe"], val.folder / "absent", "no such folder")


def _caffe_lines(val):
    return [f"{n} {y}" for n, y in zip(val.names, val.labels, strict=True)]


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def test_images_and_labels_that_do_not_match_are_reported_in_one_line(val, tmp_path):
    lines = _caffe_lines(val)
    message = _one_line_error(_write(tmp_path / "v.txt", lines[1:]), val.folder, "no label")
    assert f"1 images have no label in {tmp_path / 'v.txt'} (first: {val.names[0]})" in message
    extra = [*lines[1:], "ILSVRC2012_val_00049999.JPEG 3", "ILSVRC2012_val_00050000.JPEG 4"]
    message = _one_line_error(_write(tmp_path / "v.txt", extra), val.folder, "no label")
    assert "; 2 labelled images are not in the folder (first: ILSVRC2012_val_00049999" in message
    short = V.write_ground_truth(val, tmp_path / "gt.txt")
    V.write_map_clsloc(tmp_path / "map_clsloc.txt")
    short.write_text("".join(short.read_text().splitlines(True)[:-2]))
    _one_line_error(short, val.folder, "2 images have no label")
    long = V.write_ground_truth(val, tmp_path / "gt.txt")
    long.write_text(long.read_text() + "5\n")
    _one_line_error(long, val.folder, "1 labelled images are not in the folder")


@pytest.mark.parametrize(
    "form, text, match",
    [
        ("caffe", "{name} 1000", "class 1000 is out of range 0..999"),
        ("caffe", "{name} -1", "expected `ILSVRC2012_val_00000001.JPEG 65`"),
        ("caffe", "{name} 7 extra", "expected `ILSVRC2012_val_00000001.JPEG 65`"),
        ("caffe", "{name} 3\n{name} 3", "is labelled twice"),
        ("kaggle", "ImageId,PredictionString\n{stem},n99999999 1 2 3 4", "not an ILSVRC-2012"),
        ("kaggle", "ImageId,PredictionString\n{stem},n01440764 1\n{stem},n01440764 1", "twice"),
        ("kaggle", "ImageId,PredictionString\n{stem},", "LOC_val_solution.csv"),
        ("devkit", "0", "expected an ILSVRC2012_ID 1..1000"),
        ("devkit", "1001", "expected an ILSVRC2012_ID 1..1000"),
        ("devkit", "1\n\n2", "has blank lines"),
        ("junk", "tench 1", "not a val label file"),
    ],
)
def test_bad_label_lines_are_one_line_naming_file_and_line(val, tmp_path, form, text, match):
    V.write_map_clsloc(tmp_path / "map_clsloc.txt")
    stem = val.names[0].removesuffix(".JPEG")
    path = tmp_path / "labels.txt"
    path.write_text(text.format(name=val.names[0], stem=stem) + "\n")
    with pytest.raises(ValueError) as e:
        read_val_labels(path)
    assert match in str(e.value) and str(path) in str(e.value) and "\n" not in str(e.value)


def test_binary_junk_and_huge_label_files_are_refused_before_parsing(val, tmp_path, rng):
    junk = tmp_path / "junk.txt"
    junk.write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    _one_line_error(junk, val.folder, "binary data")
    junk.write_bytes(b"ILSVRC2012_val_00000001.JPEG 1\n\xff\xfe\xfa")
    _one_line_error(junk, val.folder, "not UTF-8 text")
    huge = tmp_path / "huge.txt"
    with open(huge, "wb") as f:
        f.truncate(limits.MAX_LABEL_FILE_BYTES + 1)  # sparse: no disk used
    _one_line_error(huge, val.folder, f"at most {limits.MAX_LABEL_FILE_BYTES:,} are read")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    _one_line_error(empty, val.folder, "is empty")
    _one_line_error(tmp_path / "absent.txt", val.folder, "absent.txt")
    _one_line_error("/dev/zero", val.folder, "/dev/zero")


def test_the_devkit_ground_truth_needs_an_id_map_not_a_sorted_list(val, tmp_path):
    gt = V.write_ground_truth(val, tmp_path / "gt.txt")
    _one_line_error(gt, val.folder, "needs its synset map")
    sorted_list = tmp_path / "LOC_synset_mapping.txt"
    sorted_list.write_text("".join(f"{w} some name\n" for w in V.WNIDS))
    _one_line_error([gt, sorted_list], val.folder, "list the classes in sorted order, not by ID")
    twice = _write(tmp_path / "twice.txt", [f"{w} 1 x" for w in V.WNIDS[:2]])
    _one_line_error([gt, twice], val.folder, "ILSVRC2012_ID 1 is listed twice")
    rows = [f"{w} {i} x" for i, w in enumerate(V.WNIDS, 1)]
    partial = _write(tmp_path / "partial.txt", rows[:999])
    _one_line_error([gt, partial], val.folder, "maps 999 ILSVRC2012_IDs; expected 1..1000")


def test_meta_mat_is_read_as_data(tmp_path):
    path = V.write_meta_mat(tmp_path / "meta.mat")
    synsets = read_mat(path)["synsets"]
    assert len(synsets) == 1003 and synsets[0]["WNID"] == V.ID_ORDER[0]
    assert synsets[0]["ILSVRC2012_ID"] == [1] and synsets[0]["words"] == "words 1"
    assert synsets[-1]["children"] == [1.0, 2.0] and synsets[-1]["num_children"] == [2.5]
    assert read_synsets(path) == list(enumerate(V.ID_ORDER, 1))


def _mat(tmp_path, body):
    header = b"MATLAB 5.0 MAT-file".ljust(116, b" ") + b"\0" * 8 + struct.pack("<H", 256) + b"IM"
    path = tmp_path / "meta.mat"
    path.write_bytes(header + body)
    return path


def test_hostile_meta_mat_files_are_one_line(tmp_path):
    good = V.write_meta_mat(tmp_path / "good.mat", compressed=False).read_bytes()
    cases = {
        "not a MATLAB 5 .mat file": b"\x89HDF\r\n\x1a\n" + good[8:],  # e.g. a v7.3 (HDF5) file
        "cut short": good[:132],  # in a tag
        "claims 328,440 bytes past the end": good[: len(good) // 2],
        "past the end": good[:128] + struct.pack("<II", 14, 1 << 30) + good[136:200],
        "decompresses past": good[:128]
        + (lambda z: struct.pack("<II", 15, len(z)) + z)(
            zlib.compress(b"\0" * (limits.MAX_LABEL_FILE_BYTES + 16))
        ),
        "is not numeric, char, cell or struct": good[:128]
        + V._matrix(3, [1, 1], "synsets", V._element(1, b"java")),  # an object array
    }
    for match, data in cases.items():
        path = tmp_path / "meta.mat"
        path.write_bytes(data)
        with pytest.raises(ValueError) as e:
            read_synsets(path)
        assert match in str(e.value) and str(path) in str(e.value), (match, str(e.value))
        assert "\n" not in str(e.value)
    deep = V._char("x")
    for _ in range(40):
        deep = V._matrix(1, [1, 1], "", deep)  # cells in cells
    with pytest.raises(ValueError, match="nest more than"):
        read_mat(_mat(tmp_path, deep))
    nothing = _mat(tmp_path, V._double(3.0, "other"))
    with pytest.raises(ValueError, match="holds no `synsets` struct array"):
        read_synsets(nothing)


def test_unreadable_images_are_skipped_and_counted_with_one_warning(val, tmp_path, caplog):
    folder = tmp_path / "val"
    folder.mkdir()
    for name in val.names[:4]:
        os.symlink(val.folder / name, folder / name)
    (folder / "ILSVRC2012_val_00000005.JPEG").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 64)
    labels = _write(tmp_path / "v.txt", [*_caffe_lines(val)[:4], "ILSVRC2012_val_00000005.JPEG 9"])
    listing = list_imagenet_val(folder, labels)
    assert listing.skipped == 1 and len(listing.paths) == 4
    assert "skipped 1 images" in caplog.text and "ILSVRC2012_val_00000005.JPEG" in caplog.text


def _console(*args, env=None):
    exe = os.path.join(os.path.dirname(sys.executable), "alexnet-keras")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=300, env=env)


def test_console_script_bad_labels_is_one_line_exit_2_before_any_download(val, tmp_path):
    """A hostile label file through the installed command: exit 2, one stderr line.

    The labels are read before the weights are resolved: `bvlc_alexnet`, not
    in the empty cache, is never fetched (and the run is offline anyway).
    """
    labels = _write(tmp_path / "val.txt", [*_caffe_lines(val), _caffe_lines(val)[0]])
    home = {"ALEXNET_KERAS_HOME": str(tmp_path / "home"), "ALEXNET_KERAS_OFFLINE": "1"}
    done = _console("evaluate", "--weights", "bvlc_alexnet", "--dataset",
                    f"imagenet-val:{val.folder}", "--labels", str(labels), env=home)  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), done.stderr
    assert f"{labels} line {COUNT + 1}: {val.names[0]} is labelled twice" in lines[0]
    assert not (tmp_path / "home").exists()

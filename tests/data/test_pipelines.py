"""Datasets (TFDS offline, image folders, hold-out, bad files) and the input pipelines."""

import logging
import pathlib
import struct

import numpy as np
import pytest
import tensorflow as tf

import alexnet_keras
from alexnet_keras import registry
from alexnet_keras.data import dataset_summary, eval_pipeline, open_dataset, train_pipeline
from alexnet_keras.data import sources as data_sources
from alexnet_keras.data.image_folder import holdout_mask, seeded_permutation
from alexnet_keras.data.pipelines import IMAGENET_PCA_EIGVAL, IMAGENET_PCA_EIGVEC
from alexnet_keras.data.split import Split
from alexnet_keras.preprocessing import resize_shorter
from tests.conftest import IMAGENET_SAMPLE, SHARED, load_script, require
from tests.data import images as image_bytes

ROOT = pathlib.Path(__file__).resolve().parents[2]
TFDS_DIR = SHARED / "data" / "tfds"
CIFAR_MINI = SHARED / "data" / "cifar10-mini"
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer"]
CIFAR_CLASSES += ["dog", "frog", "horse", "ship", "truck"]
BGR = {"color_order": "BGR", "mean": [104.00699, 116.66877, 122.67891]}
RGB = {"color_order": "RGB", "mean": [122.67891, 116.66877, 104.00699]}
# Small sizes keep the order/determinism tests fast; the geometry is the same.
SMALL = dict(input_size=28, resize=32)


def write_image(path, pixels, fmt=None):
    """Writes uint8 `(H, W, 3)` pixels as PNG, JPEG or BMP (by suffix unless `fmt`)."""
    fmt = fmt or path.suffix.lower().lstrip(".")
    pixels = np.asarray(pixels, np.uint8)
    if fmt == "png":
        data = tf.io.encode_png(pixels).numpy()
    elif fmt in ("jpg", "jpeg"):
        data = tf.io.encode_jpeg(pixels, quality=95).numpy()
    elif fmt == "bmp":  # 24-bit bottom-up BGR, rows padded to 4 bytes
        h, w, _ = pixels.shape
        row = w * 3 + (-w * 3) % 4
        body = b"".join(
            pixels[y, :, ::-1].tobytes().ljust(row, b"\0") for y in range(h - 1, -1, -1)
        )
        header = struct.pack("<2sIHHI", b"BM", 54 + len(body), 0, 0, 54)
        data = header + struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, len(body), 0, 0, 0, 0)
        data += body
    else:
        raise ValueError(fmt)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def make_folder(root, layout, rng, size=(20, 24)):
    """`layout`: {relative class dir: number of PNG images}."""
    for class_dir, n in layout.items():
        for i in range(n):
            write_image(root / class_dir / f"{i:03d}.png", rng.integers(0, 256, (*size, 3)))
    return root


def batches(ds):
    return [(x.numpy(), y.numpy()) for x, y in ds]


def assert_same_batches(a, b):
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_array_equal(xa, xb)


@pytest.fixture(scope="module")
def cifar_mini():
    return open_dataset(f"folder:{require(CIFAR_MINI)}")


@pytest.fixture(scope="module")
def imagenet_sample():
    return open_dataset(f"folder:{require(IMAGENET_SAMPLE)}")


# --- TFDS --------------------------------------------------------------------


def test_tfds_cifar10_opens_offline():
    splits, info = open_dataset("cifar10", data_dir=str(require(TFDS_DIR)))
    assert info.class_names == CIFAR_CLASSES
    assert info.num_examples == {"train": 50000, "eval": 10000}
    assert (info.source, info.eval_split, info.skipped) == ("tfds", "test", {"train": 0, "eval": 0})
    assert dataset_summary(info) == (
        "cifar10 (tfds): 10 classes, train 50000, eval 10000 (test), skipped 0"
    )
    for split in ("train", "eval"):
        images = list(splits[split].take(2))
        for image, label in images:
            assert image.shape == (32, 32, 3) and image.dtype == tf.uint8
            assert label.shape == () and label.dtype == tf.int32 and 0 <= label < 10
        # A fixed order: the same first examples every time.
        again = list(splits[split].take(2))
        np.testing.assert_array_equal(images[1][0], again[1][0])


def test_tfds_data_dir_from_the_environment(monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(require(TFDS_DIR)))
    assert open_dataset("cifar10")[1].num_examples["eval"] == 10000


def test_tfds_streamed_train_pipeline_is_deterministic(monkeypatch):
    """A TFDS set too big for memory streams through a seeded shuffle buffer."""
    monkeypatch.setattr(data_sources, "MATERIALIZE_MAX_BYTES", 0)
    splits, _ = open_dataset("cifar10", data_dir=str(require(TFDS_DIR)))
    assert splits["train"].arrays() is None
    kw = dict(batch_size=4, preprocessing=BGR, shuffle_buffer=32, **SMALL)
    run = lambda **k: batches(train_pipeline(splits["train"], **kw, **k).take(4))
    first = run()
    assert first[0][0].shape == (4, 28, 28, 3) and first[0][1].dtype == np.int32
    assert_same_batches(first, run())
    assert_same_batches(first[2:], run(skip_batches=2)[:2])
    assert not np.array_equal(first[0][1], run(epoch=1)[0][1])


def test_tfds_without_eval_split_holds_out_seeded_examples(monkeypatch):
    full = open_dataset("cifar10", data_dir=str(require(TFDS_DIR)))[0]["train"]
    monkeypatch.setattr(data_sources, "EVAL_SPLITS", ())  # as if cifar10 had no test split
    monkeypatch.setattr(data_sources, "MATERIALIZE_MAX_BYTES", 0)
    splits, info = open_dataset("cifar10", data_dir=str(require(TFDS_DIR)), seed=2)
    assert info.eval_split == "holdout"
    assert info.num_examples == {"train": 45000, "eval": 5000}
    held = np.sort(seeded_permutation(50000, 2, 3)[:5000])
    first = [x.numpy() for x, _ in full.take(held[1] + 1)]
    kept = [i for i in range(held[1] + 1) if i not in held[:2]]
    evals = [x.numpy() for x, _ in splits["eval"].take(2)]
    train = [x.numpy() for x, _ in splits["train"].take(len(kept))]
    expected = [first[i] for i in held[:2]] + [first[i] for i in kept]
    for got, want in zip(evals + train, expected, strict=True):
        np.testing.assert_array_equal(got, want)


# --- Image folders -----------------------------------------------------------


def test_folder_with_train_and_test(cifar_mini):
    splits, info = cifar_mini
    assert info.name == f"folder:{CIFAR_MINI.resolve()}"
    assert info.class_names == CIFAR_CLASSES
    assert info.num_examples == {"train": 200, "eval": 100}
    assert (info.source, info.eval_split, info.skipped) == (
        "folder",
        "test",
        {"train": 0, "eval": 0},
    )
    for split, per_class in (("train", 20), ("eval", 10)):
        paths, labels = splits[split].arrays()
        assert np.bincount(labels).tolist() == [per_class] * 10
        # The label is the index of the file's class folder.
        assert all(
            pathlib.Path(p.decode()).parent.name == info.class_names[y]
            for p, y in zip(paths, labels, strict=True)
        )
    image, label = next(iter(splits["eval"]))
    assert image.shape == (32, 32, 3) and image.dtype == tf.uint8 and label == 0


def test_folder_without_split_holds_out_at_random_over_single_image_classes(imagenet_sample):
    splits, info = imagenet_sample
    synsets = (IMAGENET_SAMPLE / "synsets.txt").read_text().splitlines()
    assert info.class_names == [line.split(" ", 1)[0] for line in synsets]
    assert info.num_examples == {"train": 900, "eval": 100}
    assert info.eval_split == "holdout"
    train, evals = (splits[s].arrays() for s in ("train", "eval"))
    assert len(train[0]) == 900 and len(evals[0]) == 100
    # One image per class: each class is on one side only.
    assert sorted(np.concatenate([train[1], evals[1]]).tolist()) == list(range(1000))
    assert not set(train[0]) & set(evals[0])
    again = open_dataset(f"folder:{IMAGENET_SAMPLE}")[0]
    assert again["eval"].arrays()[0].tolist() == evals[0].tolist()
    other = open_dataset(f"folder:{IMAGENET_SAMPLE}", seed=1)[0]
    assert set(other["eval"].arrays()[0]) != set(evals[0])


def test_holdout_is_stratified_seeded_and_disjoint(tmp_path, rng):
    make_folder(tmp_path, {"a": 10, "b": 10, "c": 10}, rng)
    splits, info = open_dataset(f"folder:{tmp_path}", holdout=0.2, seed=3)
    assert info.num_examples == {"train": 24, "eval": 6}
    train, evals = (splits[s].arrays() for s in ("train", "eval"))
    assert np.bincount(evals[1]).tolist() == [2, 2, 2]
    assert not set(train[0]) & set(evals[0]) and len(set(train[0]) | set(evals[0])) == 30
    same = open_dataset(f"folder:{tmp_path}", holdout=0.2, seed=3)[0]["eval"]
    assert same.arrays()[0].tolist() == evals[0].tolist()
    other = open_dataset(f"folder:{tmp_path}", holdout=0.2, seed=4)[0]["eval"]
    assert set(other.arrays()[0]) != set(evals[0])


def test_holdout_allocation_by_largest_remainder():
    counts = [7, 3, 1, 1, 1, 1]
    labels = np.repeat(np.arange(6), counts)
    for seed in range(5):
        mask = holdout_mask(labels, 6, 0.25, seed)
        held = np.bincount(labels[mask], minlength=6)
        # round(0.25 * 14) = 4: floors (1, 0, ...), then the largest remainders
        # (.75, .75), then one of the tied single-image classes.
        assert held[:2].tolist() == [2, 1] and held[2:].sum() == 1
    two = np.repeat(np.arange(3), 2)
    assert np.bincount(two[holdout_mask(two, 3, 0.5, 0)]).tolist() == [1, 1, 1]
    # round(0.9 * 4) = 4 is capped: every class keeps an image for training.
    two = np.repeat(np.arange(2), 2)
    assert np.bincount(two[holdout_mask(two, 2, 0.9, 0)]).tolist() == [1, 1]


def test_folder_image_formats_and_nested_files(tmp_path, rng):
    pixels = rng.integers(0, 256, (18, 16, 3))  # the smallest side accepted is 16
    write_image(tmp_path / "train/a/x.PNG", pixels)
    write_image(tmp_path / "train/a/sub/y.bmp", pixels)
    write_image(tmp_path / "train/b/z.JPEG", pixels)
    (tmp_path / "train/b/w.gif").write_bytes(image_bytes.gif(16, 17))
    write_image(tmp_path / "val/b/v.png", pixels)
    (tmp_path / "train/a/notes.txt").write_text("not an image, not counted")
    (tmp_path / "train/.cache").mkdir()  # hidden folders are not classes
    splits, info = open_dataset(f"folder:{tmp_path}")
    assert info.class_names == ["a", "b"] and info.eval_split == "val"
    assert info.num_examples == {"train": 4, "eval": 1} and sum(info.skipped.values()) == 0
    images = [(x.numpy(), int(y)) for x, y in splits["train"]]
    assert [y for _, y in images] == [0, 0, 1, 1]
    np.testing.assert_array_equal(images[0][0], pixels)  # PNG: lossless
    np.testing.assert_array_equal(images[1][0], pixels)  # BMP: lossless
    assert images[2][0].shape == (17, 16, 3) and images[3][0].shape == (18, 16, 3)


def test_bad_files_are_skipped_counted_and_logged(tmp_path, rng, caplog):
    make_folder(tmp_path, {"train/a": 2, "train/b": 2, "test/a": 1, "test/b": 1}, rng)
    good = tmp_path / "train/b/000.png"
    jpeg = tf.io.encode_jpeg(rng.integers(0, 256, (16, 16, 3)).astype(np.uint8)).numpy()
    (tmp_path / "train/a/truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (tmp_path / "train/b/text.jpg").write_text("this is not a JPEG")
    (tmp_path / "test/a/empty.png").write_bytes(b"")
    (tmp_path / "train/b/cut.png").write_bytes(good.read_bytes()[:-20])
    # Passes the cheap check (a frame header, an end marker) but has no scan to
    # decode: dropped when read, not counted.
    (tmp_path / "train/a/garbage.jpg").write_bytes(image_bytes.jpeg_header(64, 48))
    with caplog.at_level(logging.WARNING, logger="alexnet_keras"):
        splits, info = open_dataset(f"folder:{tmp_path}")
    assert info.skipped == {"train": 3, "eval": 1}
    assert info.num_examples == {"train": 5, "eval": 2}
    warnings = [r for r in caplog.records if r.name == "alexnet_keras"]
    assert len(warnings) == 1 and "skipped 4 files" in warnings[0].getMessage()
    assert "skipped 4 (train 3, eval 1)" in dataset_summary(info)
    assert len(list(splits["train"])) == 4
    train = train_pipeline(splits["train"], batch_size=2, preprocessing=None, **SMALL)
    assert sum(len(y) for _, y in train) == 4
    evals = eval_pipeline(splits["eval"], batch_size=2, preprocessing=None, **SMALL)
    assert sum(len(y) for _, y in evals) == 2

    with pytest.raises(ValueError, match=r"garbage\.jpg|truncated\.jpg") as e:
        open_dataset(f"folder:{tmp_path}", strict=True)
    assert "truncated.jpg: not a valid image: truncated JPEG" in str(e.value)
    (tmp_path / "train/a/truncated.jpg").unlink()
    with pytest.raises(ValueError, match=r"cut\.png: not a valid image: truncated PNG"):
        open_dataset(f"folder:{tmp_path}", strict=True)
    (tmp_path / "train/b/cut.png").unlink()
    with pytest.raises(ValueError, match=r"text\.jpg: not a valid image: not a JPEG"):
        open_dataset(f"folder:{tmp_path}", strict=True)
    (tmp_path / "train/b/text.jpg").unlink()
    with pytest.raises(ValueError, match=r"empty\.png: not a valid image: the file is empty"):
        open_dataset(f"folder:{tmp_path}", strict=True)


# --- Errors ------------------------------------------------------------------


def test_unknown_tfds_dataset():
    with pytest.raises(ValueError, match=r"Unknown dataset 'no_such_set_xyz'.*folder:PATH"):
        open_dataset("no_such_set_xyz", data_dir=str(TFDS_DIR))


def test_missing_tfds_data_dir_offline_names_the_archive(tmp_path, monkeypatch):
    # Not prepared: it would be downloaded; offline, one line says what to fetch and where.
    monkeypatch.setenv("ALEXNET_KERAS_OFFLINE", "1")
    missing = tmp_path / "nowhere"
    with pytest.raises(registry.OfflineError, match=r"'cifar10' is not prepared in .*nowhere") as e:
        open_dataset("cifar10", data_dir=str(missing))
    assert "cifar-10-binary.tar.gz" in str(e.value) and "\n" not in str(e.value)
    assert str(missing / "downloads" / "manual") in str(e.value)
    assert not missing.exists()


def test_unprepared_tfds_dataset_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("ALEXNET_KERAS_OFFLINE", "1")
    with pytest.raises(registry.OfflineError, match=r"'cifar100' is not prepared .*offline"):
        open_dataset("cifar100", data_dir=str(tmp_path))


@pytest.mark.parametrize(
    "layout, match",
    [
        (None, r"nope: no such folder"),
        ({}, r"no class subfolders"),
        ({"train/a": 0, "train/b": 0}, r"train: no images in its 2 class folders"),
        ({"a": 3}, r"only one class folder, 'a'"),
        ({"train/a": 1, "train/b": 1, "val/c": 1}, r"val: class folders that are not in .*\['c'\]"),
        ({"val/a": 1}, r"has val/ but no train/"),
        ({"train/a": 1, "train/b": 1, "test/a": 0}, r"test: no images"),
    ],
)
def test_folder_errors(tmp_path, rng, layout, match):
    root = tmp_path / "nope" if layout is None else tmp_path
    for class_dir, n in (layout or {}).items():
        (root / class_dir).mkdir(parents=True)
        make_folder(root, {class_dir: n}, rng)
    with pytest.raises(ValueError, match=match) as e:
        open_dataset(f"folder:{root}")
    assert "\n" not in str(e.value) and "Received" in str(e.value)


def test_pipeline_argument_errors(cifar_mini):
    ds = cifar_mini[0]["train"]
    with pytest.raises(ValueError, match="input_size <= resize"):
        train_pipeline(ds, input_size=227, batch_size=2, preprocessing=None, resize=200)
    with pytest.raises(ValueError, match="color_order"):
        eval_pipeline(ds, input_size=227, batch_size=2, preprocessing={"color_order": "BRG"})
    with pytest.raises(ValueError, match=r"mean.shape=\(4,\)"):
        bad_mean = {"color_order": "RGB", "mean": [1, 2, 3, 4]}
        eval_pipeline(ds, input_size=227, batch_size=2, preprocessing=bad_mean)


# --- Pipelines ---------------------------------------------------------------


@pytest.mark.parametrize("size", [224, 227])
def test_pipeline_shapes(cifar_mini, size):
    splits, _ = cifar_mini
    x, y = next(
        iter(train_pipeline(splits["train"], input_size=size, batch_size=2, preprocessing=BGR))
    )
    assert x.shape == (2, size, size, 3) and x.dtype == tf.float32
    assert y.shape == (2,) and y.dtype == tf.int32
    for ten_crop, shape in ((False, (3, size, size, 3)), (True, (3, 10, size, size, 3))):
        ds = eval_pipeline(
            splits["eval"].take(3),
            input_size=size,
            batch_size=2,
            preprocessing=RGB,
            ten_crop=ten_crop,
        )
        out = batches(ds)
        assert [len(y) for _, y in out] == [2, 1]  # every example is kept
        assert np.concatenate([x for x, _ in out]).shape == shape
        assert out[0][0].dtype == np.float32 and out[0][1].dtype == np.int32


@pytest.mark.parametrize(
    "variant, preprocessing", [("bvlc", BGR), ("chm2012", RGB), ("bvlc", "bvlc")]
)
def test_eval_matches_load_image_crop_and_preprocess_input(imagenet_sample, variant, preprocessing):
    splits, _ = imagenet_sample
    paths = splits["eval"].arrays()[0][:2]
    for size, ten_crop in ((227, False), (224, True)):
        kw = dict(input_size=size, batch_size=2, preprocessing=preprocessing, ten_crop=ten_crop)
        x, _ = next(iter(eval_pipeline(splits["eval"].take(2), **kw)))
        for k, path in enumerate(paths):
            image = alexnet_keras.load_image(path.decode(), size=256)
            assert max(image.shape[:2]) > 256  # not square: the crop offsets matter
            crop = alexnet_keras.ten_crop if ten_crop else alexnet_keras.center_crop
            expected = alexnet_keras.preprocess_input(crop(image, size), variant=variant)
            np.testing.assert_array_equal(x[k].numpy(), expected)


def test_eval_resizes_and_rounds_like_load_image(tmp_path, rng):
    # 50x80 -> 256x409.6: rounding (not truncation) gives 410; 300x457 shrinks (antialiased).
    for i, shape in enumerate([(50, 80), (80, 50), (300, 457)]):
        write_image(tmp_path / f"{'ab'[i % 2]}/{i}.png", rng.integers(0, 256, (*shape, 3)))
    splits, _ = open_dataset(f"folder:{tmp_path}", holdout=0.5)
    paths = [p.decode() for p in splits["train"].arrays()[0]]
    for ten_crop in (False, True):
        out = batches(
            eval_pipeline(
                splits["train"],
                input_size=227,
                batch_size=4,
                preprocessing="bvlc",
                ten_crop=ten_crop,
            )
        )[0][0]
        crop = alexnet_keras.ten_crop if ten_crop else alexnet_keras.center_crop
        for x, path in zip(out, paths, strict=True):
            image = alexnet_keras.load_image(path, size=256)
            np.testing.assert_array_equal(x, alexnet_keras.preprocess_input(crop(image, 227)))


def test_train_preprocessing_is_preprocess_input(cifar_mini):
    ds = cifar_mini[0]["train"]
    raw = batches(train_pipeline(ds, batch_size=3, preprocessing=None, **SMALL).take(2))
    for preprocessing, variant in ((BGR, "bvlc"), (RGB, "chm2012")):
        out = batches(
            train_pipeline(ds, batch_size=3, preprocessing=preprocessing, **SMALL).take(2)
        )
        for (x, y), (xr, yr) in zip(out, raw, strict=True):
            np.testing.assert_array_equal(y, yr)
            np.testing.assert_array_equal(x, alexnet_keras.preprocess_input(xr, variant=variant))


# The generic shuffle-buffer path is in the slow set: test_tfds_streamed_train_pipeline_is_
# deterministic covers a streamed split in the default one.
@pytest.fixture(params=["permutation", pytest.param("shuffle-buffer", marks=pytest.mark.slow)])
def train_ds(request, cifar_mini):
    """The exact-permutation path (a Split from open_dataset) and the generic one."""
    ds = cifar_mini[0]["train"]
    if request.param == "shuffle-buffer":
        ds = ds.dataset()  # any other dataset: decoded images, no references
        assert not isinstance(ds, Split)
    return ds


def test_train_is_deterministic_resumable_and_one_epoch(train_ds):
    kw = dict(batch_size=8, preprocessing=BGR, seed=5, shuffle_buffer=64, **SMALL)
    full = batches(train_pipeline(train_ds, **kw))
    assert len(full) == 25  # 200 images / 8
    assert_same_batches(full, batches(train_pipeline(train_ds, **kw)))
    for n in (1, 17):
        assert_same_batches(full[n:], batches(train_pipeline(train_ds, skip_batches=n, **kw)))
    labels = np.concatenate([y for _, y in full])
    assert np.bincount(labels).tolist() == [20] * 10  # each image once
    assert labels[:20].tolist() != sorted(labels[:20].tolist())  # shuffled
    for change in ({"epoch": 1}, {"seed": 6}):
        other = np.concatenate(
            [y for _, y in batches(train_pipeline(train_ds, **{**kw, **change}))]
        )
        assert sorted(other.tolist()) == sorted(labels.tolist())
        assert other.tolist() != labels.tolist()
    last = batches(train_pipeline(train_ds, **{**kw, "batch_size": 64, "drop_remainder": False}))
    assert [len(y) for _, y in last] == [64, 64, 64, 8]


def test_augmentation_depends_on_the_image_not_the_order(cifar_mini):
    """Each image's crop/flip/lighting is a function of (seed, epoch, index) only."""
    ds = cifar_mini[0]["train"]
    kw = dict(batch_size=200, preprocessing=None, seed=1, **SMALL)
    exact = batches(train_pipeline(ds, **kw))[0]
    generic = batches(train_pipeline(ds.dataset(), shuffle_buffer=8, **kw))[0]
    key = lambda b: sorted(range(200), key=lambda i: b[0][i].tobytes())
    np.testing.assert_array_equal(exact[0][key(exact)], generic[0][key(generic)])


def test_flip_and_crop_are_random(cifar_mini):
    ds = cifar_mini[0]["train"].dataset().take(1).repeat(16)
    x, _ = batches(train_pipeline(ds, batch_size=16, preprocessing=None, pca_std=0, **SMALL))[0]
    assert len({v.tobytes() for v in x}) > 8
    x, _ = batches(
        train_pipeline(ds, batch_size=16, preprocessing=None, pca_std=0, input_size=32, resize=32)
    )[0]
    # A full-size crop: only the flip varies.
    distinct = {v.tobytes(): v for v in x}
    assert len(distinct) == 2
    a, b = distinct.values()
    np.testing.assert_array_equal(a, b[:, ::-1])


def test_pca_lighting(tmp_path):
    colour = np.array([200.0, 120.0, 40.0])
    for i in range(40):
        write_image(tmp_path / f"{'ab'[i % 2]}/{i:02d}.png", np.broadcast_to(colour, (20, 30, 3)))
    ds = open_dataset(f"folder:{tmp_path}")[0]["train"]
    kw = dict(batch_size=32, preprocessing=None, **SMALL)
    plain, _ = batches(train_pipeline(ds, pca_std=0, **kw))[0]
    np.testing.assert_allclose(plain, np.broadcast_to(colour, plain.shape), atol=1e-3)
    lit, _ = batches(train_pipeline(ds, pca_std=0.1, **kw))[0]
    shift = lit - plain
    # One RGB shift per image, the same at every pixel, different between images.
    np.testing.assert_allclose(shift, np.broadcast_to(shift[:, :1, :1], shift.shape), atol=1e-3)
    shift = shift[:, 0, 0]
    assert len({np.round(s, 3).tobytes() for s in shift}) == 32
    # shift = 255 * eigvec @ (alpha * eigval) with alpha ~ N(0, 0.1)
    basis = 255 * np.array(IMAGENET_PCA_EIGVEC) * np.array(IMAGENET_PCA_EIGVAL)
    alpha = np.linalg.solve(basis, shift.T).T
    assert 0.06 < alpha.std() < 0.15 and np.abs(alpha).max() < 0.5


def test_seeded_permutation():
    p = seeded_permutation(1000, 7, 2)
    assert sorted(p.tolist()) == list(range(1000))
    assert (p == seeded_permutation(1000, 7, 2)).all()
    assert (p != seeded_permutation(1000, 7, 3)).any() and (
        p != seeded_permutation(1000, 8, 2)
    ).any()


@pytest.mark.slow
def test_bench_input_runs(tmp_path, capsys):
    require(IMAGENET_SAMPLE)
    module = load_script("benchmarks/bench_input.py")
    out = tmp_path / "input.json"
    argv = ["--batch", "2", "--warmup", "1", "--batches", "1", "--windows", "1"]
    assert module.main([*argv, "--only", "imagenet-sample,cifar10", "--json", str(out)]) == 0
    assert "imagenet-sample  train" in capsys.readouterr().out and out.exists()


@pytest.mark.parametrize("shape", [(256, 300, 3), (341, 256, 3), (2, 256, 256, 3), (256, 256, 3)])
def test_resize_shorter_at_256_is_the_resize_bit_for_bit(shape, rng):
    """The identity shortcut: what tf.image.resize computes at scale 1, to the last bit."""
    x = tf.constant(rng.uniform(0, 255, shape).astype(np.float32))
    full = tf.image.resize(x, shape[-3:-1], method="bilinear", antialias=True)
    np.testing.assert_array_equal(resize_shorter(x, 256).numpy(), full.numpy())


def test_resize_shorter_resizes_other_sizes(rng):
    x = tf.constant(rng.uniform(0, 255, (2, 200, 300, 3)).astype(np.float32))
    out = resize_shorter(x, 256)
    np.testing.assert_array_equal(out.numpy(), tf.image.resize(x, (256, 384), antialias=True))

"""cuda-convnet's cropped CIFAR provider, checked against a numpy transcription of `convdata.py`.

The transcription below is written from cuda-convnet 1's `convdata.py`
`CroppedCIFARDataProvider` (dnouri/cuda-convnet): training crops start at a
row and a column drawn from `0..2*border` and are mirrored with probability
1/2 (HEAD l.115-122); the mean subtracted is the centre `inner x inner`
window of the 32x32 `data_mean` (l.77, l.85); the test views are the five
starts `(0,0) (0,2b) (b,b) (2b,0) (2b,2b)` then their mirrors (HEAD
l.104-111), or in the 2011 code the 3x3 grid `{0,b,2b}^2` unmirrored
(l.104-110 at 7f28479). It works in CHW as cuda-convnet's matrices do and is
transposed to NHWC only to compare.
"""

import numpy as np
import pytest
import tensorflow as tf

from alexnet_keras.cuda_convnet.cropped_provider import (
    CroppedProvider,
    follows_archive,
    parse_range,
    select_batches,
)
from tests.conftest import SHARED

TFDS = SHARED / "data" / "tfds"
B, INNER = 4, 24


def convdata_mean(train_chw):
    """batches.meta's data_mean (all training images), cut to its centre window (l.77)."""
    full = train_chw.astype(np.float64).mean(axis=0)
    return full[:, B : B + INNER, B : B + INNER]


def convdata_train_crop(image_chw, start_y, start_x, mirror, mean):
    """One training case of `__trim_borders` (l.115-122), then `cropped -= data_mean` (l.85)."""
    pic = image_chw[:, start_y : start_y + INNER, start_x : start_x + INNER]
    if mirror:
        pic = pic[:, :, ::-1]
    return pic - mean


def convdata_views(image_chw, mean, era):
    """The multiview set of `__trim_borders`, in its order (view-major in the batch)."""
    if era == "2011":
        starts = [(y, x) for y in (0, B, 2 * B) for x in (0, B, 2 * B)]
        return [image_chw[:, y : y + INNER, x : x + INNER] - mean for y, x in starts]
    starts = [(0, 0), (0, B * 2), (B, B), (B * 2, 0), (B * 2, B * 2)]
    pics = [image_chw[:, y : y + INNER, x : x + INNER] for y, x in starts]
    return [p - mean for p in pics] + [p[:, :, ::-1] - mean for p in pics]


def hwc(a):
    return np.moveaxis(np.asarray(a), -3, -1)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(16)
    train = rng.integers(0, 256, (60, 3, 32, 32), dtype=np.uint8)  # CHW, as the batch files
    test = rng.integers(0, 256, (7, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, 60).astype(np.int32), rng.integers(0, 10, 7).astype(np.int32)
    arrays = [(hwc(train), labels[0]), (hwc(test), labels[1])]
    return train, test, arrays


def provider(arrays, **kw):
    kw = {"image_size": 32, "crop": INNER, "batch_size": 10, "seed": 3, **kw}
    return CroppedProvider(None, "synthetic", arrays=arrays, **kw)


def test_training_crops_are_convdatas_crops_with_the_centre_mean(data):
    train, _, arrays = data
    p = provider(arrays)
    mean = convdata_mean(train)
    got = np.concatenate([x.numpy() for x, _ in p.train(epoch=2)]).reshape(60, -1)
    # Each crop is exactly one of the 9 x 9 x 2 crops convdata can make of some training image.
    keys, candidates = [], []
    for start_y in range(2 * B + 1):
        for start_x in range(2 * B + 1):
            for mirror in (False, True):
                for i, im in enumerate(train):
                    keys.append(((start_y, start_x, mirror), i))
                    candidates.append(convdata_train_crop(im, start_y, start_x, mirror, mean))
    candidates = hwc(np.array(candidates, np.float32)).reshape(len(keys), -1)
    found = []
    for crop in got:
        hits = np.flatnonzero(np.abs(candidates - crop).max(axis=1) < 1e-3)
        assert len(hits) == 1, [keys[h] for h in hits]
        found.append(keys[hits[0]])
    images = [i for _, i in found]
    assert sorted(images) == list(range(60))  # every image once per epoch
    y, x, flip = p.choices(2)
    assert [key for key, _ in found] == list(
        zip(y.tolist(), x.tolist(), flip.tolist(), strict=True)
    )


def test_crop_positions_and_mirrors_are_uniform_and_independent():
    rng = np.random.default_rng(0)
    arrays = [(rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8), np.zeros(8, np.int32))] * 2
    p = provider(arrays)
    p.num_train = 81_000  # choices() only needs the count
    y, x, flip = p.choices(5)
    counts = np.zeros((9, 9, 2))
    np.add.at(counts, (y, x, flip.astype(int)), 1)
    expected = 81_000 / counts.size  # 500 per cell
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 230, chi2  # 161 degrees of freedom: p < 1e-3 above 219
    assert abs(flip.mean() - 0.5) < 0.01 and abs(y.mean() - 4) < 0.05 and abs(x.mean() - 4) < 0.05


@pytest.mark.parametrize("era, views", [("2012", 10), ("2011", 9)])
def test_multiview_views_are_convdatas_and_unmultiview_is_the_centre(data, era, views):
    train, test, arrays = data
    mean = convdata_mean(train)
    p = provider(arrays, multiview=True, era=era, batch_size=4)
    got = np.concatenate([x.numpy() for x, _ in p.eval()])
    want = np.stack([hwc(np.array(convdata_views(im, mean, era))) for im in test])
    assert got.shape == (7, views, INNER, INNER, 3)
    np.testing.assert_allclose(got, want, atol=1e-4)
    centre = np.concatenate([x.numpy() for x, _ in provider(arrays).eval()])
    np.testing.assert_allclose(centre, hwc(test[:, :, B:-B, B:-B] - mean), atol=1e-4)


def test_a_resumed_epoch_repeats_and_epochs_differ(data):
    p = provider(data[2])
    full = [x.numpy() for x, _ in p.train(epoch=4)]
    resumed = [x.numpy() for x, _ in p.train(epoch=4, skip_batches=2)]
    assert len(full) == 6 and len(resumed) == 4
    for a, b in zip(full[2:], resumed, strict=True):
        np.testing.assert_array_equal(a, b)
    again = provider(data[2])  # a new process: the same seed gives the same epoch
    np.testing.assert_array_equal(next(iter(again.train(epoch=4)))[0].numpy(), full[0])
    assert not np.array_equal(next(iter(p.train(epoch=5)))[0].numpy(), full[0])


def test_multiview_averages_softmax_probabilities_as_the_trainer_scores_them(data):
    """MultiviewTestWorker (worker.cu l.152-162) averages the softmax layer's outputs over the
    views; the logreg cost then reads the average (layer_kernels.cu l.41-74)."""
    from alexnet_keras.data import average_crops

    train, test, arrays = data
    p = provider(arrays, multiview=True, batch_size=7)
    x, y = next(iter(p.eval()))
    w = np.random.default_rng(1).normal(0, 0.01, (INNER * INNER * 3, 10))

    def logits(v):
        return tf.reshape(v, [tf.shape(v)[0], -1]) @ tf.constant(w, tf.float32)

    got = average_crops(lambda v: tf.nn.softmax(logits(v)), x).numpy()
    flat = np.stack([np.array(convdata_views(im, convdata_mean(train), "2012")) for im in test])
    z = hwc(flat).reshape(7, 10, -1) @ w
    probs = np.exp(z - z.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    want = probs.mean(axis=1)
    np.testing.assert_allclose(got, want, atol=1e-5)
    # Averaging the logits instead would be another rule: check that the data tell them apart.
    zl = z.mean(axis=1)
    other = np.exp(zl - zl.max(-1, keepdims=True))
    assert np.abs(other / other.sum(-1, keepdims=True) - want).max() > 1e-4


def test_batch_ranges_select_cuda_convnets_files_by_id():
    ids = np.array([f"train_{i:05d}" for i in np.random.default_rng(2).permutation(50_000)])
    index = np.array([int(i[6:]) for i in ids])
    train = (index, index % 10)
    test = (np.arange(10_000) + 100_000, np.zeros(10_000))
    held = select_batches(parse_range("5", "--test-range"), train, test, ids)[0]
    assert held.tolist() == list(range(40_000, 50_000))
    fit = select_batches(parse_range("1-4", "--train-range"), train, test, ids)[0]
    assert fit.tolist() == list(range(40_000))
    both = select_batches(parse_range("5-6", "--test-range"), train, test, ids)[0]
    assert both.tolist() == [*range(40_000, 50_000), *range(100_000, 110_000)]
    for bad in ("0", "7", "4-2", "1-", "a", "1-2-3"):
        with pytest.raises(ValueError, match=f"--train-range {bad}: expected N or N-M within 1-6"):
            parse_range(bad, "--train-range")


def test_the_held_out_batch_of_the_prepared_cifar10_is_ids_40000_to_49999():
    """On the real prepared TFDS cifar10: batch 5 is exactly its 10,000 ids train_40000..49999.

    TFDS numbers the ids in data_batch_1..5 order when it prepares cifar10 from the archive
    (`cifar.py` `_generate_examples`). The shared copy is a JPEG re-encoding: its ids do not
    carry data_batch_1's first labels, and `follows_archive` says so.
    """
    import tensorflow_datasets as tfds

    from alexnet_keras.data.sources import tfds_ids

    if not (TFDS / "cifar10").is_dir():
        pytest.skip("no prepared cifar10")
    ids = tfds_ids("cifar10", "train", data_dir=str(TFDS))
    # The labels, read apart from the product, in the same stored order.
    builder = tfds.builder("cifar10", data_dir=str(TFDS))
    records = builder.as_dataset(split="train", shuffle_files=False,
                                 decoders={"image": tfds.decode.SkipDecoding()})  # fmt: skip
    rows = [(r["id"], r["label"]) for r in records.batch(10_000).as_numpy_iterator()]
    assert np.concatenate([r[0] for r in rows]).astype(str).tolist() == ids.tolist()
    labels = np.concatenate([r[1] for r in rows])
    position = np.arange(len(ids))
    held = select_batches((5,), (position, labels), None, ids)[0]
    assert len(held) == 10_000
    assert sorted(ids[held]) == [f"train_{i:05d}" for i in range(40_000, 50_000)]
    assert not follows_archive(labels, ids)  # the shared copy, as its README says
    by_id = dict(zip(ids.tolist(), labels.tolist(), strict=True))
    archive_like = np.array([by_id[f"train_{i:05d}"] for i in range(50_000)])
    archive_like[:10] = (6, 9, 9, 4, 1, 1, 2, 7, 8, 3)
    assert follows_archive(archive_like, np.array([f"train_{i:05d}" for i in range(50_000)]))

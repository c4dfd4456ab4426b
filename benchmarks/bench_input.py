"""Input pipeline throughput: `train_pipeline` and `eval_pipeline` img/s.

Datasets from `../shared/data`: `imagenet-sample` opened as an image folder
(1,000 real ILSVRC JPEGs, shorter side 256; JPEG decode, resize, random crop,
flip, PCA lighting, BVLC preprocessing), the TFDS `cifar10` train split (32x32
PNGs upsampled to 256, then cropped) and `imagenet-500`: the same 1,000 images
re-encoded at a shorter side of 500 (JPEG quality 90, written once to a temporary
folder), closer to the originals' size, so decoding and downscaling cost what
they cost on the real ILSVRC-2012 files. Each pipeline runs repeated
over its data (`ds.repeat()`); after `--warmup` batches, the script times
`--windows` windows of `--batches` batches each and reports the median img/s
(the spread in brackets). The trainer needs about 14 img/s on a 2-core CPU
(`bench_model.py`); the target is 3x that.

Usage:
    python benchmarks/bench_input.py [--batch 64] [--size 227] [--json results.json]
"""

import argparse
import json
import os
import pathlib
import statistics
import tempfile
import time

import alexnet_keras  # noqa: F401  (first: sets the TF environment before TF loads)

# isort: split
import tensorflow as tf

from alexnet_keras.data import eval_pipeline, open_dataset, train_pipeline

SHARED = pathlib.Path(
    os.environ.get("ALEXNET_KERAS_SHARED", pathlib.Path(__file__).resolve().parents[2] / "shared")
)
TRAINER_IMG_S = 14.0  # bench_model.py, full AlexNet training step at batch 64 on 2 cores


def write_large_copy(src, dst, shorter=500):
    """The sample re-encoded at a larger size, in the same folder layout (once)."""
    if (dst / "done").exists():
        return dst
    for path in sorted(src.glob("*/*.JPEG")):
        image = tf.io.decode_jpeg(tf.io.read_file(str(path)), channels=3)
        h, w = image.shape[:2]
        size = [round(h * shorter / min(h, w)), round(w * shorter / min(h, w))]
        image = tf.cast(tf.clip_by_value(tf.image.resize(image, size), 0, 255), tf.uint8)
        out = dst / path.parent.name / path.name
        out.parent.mkdir(parents=True, exist_ok=True)
        tf.io.write_file(str(out), tf.io.encode_jpeg(image, quality=90))
    (dst / "done").write_text("")
    return dst


def windows_img_s(pipelines, batch, warmup, batches, windows):
    """`{name: [img/s per window]}`, the pipelines' windows alternated (a noisy machine's
    drift lands on all of them alike).

    Each window opens its own iterator, warms it up and closes it: an open
    tf.data iterator keeps filling its prefetch buffers in the background, and
    the next window would drain them at memory speed.
    """
    rates = {name: [] for name in pipelines}
    for _ in range(windows):
        for name, ds in pipelines.items():
            it = iter(ds)
            for _ in range(warmup):
                next(it)
            start = time.perf_counter()
            for _ in range(batches):
                x, _ = next(it)
            x.numpy()
            rates[name].append(batches * batch / (time.perf_counter() - start))
            del it
    return rates


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=227)
    parser.add_argument("--warmup", type=int, default=3, help="untimed batches")
    parser.add_argument("--batches", type=int, default=8, help="batches per timed window")
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--only", default="imagenet-sample,imagenet-500,cifar10")
    parser.add_argument(
        "--tmp",
        default=os.path.join(tempfile.gettempdir(), "alexnet_keras_bench_input"),
        help="where imagenet-500 is written (kept for the next run)",
    )
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)

    sample = SHARED / "data" / "imagenet-sample"
    sources = {
        "imagenet-sample": lambda: (f"folder:{sample}", None),
        "imagenet-500": lambda: (
            f"folder:{write_large_copy(sample, pathlib.Path(args.tmp))}",
            None,
        ),
        "cifar10": lambda: ("cifar10", str(SHARED / "data" / "tfds")),
    }
    rows = []
    for label in args.only.split(","):
        spec, data_dir = sources[label]()
        start = time.perf_counter()
        splits, info = open_dataset(spec, data_dir=data_dir)
        opened = time.perf_counter() - start
        common = dict(input_size=args.size, batch_size=args.batch, preprocessing="bvlc")
        start = time.perf_counter()
        train = train_pipeline(splits["train"], **common).repeat()
        setup = time.perf_counter() - start  # a small TFDS set is read into memory here
        pipelines = {
            "train": train,  # the crop's window only (data.crop_decode)
            "train-whole": train_pipeline(splits["train"], fused_crop=False, **common).repeat(),
            "eval": eval_pipeline(splits["eval"], **common).repeat(),
        }
        measured = windows_img_s(pipelines, args.batch, args.warmup, args.batches, args.windows)
        for kind, rates in measured.items():
            rows.append(
                {
                    "dataset": label,
                    "pipeline": kind,
                    "img_s": statistics.median(rates),
                    "windows_img_s": rates,
                    "open_s": opened,
                    "train_setup_s": setup,
                    "examples": info.num_examples[kind.split("-")[0]],
                }
            )

    cores = len(os.sched_getaffinity(0))
    print(
        f"{cores} CPUs, TensorFlow {tf.__version__}, batch {args.batch}, crop "
        f"{args.size}, median of {args.windows} alternated windows x {args.batches} batches"
    )
    print(f"{'dataset':16s} {'pipeline':11s} {'img/s':>7s} {'per core':>8s} {'x trainer':>9s}"
          "  windows")  # fmt: skip
    for row in rows:
        spread = ", ".join(f"{r:.0f}" for r in row["windows_img_s"])
        print(
            f"{row['dataset']:16s} {row['pipeline']:11s} {row['img_s']:7.1f} "
            f"{row['img_s'] / cores:8.1f} {row['img_s'] / TRAINER_IMG_S:8.1f}x  ({spread})"
        )
    for label in dict.fromkeys(row["dataset"] for row in rows):
        rate = {r["pipeline"]: r["img_s"] for r in rows if r["dataset"] == label}
        fused, whole = rate["train"], rate["train-whole"]
        print(f"{label}: the window-only crop is {fused / whole:.2f}x the whole-image train path")
    for label in dict.fromkeys(row["dataset"] for row in rows):
        row = next(r for r in rows if r["dataset"] == label)
        print(
            f"{label}: open_dataset {row['open_s']:.2f} s, "
            f"train_pipeline setup {row['train_setup_s']:.2f} s"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cpus": os.cpu_count(), "batch": args.batch, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

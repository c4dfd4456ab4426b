"""Serving throughput and latency: the exported `serving_default` against the raw model.

Exports random-weight `bvlc` weights at 227 (or takes `--saved-model`), loads
the SavedModel as TF Serving would (`tf.saved_model.load`), and times, in
alternating rounds in this one process:

- `raw`: the in-process Keras model on ready-made preprocessed 227 crops
  (`tf.function` of `model(x, training=False)`), the ceiling for serving;
- `serve@B`: `serving_default` on B JPEG files of `--data` (encoded bytes in,
  decode + resize + crop + mean + model + top-5 out), B = 1, 8, 64;
- `decode@64`: the graph's decode/resize/crop part alone on 64 images, to see
  whether it could be the bottleneck.

Every call takes the next images of the folder, so the decoder sees the real
mix of sizes. Then single-image latency: `--requests` sequential one-image
calls, p50/p99, alternated with the raw model on one ready crop.

The sample's images all have a shorter side of 256, which the graph passes
through unresized (bit-exact); `--shorter 500` re-encodes them larger first,
so that every request is resized too.

Usage:
    python benchmarks/bench_serving.py [--data ../shared/data/imagenet-sample]
        [--shorter 500] [--rounds 3] [--calls 5] [--requests 200]
        [--saved-model DIR] [--json out.json]
"""

import argparse
import importlib.util
import itertools
import json
import os
import pathlib
import statistics
import sys
import tempfile

import alexnet_keras  # noqa: F401  (first: sets the TF environment before TF loads)

# isort: split
import numpy as np
import tensorflow as tf

from alexnet_keras import weights as weights_file
from alexnet_keras.preprocessing import class_labels, preprocess_fn
from alexnet_keras.serving.export import export_model
from alexnet_keras.serving.graph import ServingModule

HERE = pathlib.Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "imagenet-sample"


def sibling(name):
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def percentile(values, q):
    return float(np.percentile(np.asarray(values), q))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="a folder of JPEGs")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=5, help="timed calls of each, per round")
    parser.add_argument("--batches", default="1,8,64")
    parser.add_argument("--requests", type=int, default=200, help="single-image latency calls")
    parser.add_argument("--saved-model", help="an export to time instead of a fresh one")
    parser.add_argument("--weights", help="weights for the raw model (and the fresh export)")
    parser.add_argument("--shorter", type=int, help="re-encode the images at this shorter side "
                        "first (the sample's is 256, which needs no resize)")  # fmt: skip
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    bm = sibling("bench_model")
    batches = [int(b) for b in args.batches.split(",")]
    big = max(batches)

    tmp = tempfile.TemporaryDirectory(prefix="bench_serving-")
    if args.shorter:
        folder = pathlib.Path(tmp.name, f"sample-{args.shorter}")
        args.data = str(sibling("bench_input").write_large_copy(pathlib.Path(args.data), folder,
                                                                 shorter=args.shorter))  # fmt: skip
    files = sorted(p for p in pathlib.Path(args.data).rglob("*") if p.suffix.lower() in
                   (".jpeg", ".jpg"))  # fmt: skip
    if not files:
        print(f"Error: {args.data}: no JPEG files", file=sys.stderr)
        return 2
    jpegs = [f.read_bytes() for f in files]
    print(f"machine: {os.cpu_count()} cores, {bm.cpu_flags()}; tensorflow {tf.__version__}, "
          f"TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS')}, "
          f"GPUs: {len(tf.config.list_physical_devices('GPU'))}")  # fmt: skip
    kib = np.mean([len(j) for j in jpegs]) / 1024
    print(f"data: {len(files)} JPEGs from {args.data}, mean {kib:.0f} KiB")

    weights = args.weights
    if weights is None:
        weights = weights_file.save_weights(alexnet_keras.AlexNet(),
                                            os.path.join(tmp.name, "bvlc.weights.h5"),
                                            variant="bvlc")  # fmt: skip
    export_dir = args.saved_model
    if export_dir is None:
        report = export_model(weights, os.path.join(tmp.name, "alexnet", "1"), top_k=5)
        export_dir = str(report.output)
        print(f"exported in {report.seconds:.1f} s: {export_dir}")
    serving_default = tf.saved_model.load(export_dir).signatures["serving_default"]

    model = alexnet_keras.AlexNet(weights=weights)
    meta = weights_file.read_metadata(weights)
    module = ServingModule(model, preprocessing=meta["preprocessing"], labels=class_labels(meta))
    raw = tf.function(lambda x: model(x, training=False))
    decode = tf.function(module.decode_batch)
    crops = decode(tf.constant(jpegs[:big]))
    x = preprocess_fn(meta["preprocessing"], 227)(crops)  # the raw model's ready-made input

    stream = itertools.cycle(range(len(jpegs)))

    def next_batch(n):
        return tf.constant([jpegs[next(stream)] for _ in range(n)])

    calls = {"raw": lambda: raw(x).numpy()}
    for b in batches:
        calls[f"serve@{b}"] = (lambda b=b: serving_default(image_bytes=next_batch(b))
                               ["top_k_indices"].numpy())  # fmt: skip
    calls[f"decode@{big}"] = lambda: decode(next_batch(big)).numpy()
    sizes = {"raw": big, f"decode@{big}": big, **{f"serve@{b}": b for b in batches}}
    for fn in calls.values():  # tracing and first-call costs stay out of the timings
        fn()
        fn()

    # Call by call in alternation: every figure sees the same machine noise, and
    # the ratio is taken per pair of neighbouring raw / serve calls.
    times = {name: [] for name in calls}
    for r in range(args.rounds):
        for _ in range(args.calls):
            for name, fn in calls.items():
                times[name] += bm.time_calls(fn, 1)
        line = [
            f"{n} {sizes[n] / statistics.median(t[-args.calls :]):.1f}" for n, t in times.items()
        ]
        print(f"  round {r + 1} img/s: " + ", ".join(line), flush=True)
    pairs = [
        raw_t / serve_t for raw_t, serve_t in zip(times["raw"], times[f"serve@{big}"], strict=True)
    ]

    # Single-image latency, alternated with the raw model on one ready crop.
    one = x[:1]
    latency, raw_latency = [], []
    for _ in range(args.requests):
        latency += bm.time_calls(
            lambda: serving_default(image_bytes=next_batch(1))["top_k_indices"].numpy(), 1
        )
        raw_latency += bm.time_calls(lambda: raw(one).numpy(), 1)
    latency = [t * 1000 for t in latency]
    raw_latency = [t * 1000 for t in raw_latency]

    results = {name: sizes[name] / statistics.median(t) for name, t in times.items()}
    print(f"\n{'call':12s} {'img/s':>8s}   (median of {args.rounds} x {args.calls} calls)")
    for name, value in results.items():
        print(f"{name:12s} {value:8.1f}")
    ratio = statistics.median(pairs)
    p50, p99 = percentile(latency, 50), percentile(latency, 99)
    print(
        f"\nserving_default@{big} / raw model@{big}: {ratio:.3f}, median of {len(pairs)} "
        f"neighbouring pairs (min {min(pairs):.3f}, max {max(pairs):.3f}; target >= 0.80)"
    )
    print(f"decode+resize+crop alone @{big}: {results[f'decode@{big}'] / results['raw']:.1f}x "
          "the raw model's img/s")  # fmt: skip
    raw50, raw99 = percentile(raw_latency, 50), percentile(raw_latency, 99)
    print(f"single-image latency over {args.requests} requests: p50 {p50:.1f} ms, "
          f"p99 {p99:.1f} ms; the raw model alone on one crop: p50 {raw50:.1f} ms, "
          f"p99 {raw99:.1f} ms")  # fmt: skip
    if args.json:
        out = {"img_s": results, "ratio": ratio, "latency_ms": {"p50": p50, "p99": p99},
               "raw_latency_ms": {"p50": raw50, "p99": raw99},
               "machine": bm.cpu_flags(), "cores": os.cpu_count()}  # fmt: skip
        pathlib.Path(args.json).write_text(json.dumps(out, indent=2))
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())

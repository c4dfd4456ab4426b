"""The first request with and without the warm-up file, in TensorFlow's C++ session.

TF Serving replays `assets.extra/tf_serving_warmup_requests` after loading a
version and before serving it. This runs the loader and session that
`tensorflow_model_server` embeds (`tests/serving/serve_c_api.c`:
`TF_LoadSessionFromSavedModel`, `TF_SessionRun`), in fresh processes, for each
batch size and round, in alternating order:

- cold: a client's request of B real JPEGs, run `--runs` times;
- warmed: the export's warm-up requests first (read back with
  tensorflow-serving-api), then the same client's request.

Each round takes the next JPEGs of `--data`. Prints medians over the rounds:
the client's first run, its later runs, and the warm-up replay.

Usage:
    python benchmarks/bench_warmup.py [--saved-model DIR] [--batches 1,8] [--rounds 3]
        [--runs 3] [--data ../shared/data/imagenet-sample]
"""

import argparse
import importlib.util
import os
import pathlib
import statistics
import sys
import tempfile

import alexnet_keras  # noqa: F401  (first: sets the TF environment before TF loads)

# isort: split
import tensorflow as tf

from alexnet_keras import weights as weights_file
from alexnet_keras.serving.export import export_model
from alexnet_keras.serving.warmup import WARMUP_FILE

HERE = pathlib.Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "imagenet-sample"


def load_c_api():
    spec = importlib.util.spec_from_file_location("c_api", HERE.parent / "tests" / "c_api.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def warmup_requests(folder, tmp):
    """The export's warm-up requests, each as a list of image files under `tmp`."""
    from tensorflow_serving.apis import prediction_log_pb2

    requests = []
    for i, record in enumerate(tf.data.TFRecordDataset(str(folder / "assets.extra" / WARMUP_FILE))):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        images = tf.make_ndarray(log.predict_log.request.inputs["image_bytes"])
        requests.append([tmp / f"warmup-{i}-{j}.jpg" for j in range(len(images))])
        for file, data in zip(requests[-1], images, strict=True):
            file.write_bytes(data)
    return requests


def timed(c_api, binary, folder, requests, runs):
    served, stderr = c_api.run(binary, folder, requests, runs=runs)
    if served is None:
        raise RuntimeError(stderr)
    return c_api.timings(stderr)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--saved-model", help="an export with a warm-up file (default: a fresh "
                        "export of random bvlc weights)")  # fmt: skip
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="a folder of JPEGs")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3, help="runs of the client's request")
    args = parser.parse_args(argv)
    try:
        import tensorflow_serving  # noqa: F401
    except ImportError:
        print("Error: needs pip install tensorflow-serving-api", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="bench_warmup-") as tmp:
        return run(args, pathlib.Path(tmp))


def run(args, tmp):
    c_api = load_c_api()
    binary = c_api.build(tmp)
    folder = pathlib.Path(args.saved_model) if args.saved_model else None
    if folder is None:
        weights = weights_file.save_weights(alexnet_keras.AlexNet(), tmp / "bvlc.weights.h5",
                                            variant="bvlc")  # fmt: skip
        folder = export_model(weights, tmp / "alexnet" / "1").output
    warmups = warmup_requests(folder, tmp)
    files = sorted(p for p in pathlib.Path(args.data).rglob("*") if p.suffix.lower() == ".jpeg")
    print(f"{os.cpu_count()} cores, tensorflow {tf.__version__}; {folder}; warm-up batches "
          f"{[len(r) for r in warmups]}; {args.rounds} rounds, fresh process each")  # fmt: skip
    print("| client batch | first run cold | first run warmed | later runs | warm-up replay |")
    print("|---|---|---|---|---|")
    for batch in [int(b) for b in args.batches.split(",")]:
        cold, warmed, later, replay = [], [], [], []
        for r in range(args.rounds):
            client = files[(r * batch) % len(files) :][:batch]
            for kind in ("cold", "warmed") if r % 2 == 0 else ("warmed", "cold"):
                requests = [client] if kind == "cold" else [*warmups, client]
                ms = timed(c_api, binary, folder, requests, args.runs)
                last = len(requests)
                (cold if kind == "cold" else warmed).append(ms[(last, 1)])
                later += [ms[(last, k)] for k in range(2, args.runs + 1)]
                if kind == "warmed":
                    replay.append(sum(ms[(q, 1)] for q in range(1, last)))
        print(
            f"| {batch} | {statistics.median(cold):.0f} ms | {statistics.median(warmed):.0f} ms "
            f"| {statistics.median(later):.0f} ms | {statistics.median(replay):.0f} ms |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

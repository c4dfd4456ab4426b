"""Conversion speed and memory: full-size `bvlc_alexnet.npy` and `.caffemodel` -> `.weights.h5`.

Writes a random full-size AlexNet (60,965,224 float32 values, 233 MB) in the
releases' real byte formats: the `.npy` as caffe-tensorflow's Python 2 wrote
it (a protocol-2 pickle with BINSTRING array data, through the package's
public `caffe.npy.write_npy`) and the `.caffemodel` as Caffe's protobuf
writer does (`tests/caffe_files.py`, the one real-format Caffe writer, kept
independent of the readers and loaded here from its file). Each conversion runs as the user runs it,
`python -m alexnet_keras convert SRC -o OUT`, in a fresh process; the table
gives the median wall time and the child's peak RSS over `--repeats` runs,
then an in-process breakdown of the stages (which one dominates).

Usage:
    python benchmarks/bench_convert.py [--repeats 3] [--dir /tmp/bench_convert] [--json F]
"""

import argparse
import importlib.util
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from alexnet_keras import registry
from alexnet_keras.caffe import mapper
from alexnet_keras.caffe.convert import read_source
from alexnet_keras.caffe.npy import write_npy
from alexnet_keras.weights import write_arrays

ROOT = pathlib.Path(__file__).resolve().parents[1]

CAFFE_SHAPES = {
    "conv1": (96, 3, 11, 11), "conv2": (256, 48, 5, 5), "conv3": (384, 256, 3, 3),
    "conv4": (384, 192, 3, 3), "conv5": (256, 192, 3, 3), "fc6": (4096, 9216),
    "fc7": (4096, 4096), "fc8": (1000, 4096),
}  # fmt: skip


def random_params(seed=0):
    rng = np.random.default_rng(seed)
    return {
        name: [
            rng.standard_normal(shape, dtype=np.float32) * 0.01,
            rng.standard_normal(shape[0], dtype=np.float32),
        ]
        for name, shape in CAFFE_SHAPES.items()
    }


def to_caffe_tensorflow(params):
    """caffe-tensorflow's transform (formats.md §4), written out here for the fixture."""
    out = {}
    for name, (w, b) in params.items():
        if w.ndim == 4:
            k = w.transpose(2, 3, 1, 0)
        elif name == "fc6":
            k = w.reshape(-1, 256, 6, 6).transpose(2, 3, 1, 0).reshape(9216, -1)
        else:
            k = w.T
        out[name] = [np.ascontiguousarray(k), b]
    return out


def caffe_writer():
    """`tests/caffe_files.py` by its path (not through `sys.path`): Caffe's protobuf bytes."""
    spec = importlib.util.spec_from_file_location("caffe_files", ROOT / "tests" / "caffe_files.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_fixtures(folder):
    params = random_params()
    npy = folder / "bvlc_alexnet.npy"
    write_npy(npy, to_caffe_tensorflow(params))
    caffemodel = folder / "bvlc_alexnet.caffemodel"
    caffe_files = caffe_writer()
    caffe_files.write_caffemodel(caffemodel, caffe_files.alexnet_layers(params))
    return {"npy": npy, "caffemodel": caffemodel}


def run_cli(src, out):
    """One conversion in a fresh process: (wall seconds, peak RSS MiB, exit code)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "alexnet_keras", "convert", str(src), "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "ALEXNET_KERAS_HOME": str(out.parent / "home")},
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode()
    if proc.returncode != 0:
        raise SystemExit(f"convert failed ({proc.returncode}): {err}")
    return wall, usage.ru_maxrss / 1024  # Linux reports KiB


def stages(src, out):
    """The same conversion, stage by stage, in this process."""
    times = {}
    t = time.perf_counter()
    net = read_source(src)
    times["read"] = time.perf_counter() - t
    t = time.perf_counter()
    registry.file_digests(src)
    times["sha1+sha256"] = time.perf_counter() - t
    t = time.perf_counter()
    mapping = mapper.to_keras(net)
    times["map+check"] = time.perf_counter() - t
    t = time.perf_counter()
    write_arrays(out, mapping.arrays, variant=mapping.variant)
    times["write .h5"] = time.perf_counter() - t
    return times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", type=pathlib.Path, default=None)
    parser.add_argument("--json", type=pathlib.Path, default=None)
    parser.add_argument("--fixtures-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    folder = args.dir or pathlib.Path(tempfile.mkdtemp(prefix="bench_convert."))
    folder.mkdir(parents=True, exist_ok=True)
    if args.fixtures_only:
        write_fixtures(folder)
        return 0
    # In a child process: a fork copies this process's pages into the child's
    # peak RSS, so the parent must stay small before it starts conversions.
    t = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--fixtures-only", "--dir", str(folder)], check=True)
    sources = {"npy": folder / "bvlc_alexnet.npy", "caffemodel": folder / "bvlc_alexnet.caffemodel"}
    print(f"fixtures written in {time.perf_counter() - t:.1f} s to {folder}")
    results = {}
    for fmt, src in sources.items():
        size = src.stat().st_size / 2**20
        out = folder / f"{fmt}.weights.h5"
        runs = [run_cli(src, out) for _ in range(args.repeats)]
        wall = statistics.median(r[0] for r in runs)
        rss = statistics.median(r[1] for r in runs)
        breakdown = stages(src, folder / f"{fmt}.stages.weights.h5")
        results[fmt] = {"file_mib": size, "wall_s": wall, "peak_rss_mib": rss,
                        "runs": runs, "stages_s": breakdown}  # fmt: skip
        print(
            f"{fmt:10s} {size:6.0f} MiB  wall {wall:5.2f} s (median of {args.repeats})  "
            f"peak RSS {rss:6.0f} MiB   stages: "
            + ", ".join(f"{k} {v:.2f} s" for k, v in breakdown.items())
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

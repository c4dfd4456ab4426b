"""Export speed: ONNX fp32 against int8 and bf16 in the same runtime, and LiteRT, in one run.

Exports one weights file three times with `export_model` (`--format onnx`,
then `--quantize int8` and `--quantize bf16`, calibrated and gated on
`--calibration`; `force=True`, since random weights may miss the gate and
the speed is the question here), then times, in alternating rounds in this
one process, with the order rotated each round:

- ONNX Runtime (CPU provider, default threads): `ort-fp32`, `ort-int8`
  (QDQ, u8s8 integer kernels), `ort-bf16` (bf16-stored weights: ORT folds the
  casts at load time and computes in fp32, so it should equal fp32);
- OpenVINO, if installed, on the same fp32 file: `ov-fp32`
  (`INFERENCE_PRECISION_HINT=f32`) and `ov-bf16` (`bf16`: AVX-512 BF16 / AMX),
  and `ov-int8` on the int8 file;
- LiteRT, if `ai-edge-litert` is installed: `litert-fp32`, the `--format
  tflite` export on `ai_edge_litert`'s interpreter (XNNPACK, default threads),
  at batch 1 only (its signature takes one image).

Each round times `--calls` calls of one batch per model; the table gives the
median over rounds of each round's median call, and the ratio to the fp32
median of the same runtime. Inputs are real images (`--data`), resized as the
weights' protocol says.

Usage:
    python benchmarks/bench_export.py [--weights W.weights.h5]
        [--calibration ../shared/data/cifar10-mini] [--data ../shared/data/imagenet-sample]
        [--batch 1 8] [--rounds 5] [--calls 10] [--json out.json]
"""

import argparse
import json
import pathlib
import statistics
import sys
import tempfile
import time

import alexnet_keras  # noqa: F401  (first: sets the TF environment before TF loads)

# isort: split
import numpy as np

from alexnet_keras import weights as weights_file
from alexnet_keras.serving.export import export_model

try:  # the LiteRT runtime is an optional extra
    import ai_edge_litert  # noqa: F401

    LITERT = True
except ImportError:
    LITERT = False

HERE = pathlib.Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data"


def export_all(weights, tmp, calibration):
    paths, reports = {}, {}
    top_k = min(5, weights_file.read_metadata(weights)["classes"])
    for mode in (None, "int8", "bf16"):
        path = tmp / f"{mode or 'fp32'}.onnx"
        gate = {"quantize": mode, "calibration": calibration, "force": True} if mode else {}
        report = export_model(weights, path, fmt="onnx", top_k=top_k, **gate)
        paths[mode or "fp32"], reports[mode or "fp32"] = path, report
    if LITERT:
        path = tmp / "fp32.tflite"
        paths["litert"] = path
        reports["litert"] = export_model(weights, path, fmt="tflite", top_k=top_k)
    return paths, reports


def runners(paths):
    import onnxruntime as ort

    out = {}
    if "litert" in paths:
        from alexnet_keras.serving.lite import interpreter

        runner = interpreter(paths.pop("litert")).get_signature_runner("serving_default")
        out["litert-fp32"] = lambda x, r=runner: r(images=x)
    for mode, path in paths.items():
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        out[f"ort-{mode}"] = lambda x, s=sess: s.run(["probabilities"], {"images": x})
    try:
        import openvino as ov
    except ImportError:
        return out
    core = ov.Core()
    for name, path, hint in [("ov-fp32", paths["fp32"], "f32"), ("ov-bf16", paths["fp32"], "bf16"),
                             ("ov-int8", paths["int8"], "f32")]:  # fmt: skip
        compiled = core.compile_model(core.read_model(str(path)), "CPU",
                                      {"INFERENCE_PRECISION_HINT": hint})  # fmt: skip
        request = compiled.create_infer_request()
        out[name] = lambda x, r=request: r.infer({"images": x})
    return out


def time_rounds(run, batch, rounds, calls):
    names = list(run)
    per_round = {n: [] for n in names}
    if len(batch) > 1:  # LiteRT's signature takes one image
        names = [n for n in names if not n.startswith("litert")]
        per_round = {n: [] for n in names}
    for r in range(rounds):
        for n in names[r % len(names) :] + names[: r % len(names)]:
            run[n](batch)  # a warm call: shapes and caches
            times = []
            for _ in range(calls):
                start = time.perf_counter()
                run[n](batch)
                times.append(time.perf_counter() - start)
            per_round[n].append(statistics.median(times))
    return {n: statistics.median(v) for n, v in per_round.items()}


def table(results, sizes):
    lines = ["| model | batch | ms / batch | images / s | vs fp32 (same runtime) | file |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for batch, medians in results.items():
        for name, seconds in medians.items():
            base = medians[f"{name.split('-')[0]}-fp32"]
            size = sizes[name.split("-")[1]] if name.startswith("ort") or name == "ov-int8" else ""
            size = sizes["litert"] if name == "litert-fp32" else size
            lines.append(f"| {name} | {batch} | {1e3 * seconds:.1f} | {batch / seconds:.1f} | "
                         f"{base / seconds:.2f}x | {size} |")  # fmt: skip
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=None)
    parser.add_argument("--calibration", default=str(SHARED / "cifar10-mini"))
    parser.add_argument("--data", default=str(SHARED / "imagenet-sample"))
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        tmp = pathlib.Path(tmp)
        weights = args.weights
        if weights is None:  # random 1000-class bvlc weights, the ONNX zoo's model shape
            weights = weights_file.save_weights(alexnet_keras.AlexNet(), tmp / "b.weights.h5",
                                                variant="bvlc", protocol="bvlc")  # fmt: skip
        paths, reports = export_all(weights, tmp, args.calibration)
        for mode, report in reports.items():
            print(f"--- {mode}\n{report}", flush=True)
        protocol = reports["fp32"].protocol
        files = sorted(pathlib.Path(args.data).glob("*/*.JPEG"))[:64]
        images = [alexnet_keras.load_image(f, protocol=protocol)[:256, :256] for f in files]
        sizes = {m: f"{p.stat().st_size / 2**20:.0f} MiB" for m, p in paths.items()}
        run = runners(paths)
        results = {}
        for b in args.batch:
            batch = np.stack(images[:b]).astype(np.float32)
            results[b] = time_rounds(run, batch, args.rounds, args.calls)
    print(table(results, sizes))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps({str(b): r for b, r in results.items()}))
    return results


if __name__ == "__main__":
    sys.exit(main() and 0)

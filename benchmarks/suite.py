"""Every speed figure of the project on the current device, in one command, inside a budget.

On a GPU (a machine lent for minutes: one prepared command must get it all):

- `model`: train and inference img/s of `bvlc` at 227, float32 / mixed bf16 /
  mixed fp16, XLA `jit_compile` off and on, batch 128 and 256;
- `mirrored`: the same train step under `MirroredStrategy` over every local GPU;
- `eval-last-batch`: a distributed evaluation whose last batch is smaller than
  the replica count (tensorflow#48057 reports LRN aborting there on 2 GPUs);
- `input`: `train_pipeline` img/s on real JPEGs (the crop's window only, and the
  whole-image path) against the trainer's img/s;
- `chm-80sec`: `train --chm-layers` 80sec with r434's drop after 8 epochs: the
  wall time and the test error it reaches (the 2011 claim: <= 26 % in 80 s);
- `serving`: the SavedModel signature's img/s on JPEG bytes.

On a CPU the same sections run; `--tiny` shrinks them to seconds (the default
tests run it so the script never rots). Two logical CPU devices stand in for
two GPUs, so the mirrored and last-batch sections run there too.

`--budget-s` (default 480) is split over the sections by weight; a section
measures one step, then fits its repeats in its share, and the run ends
inside the budget. The table goes to stdout, everything to `--json`.

GPU set-up, on a bare machine: `pip install -e '.[gpu]'` (TensorFlow's CUDA
libraries as pip wheels: `tensorflow[and-cuda]`), then
`python benchmarks/suite.py --json suite.json`.

Usage:
    python benchmarks/suite.py [--budget-s 480] [--tiny] [--only model,input]
        [--data ../shared/data/imagenet-sample] [--json suite.json]
"""

import argparse
import json
import os
import pathlib
import platform
import sys
import tempfile
import time

import alexnet_keras  # noqa: F401  (first: sets the TF environment before TF loads)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
SHARED = pathlib.Path(os.environ.get("ALEXNET_KERAS_SHARED", HERE.parents[1] / "shared"))
SECTIONS = {"model": 4, "mirrored": 1, "eval-last-batch": 0.5, "input": 1, "chm-80sec": 3,
            "serving": 1}  # budget weights  # fmt: skip
sys.path.insert(0, str(HERE))  # the section helpers live beside this script

import suite_sections as sections  # noqa: E402


class Budget:
    """The run's deadline and each section's share of what is left."""

    def __init__(self, seconds, weights):
        self.end = time.perf_counter() + seconds
        self.weights = dict(weights)

    def share(self, name):
        """Seconds for section `name`: its weight's part of the time left."""
        left = max(0.0, self.end - time.perf_counter())
        total = sum(self.weights.values())
        part = left * self.weights.pop(name) / total if total else 0.0
        return part


def device_note():
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        names = [tf.config.experimental.get_device_details(g).get("device_name", "GPU")
                 for g in gpus]  # fmt: skip
        return f"{len(gpus)} GPU: {', '.join(names)}"
    return (
        f"CPU: {platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} cores"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget-s", type=float, default=480.0)
    parser.add_argument("--tiny", action="store_true", help="seconds-long settings (tests)")
    parser.add_argument("--only", default=",".join(SECTIONS))
    parser.add_argument("--data", default=str(SHARED / "data" / "imagenet-sample"))
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    if not tf.config.list_physical_devices("GPU"):  # two replicas for the strategy sections
        cpu = tf.config.list_physical_devices("CPU")[0]
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * 2
            )
        except RuntimeError:  # TensorFlow already started (a test calling main twice)
            pass
    names = [n for n in args.only.split(",") if n]
    unknown = sorted(set(names) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections {unknown}; choose from {list(SECTIONS)}")
    budget = Budget(args.budget_s, {n: SECTIONS[n] for n in names})
    context = sections.Context(tiny=args.tiny, data=pathlib.Path(args.data),
                               tmp=pathlib.Path(tempfile.mkdtemp(prefix="suite-")))  # fmt: skip
    print(f"{device_note()}; TensorFlow {tf.__version__}; budget {args.budget_s:.0f} s"
          + ("; tiny settings" if args.tiny else ""))  # fmt: skip
    rows = []
    for name in names:
        share = budget.share(name)
        start = time.perf_counter()
        try:
            found = getattr(sections, name.replace("-", "_"))(context, share)
        except Exception as e:  # noqa: BLE001 - one failed section must not lose the others
            found = [{"section": name, "setting": "failed", "value": None, "unit": "",
                      "note": f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"}]  # fmt: skip
        for row in found:
            row.setdefault("section", name)
            rows.append(row)
            value = "-" if row["value"] is None else f"{row['value']:,.1f}"
            print(f"{row['section']:16s} {row['setting']:34s} {value:>10s} {row['unit']:8s} "
                  f"{row.get('note', '')}")  # fmt: skip
        print(f"  ({name}: {time.perf_counter() - start:.0f} s of {share:.0f})", flush=True)
    took = time.perf_counter() - began
    print(f"suite: {took:.0f} s of the {args.budget_s:.0f} s budget")
    if args.json:
        result = {"device": device_note(), "tensorflow": tf.__version__, "tiny": args.tiny,
                  "budget_s": args.budget_s, "seconds": took, "rows": rows}  # fmt: skip
        pathlib.Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

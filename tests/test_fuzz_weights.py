"""Seeded mutations of a small weights file: every outcome is a clean load or a one-line refusal.

A real AlexNet file is 228 MB (fc6 alone is 151 MB), too big to mutate
hundreds of times. The file fuzzed here is the smallest one that takes every
path of the reader: the metadata attribute, `layers/*/vars` groups with their
`name` attributes, float32 datasets, the model's top `vars` group. Read with
`kind="any"` (structure checks, no layer plan) it loads, arrays and all, so a
mutation can reach the array reads; read with the default kind it meets the
metadata schema and the plan check. libhdf5 parses the same structures in both.

Each mutation (bit flips, byte overwrites, a truncation) is read in the
sandboxed reader; many mutations share one test child, run under a timeout and
an RSS cap, with the reader's own time limit lowered so a libhdf5 hang costs
seconds. A crash of libhdf5 shows up as a refusal naming the signal.
"""

import json
import textwrap

import pytest

from tests.sandbox import assert_loaded, run_isolated

_FUZZ = textwrap.dedent(
    """
    import json, pathlib, random, sys
    import h5py, numpy as np
    from alexnet_keras import limits, weights

    limits.WEIGHTS_READ_SECONDS = 4
    root = pathlib.Path(sys.argv[1]); seed, count = int(sys.argv[2]), int(sys.argv[3])
    base = root / "base.weights.h5"
    meta = {"variant": "bvlc", "classes": 2, "input_size": 227,
            "class_names": ["a", ["n1", "b"]],
            "preprocessing": {"color_order": "BGR", "mean": [1.0, 2.0, 3.0]}}
    with h5py.File(base, "w") as f:
        f.attrs["alexnet_keras"] = json.dumps(meta)
        for group, name, shapes in (("conv2d", "conv1", [(3, 3, 3, 4), (4,)]),
                                    ("re_lu", "relu1", []),
                                    ("dense", "fc8", [(36, 2), (2,)])):
            g = f.create_group(f"layers/{group}/vars")
            g.attrs["name"] = name
            for i, s in enumerate(shapes):
                g.create_dataset(str(i), data=np.arange(np.prod(s), dtype=np.float32).reshape(s))
        f.create_group("vars").attrs["name"] = "alexnet_bvlc"
    data = base.read_bytes()
    assert weights.read_arrays(base, kind="any")["fc8"][0].shape == (36, 2)
    rng = random.Random(seed)
    outcomes = {"loaded": 0, "refused": 0, "bad": []}
    for n in range(count):
        mutated = bytearray(data)
        kind = rng.choice(["flip", "flip", "overwrite", "truncate"])
        if kind == "flip":
            for _ in range(rng.randint(1, 8)):
                i = rng.randrange(len(mutated))
                mutated[i] ^= 1 << rng.randrange(8)
        elif kind == "overwrite":
            i = rng.randrange(len(mutated))
            fill = rng.choice([b"\\xff", b"\\x00", bytes([rng.randrange(256)])])
            mutated[i:i + rng.randint(1, 16)] = fill * rng.randint(1, 16)
        else:
            mutated = mutated[:rng.randrange(1, len(mutated))]
        path = root / f"m{n}.weights.h5"
        path.write_bytes(bytes(mutated))
        for read in (lambda p: weights.read_arrays(p, kind="any"), weights.read_metadata):
            try:
                read(path)
                outcomes["loaded"] += 1
            except ValueError as e:
                message = str(e)
                if not message.startswith(str(path) + ": ") or "\\n" in message:
                    outcomes["bad"].append([n, kind, message[:300]])
                outcomes["refused"] += 1
        path.unlink()
    print(json.dumps(outcomes))
    """
)


def _fuzz(tmp_path, seed, count, timeout):
    outcome = run_isolated(_FUZZ.replace("sys.argv[1]", repr(str(tmp_path)))
                           .replace("int(sys.argv[2])", str(seed))
                           .replace("int(sys.argv[3])", str(count)),
                           timeout=timeout, rss_mb=1200)  # fmt: skip
    assert_loaded(outcome)
    result = json.loads(outcome.stdout.strip().splitlines()[-1])
    assert not result["bad"], result["bad"]
    assert result["loaded"] + result["refused"] == 2 * count
    return result


def test_a_seeded_handful_of_mutations_load_or_are_refused(tmp_path):
    _fuzz(tmp_path, seed=14, count=12, timeout=120)


@pytest.mark.slow
def test_hundreds_of_mutations_load_or_are_refused(tmp_path):
    result = _fuzz(tmp_path, seed=2012, count=300, timeout=900)
    assert result["refused"] > 100, result  # the mutations do reach the checks

"""Seeded mutations of a small legacy `.npy`: each loads cleanly or is refused in one line.

The file is the real form (`caffe.npy.write_npy`: a 0-d object array holding
a dict of `[W, b]` lists, pickled as Python 2 numpy did), and its dict-of-dicts
flavour. The mutations are bit flips, byte overwrites, truncations, splices,
inserted opcodes and huge length fields. Many run in ONE sandboxed child that
classifies each outcome and prints a JSON summary; a segfault, a hang or
memory past the cap kills the child, and the test names the mutation it was
on (the child writes each seed to a progress file before trying it).
"""

import json
import pathlib
import pickle
import random
import struct

import numpy as np
import pytest

from tests.npy_files import keras_to_npy_dict, py2_npy_bytes
from tests.sandbox import run_isolated

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Opcodes worth inserting: the ones that build, call, index the memo or claim lengths.
_OPCODES = [getattr(pickle, name) for name in (
    "MARK", "STOP", "POP", "DUP", "NONE", "REDUCE", "BUILD", "APPEND", "APPENDS", "SETITEM",
    "SETITEMS", "DICT", "LIST", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "EMPTY_DICT",
    "EMPTY_LIST", "EMPTY_TUPLE", "BINGET", "LONG_BINGET", "BINPUT", "LONG_BINPUT", "MEMOIZE",
    "BINSTRING", "SHORT_BINSTRING", "BINBYTES8", "BINUNICODE8", "LONG4", "FRAME", "OBJ",
    "NEWOBJ", "INST", "GLOBAL", "STACK_GLOBAL", "EMPTY_SET", "ADDITEMS", "FROZENSET",
    "BYTEARRAY8", "NEXT_BUFFER", "READONLY_BUFFER", "PERSID", "EXT1",
)]  # fmt: skip
_VALUES = [0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF]


def mutate(data, seed):
    """A deterministic mutation of `data`: one to three edits chosen by `seed`."""
    rng = random.Random(seed)
    out = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 3))):
        kind = rng.randrange(7)
        at = rng.randrange(len(out)) if out else 0
        if kind == 0:  # bit flips
            for _ in range(rng.randint(1, 4)):
                i = rng.randrange(len(out))
                out[i] ^= 1 << rng.randrange(8)
        elif kind == 1:  # byte overwrite
            out[at] = rng.choice(_VALUES) if rng.random() < 0.5 else rng.randrange(256)
        elif kind == 2:  # truncation
            del out[at:]
        elif kind == 3:  # splice: a chunk copied elsewhere
            start = rng.randrange(len(out))
            chunk = out[start : start + rng.randint(1, 64)]
            out[at:at] = chunk
        elif kind == 4:  # an opcode with random argument bytes
            op = rng.choice(_OPCODES) + bytes(rng.randrange(256) for _ in range(rng.randint(0, 9)))
            out[at:at] = op
        elif kind == 5:  # a huge length or index where one was
            out[at : at + 4] = struct.pack("<I", rng.choice((2**31 - 1, 2**32 - 1, 0xFFFFFFF0)))
        else:  # a run of one byte
            out[at : at + rng.randint(1, 32)] = bytes([rng.choice(_VALUES)]) * rng.randint(1, 32)
        if not out:
            out = bytearray(b"\x93")
    return bytes(out)


_CHILD = """
import json, sys
from alexnet_keras.caffe.npy import read_npy
from tests.test_fuzz_npy import mutate

source = open({source!r}, "rb").read()
path = {path!r}
progress = open({progress!r}, "w")
counts, bad = {{"loaded": 0, "refused": 0}}, []
for seed in range({start}, {stop}):
    progress.write(f"{{seed}}\\n")
    progress.flush()
    with open(path, "wb") as f:
        f.write(mutate(source, seed))
    try:
        read_npy(path)
        counts["loaded"] += 1
    except ValueError as e:
        message = str(e)
        if "\\n" in message or not message.startswith(path + ":"):
            bad.append([seed, "not one line naming the file: " + message[:300]])
        else:
            counts["refused"] += 1
    except BaseException as e:  # the point of the test: anything else is a finding
        bad.append([seed, f"{{type(e).__name__}}: {{e}}"[:300]])
print(json.dumps({{"counts": counts, "bad": bad}}))
"""


def _source(tmp_path, flavour):
    rng = np.random.default_rng(0)
    arrays = {
        "conv1": (rng.standard_normal((3, 3, 3, 4), np.float32), np.zeros(4, np.float32)),
        "fc6": (rng.standard_normal((8, 5), np.float32), np.arange(5, dtype=np.float32)),
    }
    path = tmp_path / f"{flavour}.npy"
    if flavour == "lists":
        from alexnet_keras.caffe.npy import write_npy

        write_npy(path, {name: list(pair) for name, pair in arrays.items()})
    else:
        path.write_bytes(py2_npy_bytes(keras_to_npy_dict(arrays, flavour="dicts")))
    return path


def _fuzz(tmp_path, flavour, start, stop):
    source = _source(tmp_path, flavour)
    progress = tmp_path / "progress"
    code = _CHILD.format(source=str(source), path=str(tmp_path / "mutant.npy"),
                         progress=str(progress), start=start, stop=stop)  # fmt: skip
    outcome = run_isolated(code, timeout=30 + (stop - start) // 10, rss_mb=600, cwd=ROOT)
    if outcome.returncode != 0 or outcome.timed_out or outcome.over_memory:
        seeds = progress.read_text().split() if progress.exists() else []
        last = seeds[-1] if seeds else "none"
        pytest.fail(
            f"{flavour}: the child died on seed {last} (of {start}..{stop - 1}); replay it "
            f"with mutate(source, {last}):\n" + outcome.describe()
        )
    summary = json.loads(outcome.stdout.strip().splitlines()[-1])
    assert not summary["bad"], f"{flavour}: {summary['bad']}"
    assert summary["counts"]["loaded"] + summary["counts"]["refused"] == stop - start
    return summary["counts"]


@pytest.mark.parametrize("flavour", ["lists", "dicts"])
def test_a_seeded_handful_of_mutations(flavour, tmp_path):
    counts = _fuzz(tmp_path, flavour, 0, 200)
    assert counts["refused"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("flavour", ["lists", "dicts"])
def test_hundreds_of_mutations(flavour, tmp_path):
    counts = _fuzz(tmp_path, flavour, 1000, 3000)
    assert counts["refused"] > 1000


def test_the_unmutated_sources_load(tmp_path):
    """The baseline: both sources load, so a refusal above is the mutation's doing."""
    from alexnet_keras.caffe.npy import read_npy

    for flavour in ("lists", "dicts"):
        net = read_npy(_source(tmp_path, flavour))
        assert [layer.name for layer in net.layers] == ["conv1", "fc6"]

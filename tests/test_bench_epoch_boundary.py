"""benchmarks/bench_epoch_boundary.py runs (tiny epochs), in both loops, and reports both kinds."""

import json

from tests.conftest import load_script


def test_bench_epoch_boundary_runs(tmp_path, capsys):
    module = load_script("benchmarks/bench_epoch_boundary.py")
    out = tmp_path / "boundary.json"
    assert module.main(["--epochs", "1", "--steps", "2", "--work", "1", "--json", str(out)]) == 0
    assert "end of loop" in capsys.readouterr().out
    results = json.loads(out.read_text())["results"]
    assert sorted(results) == ["autotuned", "prefetched"]
    assert all(r["steps_s"] > 0 and len(r["end_s"]) == 1 for r in results.values())


def test_bench_epoch_boundary_runs_keras_fit(tmp_path, capsys):
    module = load_script("benchmarks/bench_epoch_boundary.py")
    out = tmp_path / "fit.json"
    argv = [
        "--loop",
        "keras-fit",
        "--epochs",
        "2",
        "--steps",
        "2",
        "--work",
        "1",
        "--json",
        str(out),
    ]
    assert module.main(argv) == 0
    assert "epoch start to 1st batch" in capsys.readouterr().out
    results = json.loads(out.read_text())["results"]
    assert sorted(results) == ["autotuned", "prefetched"]
    # two epochs: the second's start is the one boundary
    assert all(r["steps_s"] > 0 and len(r["end_s"]) == 1 for r in results.values())

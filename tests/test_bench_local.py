"""benchmarks/bench_local.py runs (tiny sizes) and prints the local / conv ratio."""

import json

from tests.conftest import load_script


def test_bench_local_runs(tmp_path, capsys):
    module = load_script("benchmarks/bench_local.py")
    out = tmp_path / "local.json"
    argv = ["--batch", "2", "--size", "4", "--channels", "4", "--filters", "4", "--rounds", "1",
            "--repeats", "1", "--json", str(out)]  # fmt: skip
    assert module.main(argv) == 0
    assert "local / conv: fwd" in capsys.readouterr().out
    medians = json.loads(out.read_text())["medians_ms"]
    assert sorted(medians) == ["ConvnetLocal2D", "keras Conv2D"]

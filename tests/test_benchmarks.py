"""The benchmark scripts run (tiny settings; timings are never asserted)."""

import pytest

from tests.conftest import SHARED, load_script, require


@pytest.mark.slow
def test_bench_model_runs(tmp_path, capsys):
    module = load_script("benchmarks/bench_model.py")
    out = tmp_path / "bench.json"
    argv = ["--batch", "2", "--rounds", "1", "--steps", "1", "--warmup", "1"]
    assert module.main([*argv, "--only", "keras,keras-stock", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "GMAC forward" in printed and "keras-stock" in printed
    assert out.exists()


@pytest.mark.slow
def test_bench_convert_runs(tmp_path, capsys):
    module = load_script("benchmarks/bench_convert.py")
    out = tmp_path / "convert.json"
    assert module.main(["--repeats", "1", "--dir", str(tmp_path), "--json", str(out)]) == 0
    assert "peak RSS" in capsys.readouterr().out and out.exists()


@pytest.mark.slow
def test_bench_train_runs(tmp_path, capsys, imagenet_dir):
    module = load_script("benchmarks/bench_train.py")
    argv = ["--batch", "4", "--rounds", "1", "--steps", "1", "--data", str(imagenet_dir),
            "--model-dir", str(tmp_path)]  # fmt: skip
    assert module.main(argv) == 0
    assert "trainer / raw step" in capsys.readouterr().out


@pytest.mark.slow
def test_bench_serving_runs(tmp_path, capsys, imagenet_dir):
    module = load_script("benchmarks/bench_serving.py")
    out = tmp_path / "serving.json"
    argv = ["--rounds", "1", "--calls", "1", "--batches", "1,2", "--requests", "2",
            "--data", str(imagenet_dir), "--json", str(out)]  # fmt: skip
    assert module.main(argv) == 0
    assert "serving_default@2 / raw model@2" in capsys.readouterr().out and out.exists()


def test_bench_chm_train_runs(capsys):
    require(SHARED / "data" / "chm-release")
    module = load_script("benchmarks/bench_chm_train.py")
    argv = ["--nets", "80sec", "--batch", "8", "--rounds", "1", "--steps", "1",
            "--data", f"folder:{require(SHARED / 'data' / 'cifar10-mini')}"]  # fmt: skip
    assert module.main(argv) == 0
    assert "trainer / raw step" in capsys.readouterr().out


@pytest.mark.slow
def test_bench_backends_runs(tmp_path, capsys):
    module = load_script("benchmarks/bench_backends.py")
    out = tmp_path / "backends.json"
    argv = ["--batch", "2", "--rounds", "2", "--steps", "1", "--warmup", "1",
            "--backends", "tensorflow,jax,torch", "--json", str(out)]  # fmt: skip
    assert module.main(argv) == 0
    assert "tensorflow " in capsys.readouterr().out and out.exists()


def test_the_suite_runs_at_tiny_settings_inside_its_budget(tmp_path, capsys):
    """`benchmarks/suite.py` on this CPU, every section, seconds each: it never rots."""
    import json

    require(SHARED / "data" / "chm-release")
    module = load_script("benchmarks/suite.py")
    out = tmp_path / "suite.json"
    assert module.main(["--tiny", "--budget-s", "300", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["seconds"] <= 300
    sections = {row["section"] for row in result["rows"]}
    assert sections == {"model", "mirrored", "eval-last-batch", "input", "chm-80sec", "serving"}
    failed = [row for row in result["rows"] if row["setting"] == "failed"]
    assert not failed, failed
    assert "budget" in capsys.readouterr().out

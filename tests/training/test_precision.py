"""`--mixed-precision auto`: bf16 on bf16 hardware, fp16 on older GPUs, else float32."""

import pytest

from alexnet_keras.training import precision
from alexnet_keras.training.precision import cpu_bf16_flags, resolve_precision

SAPPHIRE_RAPIDS = "fma avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8"
SKYLAKE = "fma avx2 avx512f avx512dq avx512bw"


def _cpuinfo(tmp_path, flags):
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: x\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
    return str(path)


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(precision, "_gpu_capability", lambda: None)


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    assert cpu_bf16_flags(_cpuinfo(tmp_path, SAPPHIRE_RAPIDS)) == ["avx512_bf16", "amx_bf16"]
    assert cpu_bf16_flags(_cpuinfo(tmp_path, SKYLAKE)) == []
    assert cpu_bf16_flags(str(tmp_path / "missing")) == []


def test_auto_is_bf16_on_a_bf16_cpu_and_float32_elsewhere(tmp_path, no_gpu):
    got, why = resolve_precision("auto", _cpuinfo(tmp_path, SAPPHIRE_RAPIDS))
    assert got == "bf16" and "avx512_bf16" in why
    got, why = resolve_precision("auto", _cpuinfo(tmp_path, SKYLAKE))
    assert got is None and "float32" in why


@pytest.mark.parametrize("capability, expected", [((9, 0), "bf16"), ((8, 0), "bf16"),
                                                   ((7, 0), "fp16")])  # fmt: skip
def test_auto_on_a_gpu_follows_its_compute_capability(monkeypatch, tmp_path, capability,
                                                       expected):  # fmt: skip
    monkeypatch.setattr(precision, "_gpu_capability", lambda: capability)
    assert resolve_precision("auto", _cpuinfo(tmp_path, SKYLAKE))[0] == expected


@pytest.mark.parametrize("choice", [None, "bf16", "fp16"])
def test_an_explicit_choice_is_kept(tmp_path, no_gpu, choice):
    assert resolve_precision(choice, _cpuinfo(tmp_path, SAPPHIRE_RAPIDS))[0] == choice


def test_auto_is_a_config_choice():
    from alexnet_keras.training import config as train_config

    config = train_config.resolve("train", {"dataset": "folder:x", "mixed_precision": "auto"})
    assert config.mixed_precision == "auto"

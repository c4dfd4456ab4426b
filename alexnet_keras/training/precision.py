"""`--mixed-precision auto`: bf16 where the hardware computes it natively, else what fits.

- a GPU of compute capability 8.0 or more (A100, H100, RTX 30xx on): `bf16`;
- an older GPU: `fp16` (with loss scaling, as `--mixed-precision fp16`);
- a CPU with AVX-512 BF16 or AMX (Cooper Lake, Sapphire Rapids on; Zen 4 on):
  `bf16`, where oneDNN runs the convolutions and matmuls in bf16
  (`benchmarks/README.md` has the speed measured here);
- any other CPU: float32, where bf16 would be emulated and slower.
"""

import logging

__all__ = ["cpu_bf16_flags", "resolve_precision"]

log = logging.getLogger("alexnet_keras")
_CPU_BF16 = ("avx512_bf16", "amx_bf16")


def cpu_bf16_flags(cpuinfo="/proc/cpuinfo"):
    """The CPU's bf16 instruction sets named in `cpuinfo` (`avx512_bf16`, `amx_bf16`).

    Example:

    >>> from alexnet_keras.training.precision import cpu_bf16_flags
    >>> set(cpu_bf16_flags()) <= {"avx512_bf16", "amx_bf16"}
    True
    """
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return [flag for flag in _CPU_BF16 if flag in flags]
    except OSError:
        pass
    return []


def _gpu_capability():
    """The lowest compute capability of the visible GPUs, or None without a GPU."""
    import tensorflow as tf

    found = []
    for gpu in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        found.append(tuple(capability or (0, 0)))
    return min(found) if found else None


def resolve_precision(choice, cpuinfo="/proc/cpuinfo"):
    """`(precision, why)`: what `--mixed-precision` means on this machine.

    Args:
        choice: `None` (float32), `"bf16"`, `"fp16"` or `"auto"`.
        cpuinfo: where the CPU flags are read (for tests).

    Returns:
        `(None | "bf16" | "fp16", a short reason)`; an explicit choice is kept.

    Example:

    >>> from alexnet_keras.training.precision import resolve_precision
    >>> resolve_precision("fp16")
    ('fp16', 'asked for')
    >>> resolve_precision("auto", cpuinfo="/nonexistent")[0] in (None, "bf16", "fp16")
    True
    """
    if choice != "auto":
        return choice, "asked for" if choice else "the default"
    capability = _gpu_capability()
    if capability is not None:
        if capability >= (8, 0):
            return "bf16", f"auto: GPU compute capability {capability[0]}.{capability[1]}"
        return "fp16", f"auto: GPU compute capability {capability[0]}.{capability[1]} (< 8.0)"
    flags = cpu_bf16_flags(cpuinfo)
    if flags:
        return "bf16", f"auto: the CPU has {' and '.join(flags)}"
    return None, "auto: this CPU has no bf16 instructions, so float32"

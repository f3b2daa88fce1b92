"""What the CPU this process runs on can do, read at run time (never assumed from the machine type).

The fast inference paths depend on instruction sets: bf16 matrix units (AMX, AVX-512-bf16) make bf16 weights and
bf16 convolutions several times faster than fp32, while on AVX2-only CPUs PyTorch's bf16 kernels are emulated and
slower than fp32. Flags come from ``/proc/cpuinfo`` on Linux; elsewhere the set is empty and every bf16 path is
treated as unsupported (the exact fp32 path always works).
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

#: The flags that decide which kernels are fast; reported in every benchmark JSON.
REPORTED_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx_vnni",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
)


@functools.cache
def cpu_flags() -> frozenset[str]:
    """Every flag of the first processor in ``/proc/cpuinfo`` (empty where that file does not exist)."""
    path = Path("/proc/cpuinfo")
    if not path.exists():
        return frozenset()
    for line in path.read_text().splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


@functools.cache
def cpu_model() -> str:
    """The processor's marketing name (``model name`` in ``/proc/cpuinfo``), else ``platform.processor()``."""
    path = Path("/proc/cpuinfo")
    if path.exists():
        for line in path.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def has_bf16_units(flags: frozenset[str] | None = None) -> bool:
    """True when the CPU multiplies bf16 natively (AMX-bf16 or AVX-512-bf16): only then are bf16 paths faster."""
    flags = cpu_flags() if flags is None else flags
    return bool({"amx_bf16", "avx512_bf16"} & flags)


def isa_summary(flags: frozenset[str] | None = None) -> dict[str, bool]:
    """``{flag: present}`` for :data:`REPORTED_FLAGS` — the part of the flag list that decides kernel speed."""
    flags = cpu_flags() if flags is None else flags
    return {name: name in flags for name in REPORTED_FLAGS}

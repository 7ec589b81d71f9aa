"""What this machine offers the engine: the CPU's vector units, onnxruntime's providers and
OpenVINO's runtime.

Read once at start. A listed provider is not proof that it works (onnxruntime-gpu lists CUDA
without its libraries; OpenVINO accepts a bf16 hint on CPUs without bf16 units and runs
fp32): the engine reads what a loaded session really runs, and the automatic bf16 choice
asks the CPU's flags first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort

from service.runtime import openvino_session

CPUINFO = Path("/proc/cpuinfo")
# Flags that mean the CPU computes bf16 products itself (AVX-512 BF16 on Zen 4 and Cooper
# Lake and later Xeons, AMX tiles on Sapphire Rapids and later).
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
INT8_DOT_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})

ORT_PROVIDERS = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "openvino": openvino_session.NAME,  # OpenVINO's own runtime (openvino_session.py)
    "cpu": "CPUExecutionProvider",
}
SHORT_NAMES = {full: short for short, full in ORT_PROVIDERS.items()}


@dataclass(frozen=True)
class Machine:
    cpu_flags: frozenset[str]
    # Short names of the providers onnxruntime lists, and openvino where its package is in.
    providers: frozenset[str]

    @property
    def bf16_units(self) -> bool:
        return bool(BF16_FLAGS & self.cpu_flags)

    @property
    def int8_dot_units(self) -> bool:
        return bool(INT8_DOT_FLAGS & self.cpu_flags)

    @property
    def gpu(self) -> bool:
        return bool({"cuda", "tensorrt"} & self.providers)

    def describe(self) -> str:
        units = sorted((BF16_FLAGS | INT8_DOT_FLAGS) & self.cpu_flags) or ["no bf16/VNNI units"]
        providers = ", ".join(sorted(self.providers))
        return f"CPU with {', '.join(units)}; onnxruntime providers {providers}"


def cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str]:
    """The first processor's `flags` line (x86 Linux); empty where there is none."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def detect() -> Machine:
    return Machine(cpu_flags=cpu_flags(), providers=available_providers())


def available_providers() -> frozenset[str]:
    listed = {SHORT_NAMES[p] for p in ort.get_available_providers() if p in SHORT_NAMES}
    return frozenset(listed | ({"openvino"} if openvino_session.available() else set()))

"""This machine, described once: its CPU and kernel-relevant flags, and the software versions.

Every record that depends on the machine (manifest environment, quantize's recipe choice,
bench's table) reads it from here, so there is one place to change what is described.
"""

from __future__ import annotations

import functools
import platform
import sys
from importlib import metadata

#: CPU features that decide kernels (int8 paths above all), recorded with every artifact.
INTERESTING_CPU_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "avx_vnni",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    "asimd",
    "asimddp",
    "i8mm",
    "sve",
)


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def cpu_description() -> tuple[str, list[str]]:
    """The CPU's model name and the subset of its feature flags that matter for kernels.

    Read once per process (a quantize asks for it for the recipe, the record and the
    manifest); each caller gets its own copy of the list.
    """
    name, flags = _read_cpuinfo()
    return name, list(flags)


@functools.cache
def _read_cpuinfo() -> tuple[str, tuple[str, ...]]:
    name, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and value.strip():
                    name = value.strip()
                elif key in ("flags", "Features"):
                    flags.update(value.split())
                    break
    except OSError:
        pass
    return name, tuple(flag for flag in INTERESTING_CPU_FLAGS if flag in flags)


def environment() -> dict:
    cpu, flags = cpu_description()
    ort = next((v for v in (_version("onnxruntime"), _version("onnxruntime-gpu")) if v is not None), None)
    return {
        "python": platform.python_version(),
        "platform": f"{sys.platform}-{platform.machine()}",
        "torch": _version("torch"),
        "onnx": _version("onnx"),
        "onnxruntime": ort,
        "onnxsim": _version("onnxsim"),
        "onnxslim": _version("onnxslim"),
        "cpu": cpu,
        "cpu_flags": flags,
    }

"""manifest.json, schema 1: the evidence that travels with every artifact folder."""

from __future__ import annotations

import json
import platform
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from . import __version__
from .errors import UsageError
from .files import atomic_write_text

SCHEMA = 1
MANIFEST_NAME = "manifest.json"
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
    """The CPU's model name and the subset of its feature flags that matter for kernels."""
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
    return name, [flag for flag in INTERESTING_CPU_FLAGS if flag in flags]


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


def new_manifest(command: str, model: dict, artifacts: dict) -> dict:
    return {
        "schema": SCHEMA,
        "ghostexport": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "model": model,
        "environment": environment(),
        "artifacts": artifacts,
        "checks": [],
        "benchmarks": [],
    }


def write_manifest(folder: Path, manifest: dict) -> None:
    atomic_write_text(folder / MANIFEST_NAME, json.dumps(manifest, indent=2) + "\n")


def read_manifest(folder: Path) -> dict:
    path = Path(folder) / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise UsageError(
            f"{folder} has no {MANIFEST_NAME}: is it a ghostexport build folder? Run ghostexport build first"
        ) from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path} is unreadable ({exc}): rebuild the folder with ghostexport build") from exc
    if manifest.get("schema") != SCHEMA:
        raise UsageError(
            f"{path} has schema {manifest.get('schema')!r}; this ghostexport reads schema {SCHEMA}: rebuild it"
        )
    return manifest


def update_manifest(folder: Path, change) -> dict:
    """Read the manifest, apply ``change(manifest)`` in memory, and write it back atomically."""
    manifest = read_manifest(folder)
    change(manifest)
    write_manifest(folder, manifest)
    return manifest

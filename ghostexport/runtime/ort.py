"""ONNX Runtime access: one place that imports it, checks the install, and makes sessions.

ONNX Runtime comes from the ``[cpu]`` or ``[gpu]`` extra (two wheels that provide the same
``onnxruntime`` module and must not be installed together), so its absence or a double
install is a usage problem with a precise fix, not an ImportError traceback.
"""

from __future__ import annotations

import functools
from importlib import metadata
from typing import Any

from ghostexport.base.errors import UsageError

ORT_DISTRIBUTIONS = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino", "onnxruntime-directml")


@functools.cache
def installed_ort_distributions() -> list[str]:
    """Names of the installed wheels that each provide the ``onnxruntime`` module."""
    found = []
    for name in ORT_DISTRIBUTIONS:
        try:
            metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        found.append(name)
    return found


def import_onnxruntime() -> Any:
    """Import onnxruntime, or explain which extra to install (or uninstall)."""
    wheels = installed_ort_distributions()
    if len(wheels) > 1:
        raise UsageError(
            f"several ONNX Runtime packages are installed ({', '.join(wheels)}) and overwrite "
            "each other's files: pip uninstall -y " + " ".join(wheels) + ", then install one "
            "with pip install 'ghostexport[cpu]' or 'ghostexport[gpu]'"
        )
    try:
        import onnxruntime
    except ImportError as exc:
        raise UsageError(
            "ONNX Runtime is not installed: pip install 'ghostexport[cpu]' "
            "(or 'ghostexport[gpu]' for the CUDA provider)"
        ) from exc
    return onnxruntime


def input_shape(session: Any) -> tuple[int, int, int]:
    """(C, H, W) of the model's single image input; exit 2 if it is not a static image shape."""
    shape = session.get_inputs()[0].shape
    if len(shape) != 4 or not all(isinstance(d, int) for d in shape[1:]):
        raise UsageError(f"the model input has shape {shape}; ghostexport needs N×C×H×W with static C, H, W")
    return tuple(shape[1:])


def static_batch(session: Any) -> int | None:
    dim = session.get_inputs()[0].shape[0]
    return dim if isinstance(dim, int) else None


def run_logits(session: Any, inputs: Any, batch: int = 32) -> Any:
    """Logits for ``inputs`` in chunks of ``batch`` (the model's static batch if it has one)."""
    import numpy as np

    name = session.get_inputs()[0].name
    fixed = static_batch(session)
    step = fixed or batch
    outputs = []
    for start in range(0, len(inputs), step):
        chunk = inputs[start : start + step]
        if fixed and len(chunk) < fixed:  # pad the last chunk of a static-batch model
            padding = np.zeros((fixed - len(chunk), *chunk.shape[1:]), dtype=chunk.dtype)
            outputs.append(session.run(None, {name: np.concatenate([chunk, padding])})[0][: len(chunk)])
        else:
            outputs.append(session.run(None, {name: chunk})[0])
    return np.concatenate(outputs)


def physical_cores() -> int:
    """Physical cores (what ORT's default thread count follows), from /proc/cpuinfo on Linux."""
    import os

    try:
        pairs, physical = set(), "0"
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() == "physical id":
                    physical = value.strip()
                elif key.strip() == "core id":
                    pairs.add((physical, value.strip()))
        if pairs:
            return len(pairs)
    except OSError:
        pass
    return os.cpu_count() or 1

"""The runtimes beside ONNX Runtime (LiteRT, ExecuTorch, OpenVINO), in one table, and one way to run their artifacts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ghostexport.base.choices import EDGE_PRECISIONS


def batch1_call(
    runtime: str, path: Path, resolution: int, threads: int | None, precision: str = "auto"
) -> Callable[[], object]:
    """One inference of the artifact at ``path`` on a fixed seeded image, with ``threads`` threads
    (``precision``: OpenVINO's inference precision)."""
    run = runner(runtime, Path(path), threads, precision)
    feed = np.random.default_rng(1).standard_normal((1, 3, resolution, resolution), dtype=np.float32)
    return lambda: run(feed)


def thread_counts(runtime: str, cores: int) -> list[int]:
    """The thread counts one process can time a runtime with: LiteRT's are per interpreter,
    ExecuTorch's XNNPACK pool is one per process (resizing it invalidates loaded programs), so all cores only."""
    return [cores] if runtime == "executorch" else sorted({1, cores})


#: The runtimes ``convert --to`` writes for besides ONNX Runtime, in one table: the file suffix, the
#: name in tables, the module that converts and the one that runs (their import says whether the
#: extra is installed), the packages whose versions a record names, and what the artifact is
#: converted from (LiteRT and ExecuTorch: the PyTorch model; OpenVINO: the folder's model.onnx).
EDGE_RUNTIMES = {
    "litert": {
        "suffix": "tflite",
        "label": "LiteRT (XNNPACK)",
        "converter": "litert_torch",
        "runtime": "ai_edge_litert",
        "packages": ("litert-torch", "ai-edge-litert", "torchao"),
        "from": "torch",
    },
    "executorch": {
        "suffix": "pte",
        "label": "ExecuTorch (XNNPACK)",
        "converter": "executorch",
        "runtime": "executorch",
        "packages": ("executorch", "torchao"),
        "from": "torch",
    },
    "openvino": {
        "suffix": "xml",
        "label": "OpenVINO (CPU)",
        "converter": "nncf",
        "runtime": "openvino",
        "packages": ("openvino", "nncf"),
        "from": "onnx",
    },
}


def edge_file(runtime: str, precision: str) -> str:
    """``model.tflite``, ``model.int8.tflite``, ``model.pte``, ``model.int8.pte``, ``model.xml``, ``model.int8.xml``."""
    return f"model{'.int8' if precision == 'int8' else ''}.{EDGE_RUNTIMES[runtime]['suffix']}"


def runtime_installed(runtime: str, part: str = "runtime") -> bool:
    """Whether an edge runtime's module (``part``: "runtime" runs, "converter" converts) imports here."""
    try:
        __import__(EDGE_RUNTIMES[runtime][part])
    except ImportError:
        return False
    return True


def runtime_of(path: Path) -> str:
    """The runtime that runs an artifact file, by its suffix: an edge runtime's name, else ``onnxruntime``."""
    suffix = Path(path).suffix.lstrip(".")
    return next((name for name, entry in EDGE_RUNTIMES.items() if entry["suffix"] == suffix), "onnxruntime")


#: a folder's edge artifacts and the runtime each needs, in the order they are timed and checked
EDGE_ARTIFACTS = {edge_file(runtime, precision): runtime for runtime in EDGE_RUNTIMES for precision in EDGE_PRECISIONS}


def companions(name: str) -> list[str]:
    """The files an artifact needs beside it: an OpenVINO IR's weights (``model.xml`` → ``model.bin``)."""
    return [str(Path(name).with_suffix(".bin"))] if runtime_of(Path(name)) == "openvino" else []


def runner(
    runtime: str, source: bytes | Path, threads: int | None = None, precision: str = "auto"
) -> Callable[[np.ndarray], np.ndarray]:
    """A function from N×3×H×W float32 images to float logits, for an artifact's bytes or file.

    An OpenVINO IR is two files, so it is given as the path of its ``.xml``; ``precision`` is
    OpenVINO's inference precision (``auto``: the CPU's default).
    """
    if runtime == "openvino":
        from ghostexport.runtime import openvino

        if not isinstance(source, Path):
            raise ValueError("an OpenVINO IR runs from its .xml file (its weights lie beside it)")
        return openvino.runner(source, threads, precision)
    data = source.read_bytes() if isinstance(source, Path) else source
    if runtime == "litert":
        from ghostexport.runtime import litert as module
    elif runtime == "executorch":
        from ghostexport.runtime import executorch as module
    else:
        raise ValueError(f"no edge runtime {runtime!r}: one of {', '.join(EDGE_RUNTIMES)}")
    return module.runner(data, threads)

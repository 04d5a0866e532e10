"""ghostexport: GhostNet (or any CNN, ghosted) from PyTorch to verified edge artifacts.

The library API is what the CLI wraps, one function per command::

    from ghostexport import build, quantize
    result = build(width=0.5, resolution=96, out="models")
    result.manifest["artifacts"]["model.onnx"]["parity"]["verdict"]   # "pass"
    quantize(result.folder, mode="int8", calib="synthetic:32")

The house, lowest floor first (each subpackage imports only from the floors below it):
``base`` (errors, files, the closed sets of choices), ``targets`` (the CPU and the target
profiles), ``model`` (PyTorch: GhostNet, the Ghost module, checkpoints), ``graph`` (ONNX
export, simplification, exact rewrites), ``runtime`` (ONNX Runtime and the edge runtimes),
``evidence`` (parity and quality figures, images), ``folder`` (the artifact folder and its
manifest), ``quantization``, ``render``, ``edge`` (LiteRT, ExecuTorch), ``choose`` (the
fastest artifact), ``stages`` (one module per command), ``cli``.

Heavy dependencies (torch, onnx) load on first use, so ``import ghostexport`` and
``ghostexport --help`` stay fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ghostexport.base.errors import GateFailed, GhostexportError, UsageError
from ghostexport.base.version import __version__

if TYPE_CHECKING:
    from ghostexport.stages.bench import BenchResult, bench
    from ghostexport.stages.build import BuildResult, build
    from ghostexport.stages.check import CheckResult, check
    from ghostexport.stages.convert import ConvertResult, convert
    from ghostexport.stages.ghostify import GhostifyResult, ghostify
    from ghostexport.stages.pipeline import PipelineResult, pipeline
    from ghostexport.stages.predict import PredictResult, predict
    from ghostexport.stages.quantize import QuantizeResult, quantize
    from ghostexport.stages.specs import BenchSpec, BuildSpec, CheckSpec, GhostifySpec, PipelineSpec, QuantizeSpec

#: each public name and the stage module that defines it, imported on first use
_LAZY = {
    name: f"ghostexport.stages.{stage}"
    for stage, names in {
        "build": ("build", "BuildResult"),
        "quantize": ("quantize", "QuantizeResult"),
        "check": ("check", "CheckResult"),
        "bench": ("bench", "BenchResult"),
        "convert": ("convert", "ConvertResult"),
        "pipeline": ("pipeline", "PipelineResult"),
        "ghostify": ("ghostify", "GhostifyResult"),
        "predict": ("predict", "PredictResult"),
    }.items()
    for name in names
}
#: each command's spec, for ``build(BuildSpec(...))``
_LAZY |= {
    name: "ghostexport.stages.specs"
    for name in ("BuildSpec", "QuantizeSpec", "CheckSpec", "BenchSpec", "PipelineSpec", "GhostifySpec")
}

__all__ = [
    "BenchResult",
    "BenchSpec",
    "BuildResult",
    "BuildSpec",
    "CheckResult",
    "CheckSpec",
    "ConvertResult",
    "GateFailed",
    "GhostexportError",
    "GhostifyResult",
    "GhostifySpec",
    "PipelineResult",
    "PipelineSpec",
    "PredictResult",
    "QuantizeResult",
    "QuantizeSpec",
    "UsageError",
    "__version__",
    "bench",
    "build",
    "check",
    "convert",
    "ghostify",
    "pipeline",
    "predict",
    "quantize",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ghostexport' has no attribute {name!r}")

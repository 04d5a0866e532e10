"""ghostexport: GhostNet from PyTorch to verified ONNX artifacts.

The library API is what the CLI wraps::

    from ghostexport import build
    result = build(width=0.5, resolution=96, out="models")
    result.manifest["artifacts"]["model.onnx"]["parity"]["verdict"]   # "pass"

Heavy dependencies (torch, onnx) load on first use, so ``import ghostexport`` and
``ghostexport --help`` stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .builder import BuildResult, build

__all__ = ["BuildResult", "__version__", "build"]


def __getattr__(name: str) -> Any:
    if name in ("build", "BuildResult"):
        from . import builder

        return getattr(builder, name)
    raise AttributeError(f"module 'ghostexport' has no attribute {name!r}")

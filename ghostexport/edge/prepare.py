"""The PyTorch model as the edge converters take it: batch 1, no no-op aliases, calibrated for int8.

``torch.export`` turns a slice that keeps a whole dimension (the Ghost module's
``out[:, :oup]`` when the concatenation is exactly ``oup`` wide) into ``aten.alias`` or a
full-range ``aten.slice``; ExecuTorch leaves those outside the XNNPACK delegate and splits the
graph around them (measured on GhostNet 1.0×: 49 fp32 pieces instead of one). They compute
nothing, so they are removed from the exported graph before lowering.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

import numpy as np
import torch

from ghostexport.base.errors import UsageError
from ghostexport.runtime.edge import EDGE_RUNTIMES


def require(runtime: str) -> None:
    """A one-line error naming the extra when the runtime's converter is not installed."""
    entry = EDGE_RUNTIMES[runtime]
    try:
        for module in dict.fromkeys((entry["runtime"], entry["converter"])):
            __import__(module)
    except ImportError as exc:
        raise UsageError(
            f"--to {runtime} needs {entry['packages'][0]}, which is not installed ({exc}): "
            f"pip install 'ghostexport[{runtime}]'"
        ) from None


def export_batch1(model: torch.nn.Module, resolution: int) -> tuple[torch.export.ExportedProgram, int]:
    """``torch.export`` at batch 1 with no-op aliases and full slices removed; (program, nodes removed)."""
    example = (torch.zeros(1, 3, resolution, resolution),)
    if not isinstance(model, torch.fx.GraphModule):  # a PT2E-converted module refuses eval() and needs none
        model = model.eval()
    program = torch.export.export(model, example, strict=False)
    removed = remove_noop_aliases(program.graph_module)
    return program, removed


def remove_noop_aliases(graph_module: torch.fx.GraphModule) -> int:
    """Replace ``alias`` nodes and slices that keep a whole dimension by their input."""
    aten = torch.ops.aten
    removed = 0
    for node in list(graph_module.graph.nodes):
        if node.op != "call_function":
            continue
        source = node.args[0] if node.args else None
        noop = node.target in (aten.alias.default, aten.alias_copy.default)
        if node.target == aten.slice.Tensor and isinstance(source, torch.fx.Node):
            shape = source.meta["val"].shape if "val" in source.meta else None
            args = [*node.args, None, None, None, None][1:5]
            dim, start, end, step = args[0] or 0, args[1] or 0, args[2], args[3] or 1
            noop = shape is not None and start == 0 and step == 1 and (end is None or end >= shape[dim])
        if noop:
            node.replace_all_uses_with(source)
            graph_module.graph.erase_node(node)
            removed += 1
    graph_module.graph.lint()
    graph_module.recompile()
    return removed


def calibrate(prepared: torch.nn.Module, images: np.ndarray) -> None:
    """One forward pass per image (batch 1, as exported) through a PT2E-prepared module."""
    with torch.no_grad():
        for image in images:
            prepared(torch.from_numpy(image[None]))


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Converters that print progress to standard output would corrupt ``--json -``: send it to stderr.

    Both Python's ``sys.stdout`` and file descriptor 1 (native code writes there) are redirected.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def runtime_versions(*names: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"torch": torch.__version__, "python": sys.version.split()[0]}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found

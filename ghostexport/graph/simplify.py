"""Graph simplification: a third-party simplifier, then our own small clean-up pass.

onnxsim and onnxslim fold constants and remove dead nodes but do not check numerics, so
the build re-runs the parity gate on their output. The model code already avoids the
no-op ``Slice``, the flatten shape chain and the 3-node hard-sigmoid that neither tool
removes; ``lint`` reports any that slip back in, and ``remove_identities`` clears the
``Identity`` nodes the TorchScript exporter leaves when no simplifier runs.
"""

from __future__ import annotations

import onnx

from ghostexport.base.choices import SIMPLIFIERS
from ghostexport.base.errors import GhostexportError, UsageError

#: Ops a clean GhostNet graph never needs; their presence means a wasted layout or shape op.
UNCLEAN_OPS = ("Slice", "Shape", "Gather", "Unsqueeze", "Reshape", "Identity", "Clip", "Div")


def simplify(proto: onnx.ModelProto, simplifier: str) -> onnx.ModelProto:
    """Run ``simplifier`` (``onnxsim``, ``onnxslim`` or ``none``), then ``remove_identities``."""
    if simplifier == "onnxsim":
        try:
            import onnxsim
        except ImportError as exc:
            raise UsageError(
                "onnxsim is not installed: pip install onnxsim, or use --simplifier onnxslim|none"
            ) from exc
        proto, ok = onnxsim.simplify(proto)
        if not ok:
            raise GhostexportError("onnxsim could not validate its simplified model")
    elif simplifier == "onnxslim":
        try:
            import onnxslim
        except ImportError as exc:
            raise UsageError(
                "onnxslim is not installed: pip install onnxslim, or use --simplifier onnxsim|none"
            ) from exc
        proto = onnxslim.slim(proto)
    elif simplifier != "none":
        raise UsageError(f"unknown simplifier '{simplifier}': use one of {', '.join(SIMPLIFIERS)}")
    return remove_identities(proto)


def remove_identities(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Bypass every ``Identity`` node whose output is not a graph output."""
    graph = proto.graph
    outputs = {value.name for value in graph.output}
    rename: dict[str, str] = {}
    kept = []
    for node in graph.node:
        if node.op_type == "Identity" and node.output[0] not in outputs:
            rename[node.output[0]] = rename.get(node.input[0], node.input[0])
            continue
        kept.append(node)
    if not rename:
        return proto
    for node in kept:
        for index, name in enumerate(node.input):
            if name in rename:
                node.input[index] = rename[name]
    del graph.node[:]
    graph.node.extend(kept)
    dropped = set(rename)
    keep_info = [value for value in graph.value_info if value.name not in dropped]
    del graph.value_info[:]
    graph.value_info.extend(keep_info)
    return proto


def lint(proto: onnx.ModelProto) -> dict[str, int]:
    """Counts of ops from ``UNCLEAN_OPS`` present in the graph (empty means clean)."""
    found: dict[str, int] = {}
    for node in proto.graph.node:
        if node.op_type in UNCLEAN_OPS:
            found[node.op_type] = found.get(node.op_type, 0) + 1
    return found

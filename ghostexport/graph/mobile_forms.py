"""Op forms the mobile execution providers take, written exactly.

NNAPI has no ``HardSigmoid`` and CoreML's MLProgram no ``Flatten``; each unsupported node
splits the graph into another partition, with a copy to the CPU and back at every
boundary (GhostNet 1.0× at a fixed batch: NNAPI 202/209 nodes in 8 partitions, CoreML
MLProgram 208/209 in 2). Rewritten:

- ``HardSigmoid(x; α, β) = clip(αx + β, 0, 1)`` as ``Mul(Clip(Add(x, β/α), 0, 1/α), α)``:
  with GhostNet's α = 1/6, β = 1/2 that is ``relu6(x + 3) / 6``, the form NNAPI maps onto
  its RELU6 (equal to HardSigmoid up to float rounding, which the parity gate measures);
- ``Flatten(x; axis=1)`` of a static-shape tensor as ``Reshape(x, [N, -1])``.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ghostexport.graph.rewrite import apply_replacements, attributes


def mobile_forms(proto: onnx.ModelProto, batch: int) -> tuple[onnx.ModelProto, int]:
    """``proto`` with every HardSigmoid and axis-1 Flatten rewritten; (model, nodes rewritten)."""
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    graph = model.graph
    replacement: dict[int, list] = {}
    nodes = list(graph.node)  # held, so that each id() below stays the node's own
    for node in nodes:
        if node.op_type == "HardSigmoid":
            replacement[id(node)] = _hard_sigmoid(graph, node)
        elif node.op_type == "Flatten" and attributes(node).get("axis", 1) == 1:
            replacement[id(node)] = _flatten(graph, node, batch)
    return model, apply_replacements(graph, replacement, set())


def _constant(graph: onnx.GraphProto, name: str, value: np.ndarray) -> str:
    if not any(init.name == name for init in graph.initializer):
        graph.initializer.append(numpy_helper.from_array(value, name))
    return name


def _hard_sigmoid(graph: onnx.GraphProto, node: onnx.NodeProto) -> list[onnx.NodeProto]:
    attrs = attributes(node)
    alpha, beta = float(attrs.get("alpha", 0.2)), float(attrs.get("beta", 0.5))
    shift = _constant(graph, f"hard_sigmoid_shift_{beta / alpha:g}", np.array(beta / alpha, dtype=np.float32))
    low = _constant(graph, "hard_sigmoid_low_0", np.array(0.0, dtype=np.float32))
    high = _constant(graph, f"hard_sigmoid_high_{1 / alpha:g}", np.array(1.0 / alpha, dtype=np.float32))
    scale = _constant(graph, f"hard_sigmoid_scale_{alpha:g}", np.array(alpha, dtype=np.float32))
    shifted, clipped = f"{node.name}_shifted", f"{node.name}_clipped"
    return [
        helper.make_node("Add", [node.input[0], shift], [shifted], name=f"{node.name}_add"),
        helper.make_node("Clip", [shifted, low, high], [clipped], name=f"{node.name}_clip"),
        helper.make_node("Mul", [clipped, scale], list(node.output), name=node.name),
    ]


def _flatten(graph: onnx.GraphProto, node: onnx.NodeProto, batch: int) -> list[onnx.NodeProto]:
    shape = _constant(graph, f"flatten_shape_{batch}", np.array([batch, -1], dtype=np.int64))
    return [helper.make_node("Reshape", [node.input[0], shape], list(node.output), name=node.name)]

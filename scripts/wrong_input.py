"""Copies of an ONNX model that compute on the wrong input: the cases a parity gate must catch.

Each copy prepends nodes that transform the graph input (negate it, swap RGB to BGR, shift
it one pixel right) and feeds the result to the original first nodes. Used by the tests and
by ``discriminative_gates.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

KINDS = ("negated", "bgr", "shifted")


def wrong_input(source: Path, target: Path, how: str) -> Path:
    """A copy of ``source`` whose first node reads a transformed input instead of the image."""
    model = onnx.load(str(source))
    graph = model.graph
    name = graph.input[0].name
    fed = f"{name}_{how}"
    if how == "negated":
        nodes = [helper.make_node("Neg", [name], [fed])]
    elif how == "bgr":
        graph.initializer.append(numpy_helper.from_array(np.array([2, 1, 0], dtype=np.int64), "bgr_order"))
        nodes = [helper.make_node("Gather", [name, "bgr_order"], [fed], axis=1)]
    elif how == "shifted":  # one pixel to the right: pad one zero column on the left, drop the last
        for tensor, values in {
            "shift_pads": [0, 0, 0, 1, 0, 0, 0, 0],
            "shift_starts": [0],
            "shift_ends": [-1],
            "shift_axes": [3],
        }.items():
            graph.initializer.append(numpy_helper.from_array(np.array(values, dtype=np.int64), tensor))
        nodes = [
            helper.make_node("Pad", [name, "shift_pads"], [f"{fed}_padded"]),
            helper.make_node("Slice", [f"{fed}_padded", "shift_starts", "shift_ends", "shift_axes"], [fed]),
        ]
    else:
        raise ValueError(how)
    for node in graph.node:
        for index, value in enumerate(node.input):
            if value == name:
                node.input[index] = fed
    existing = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes + existing)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(target))
    return target

"""The machinery every graph rewrite shares: swap nodes in place, repeat a pass to a fixpoint,
and the producer/consumer maps a pass looks nodes up in."""

from __future__ import annotations

from collections.abc import Callable

import onnx


def attributes(node: onnx.NodeProto) -> dict:
    """A node's attributes as a plain dict."""
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def producers(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    """tensor name -> the node that writes it."""
    return {output: node for node in graph.node for output in node.output}


def consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    """tensor name -> the nodes that read it, in graph order."""
    found: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            found.setdefault(name, []).append(node)
    return found


def repeat_until_unchanged(
    rewrite: Callable[[onnx.ModelProto], tuple[onnx.ModelProto, int]], proto: onnx.ModelProto
) -> tuple[onnx.ModelProto, int]:
    """Apply a (model -> model, count) pass until it changes nothing; (model, total count)."""
    total = 0
    while True:
        proto, count = rewrite(proto)
        total += count
        if not count:
            return proto, total


def apply_replacements(graph: onnx.GraphProto, replacement: dict[int, list], dropped_initializers: set[str]) -> int:
    """Swap each node keyed by ``id(node)`` for its list (in place, order kept), drop initializers;
    returns how many nodes became new ones (empty lists, i.e. deletions, do not count)."""
    count = sum(1 for nodes in replacement.values() if nodes)
    if not count and not dropped_initializers:
        return 0
    nodes = []
    for node in graph.node:
        nodes.extend(replacement.get(id(node), [node]))
    del graph.node[:]
    graph.node.extend(nodes)
    kept = [init for init in graph.initializer if init.name not in dropped_initializers]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return count

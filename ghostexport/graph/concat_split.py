"""``--split-concat-convs`` and its inverse, side by side: one naming scheme, both directions.

The split (at build time, fp32) moves each Ghost module's Concat past the conv that
consumes it; the merge (at quantize time) puts it back, because int8 made from the split
graph quantizes the partial sums apart. The merge finds the split's nodes by the names the
split gives them (``part_name``, ``sum_name``), so both live here.
"""

from __future__ import annotations

import re

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ghostexport.graph.rewrite import apply_replacements, attributes, consumers, producers, repeat_until_unchanged

#: ``<conv>_part<i>``: the i-th partial conv of a split conv (its weight: ``<weight>_part<i>``)
_PART = re.compile(r"^(?P<conv>.+)_part(?P<index>\d+)$")


def part_name(name: str, index: int) -> str:
    return f"{name}_part{index}"


def sum_name(conv: str) -> str:
    return f"{conv}_sum"


def split_concat_convs(proto: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Move each Ghost module's Concat past the conv that consumes it (exact); (model, count).

    - ``Conv1x1(Concat(a, b))`` → ``Conv1x1_a(a) + Conv1x1_b(b)``: a 1×1 conv is linear in its
      input channels, so the weight splits along them, and ORT's NCHWc path fuses the Add into
      the second conv ("Sum" fusion) — where a Ghost module feeds the next module's primary conv.
    - ``DepthwiseConv(Concat(a, b))`` → ``Concat(Depthwise_a(a), Depthwise_b(b))``: a depthwise
      conv works channel by channel, so it splits along its groups and the Concat moves after
      it — where a stride-2 block's depthwise conv halves the resolution, the copy is 4× smaller
      (GhostNet 1.0×: block 1's 112² Concat alone was 253 µs of fp32). The moved Concat may then
      feed a 1×1 conv and split in turn, so the passes repeat until nothing changes.

    Measured together on GhostNet 1.0× (README, benchmarks/README.md). int8 made from the
    split graph quantizes partial sums apart (−3.3 dB on the digits model), so ``ghostexport
    quantize`` merges every split back first (``quantize.forms.merge_split_convs``); other
    tools would not, which is why the split stays opt-in.
    """
    return repeat_until_unchanged(_split_pass, proto)


def _split_pass(proto: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    from onnx import shape_inference

    inferred = shape_inference.infer_shapes(proto)
    channels = {}
    for value in [*inferred.graph.value_info, *inferred.graph.input]:
        dims = value.type.tensor_type.shape.dim
        if len(dims) == 4 and dims[1].HasField("dim_value"):
            channels[value.name] = dims[1].dim_value
    graph = proto.graph
    initializers = {init.name: init for init in graph.initializer}
    readers = consumers(graph)
    graph_outputs = {output.name for output in graph.output}
    replacement: dict[int, list] = {}
    dropped_weights: list[str] = []
    for concat in graph.node:
        if concat.op_type != "Concat" or concat.output[0] in graph_outputs or id(concat) in replacement:
            continue
        axis = next((helper.get_attribute_value(a) for a in concat.attribute if a.name == "axis"), None)
        users = readers.get(concat.output[0], [])
        if axis != 1 or len(users) != 1 or users[0].op_type != "Conv" or id(users[0]) in replacement:
            continue
        conv = users[0]
        attrs = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
        widths = [channels.get(name) for name in concat.input]
        weight = initializers.get(conv.input[1])
        if weight is None or None in widths or len(readers.get(conv.input[1], [])) != 1:
            continue
        kernel = numpy_helper.to_array(weight)
        group = attrs.get("group", 1)
        pointwise = (
            group == 1
            and list(attrs.get("kernel_shape", [1, 1])) == [1, 1]
            and sum(widths) == kernel.shape[1]
            and len(widths) == 2  # one Add (ORT's Conv+Add fusion); a Ghost module has two halves
        )
        depthwise = group == sum(widths) == kernel.shape[0] and kernel.shape[1] == 1
        if not (pointwise or depthwise):
            continue
        cuts = np.cumsum(widths)[:-1]
        parts = np.split(kernel, cuts, axis=1 if pointwise else 0)
        biases = [None] * len(parts)
        if len(conv.input) > 2 and depthwise:
            bias = initializers.get(conv.input[2])
            if bias is None or len(readers.get(conv.input[2], [])) != 1:
                continue
            biases = np.split(numpy_helper.to_array(bias), cuts)
            dropped_weights.append(conv.input[2])
        new_nodes, outputs = [], []
        for index, (tensor, part) in enumerate(zip(concat.input, parts, strict=True)):
            name = part_name(conv.name, index)
            graph.initializer.append(numpy_helper.from_array(part, part_name(conv.input[1], index)))
            inputs = [tensor, part_name(conv.input[1], index)]
            if biases[index] is not None:
                graph.initializer.append(numpy_helper.from_array(biases[index], part_name(conv.input[2], index)))
                inputs.append(part_name(conv.input[2], index))
            elif pointwise and index == 0:
                inputs += list(conv.input[2:3])  # the bias is added once, by the first partial sum
            part_attrs = {**attrs, "group": int(part.shape[0])} if depthwise else attrs
            new_nodes.append(helper.make_node("Conv", inputs, [f"{name}_output"], name=name, **part_attrs))
            outputs.append(f"{name}_output")
        if pointwise:
            new_nodes.append(helper.make_node("Add", outputs, [conv.output[0]], name=sum_name(conv.name)))
        else:
            new_nodes.append(helper.make_node("Concat", outputs, [conv.output[0]], name=f"{conv.name}_cat", axis=1))
        replacement[id(conv)] = new_nodes
        replacement[id(concat)] = []
        dropped_weights.append(conv.input[1])
    return proto, apply_replacements(graph, replacement, set(dropped_weights))


def merge_split_convs(proto: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Undo every rewrite of ``build --split-concat-convs``; (model, count).

    ``Conv_a(a) + Conv_b(b)`` (named ``X_part0``, ``X_part1`` … ``X_sum``) back to
    ``X(Concat(a, b))``, and ``Concat(Depthwise_a(a), Depthwise_b(b))`` back to
    ``Depthwise(Concat(a, b))``. Passes repeat: merging a 1×1 split re-creates the Concat of
    depthwise parts that the split had moved.
    """
    return repeat_until_unchanged(_merge_pass, proto)


def _split_parts(node: onnx.NodeProto, writers: dict, uses: dict, initializers: dict) -> tuple[str, list] | None:
    """(conv name, its parts) when every input of ``node`` is one part of the same split conv."""
    parts = [writers.get(name) for name in node.input]
    matches = [_PART.match(part.name) if part is not None else None for part in parts]
    if (
        len(parts) < 2
        or None in matches
        or any(part.op_type != "Conv" or uses.get(part.output[0]) != 1 for part in parts)
        or len({m.group("conv") for m in matches}) != 1
        or [int(m.group("index")) for m in matches] != list(range(len(parts)))
        or any(part.input[1] not in initializers for part in parts)
    ):
        return None
    return matches[0].group("conv"), parts


def _merge_pass(proto: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    graph = proto.graph
    initializers = {init.name: init for init in graph.initializer}
    writers = producers(graph)
    uses: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    replacement: dict[int, list] = {}
    dropped: list[str] = []
    for node in graph.node:
        if node.op_type not in ("Add", "Concat"):
            continue
        found = _split_parts(node, writers, uses, initializers)
        if found is None or any(id(part) in replacement for part in found[1]):
            continue
        conv_name, parts = found
        attrs = [attributes(part) for part in parts]
        depthwise = node.op_type == "Concat"
        if depthwise:
            groups = [a.get("group", 1) for a in attrs]
            shapes = [numpy_helper.to_array(initializers[part.input[1]]).shape for part in parts]
            same = [{k: v for k, v in a.items() if k != "group"} for a in attrs]
            if any(g != shape[0] or shape[1] != 1 for g, shape in zip(groups, shapes, strict=True)) or any(
                a != same[0] for a in same
            ):
                continue
            if any(len(part.input) > 2 for part in parts) and not all(
                len(part.input) > 2 and part.input[2] in initializers for part in parts
            ):
                continue
            merged_attrs = {**attrs[0], "group": sum(groups)}
        else:
            if node.name != sum_name(conv_name) or any(a != attrs[0] for a in attrs):
                continue
            if sum(len(part.input) > 2 for part in parts) > 1:
                continue
            merged_attrs = attrs[0]
        kernel = np.concatenate(
            [numpy_helper.to_array(initializers[part.input[1]]) for part in parts], axis=0 if depthwise else 1
        )
        weight_name = f"{conv_name}_merged_weight"
        graph.initializer.append(numpy_helper.from_array(kernel, weight_name))
        if depthwise and len(parts[0].input) > 2:
            bias_name = f"{conv_name}_merged_bias"
            bias = np.concatenate([numpy_helper.to_array(initializers[part.input[2]]) for part in parts])
            graph.initializer.append(numpy_helper.from_array(bias, bias_name))
            bias_inputs = [bias_name]
            dropped += [part.input[2] for part in parts]
        else:
            bias_inputs = [part.input[2] for part in parts if len(part.input) > 2]
        concat_out = f"{conv_name}_merged_input"
        replacement[id(node)] = [
            helper.make_node(
                "Concat", [part.input[0] for part in parts], [concat_out], name=f"{conv_name}_concat", axis=1
            ),
            helper.make_node(
                "Conv", [concat_out, weight_name, *bias_inputs], list(node.output), name=conv_name, **merged_attrs
            ),
        ]
        for part in parts:
            replacement[id(part)] = []
            dropped.append(part.input[1])
    return proto, apply_replacements(graph, replacement, set(dropped))

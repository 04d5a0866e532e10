"""Graph simplification: a third-party simplifier, then our own small clean-up pass.

onnxsim and onnxslim fold constants and remove dead nodes but do not check numerics, so
the build re-runs the parity gate on their output. The model code already avoids the
no-op ``Slice``, the flatten shape chain and the 3-node hard-sigmoid that neither tool
removes; ``lint`` reports any that slip back in, and ``remove_identities`` clears the
``Identity`` nodes the TorchScript exporter leaves when no simplifier runs.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx

from .errors import GhostexportError, UsageError

SIMPLIFIERS = ("onnxsim", "onnxslim", "none")
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


def _split_pass(proto: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    from onnx import helper, numpy_helper, shape_inference

    inferred = shape_inference.infer_shapes(proto)
    channels = {}
    for value in [*inferred.graph.value_info, *inferred.graph.input]:
        dims = value.type.tensor_type.shape.dim
        if len(dims) == 4 and dims[1].HasField("dim_value"):
            channels[value.name] = dims[1].dim_value
    graph = proto.graph
    initializers = {init.name: init for init in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    graph_outputs = {output.name for output in graph.output}
    replacement: dict[int, list] = {}
    dropped_weights: list[str] = []
    for concat in graph.node:
        if concat.op_type != "Concat" or concat.output[0] in graph_outputs or id(concat) in replacement:
            continue
        axis = next((helper.get_attribute_value(a) for a in concat.attribute if a.name == "axis"), None)
        users = consumers.get(concat.output[0], [])
        if axis != 1 or len(users) != 1 or users[0].op_type != "Conv" or id(users[0]) in replacement:
            continue
        conv = users[0]
        attrs = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
        widths = [channels.get(name) for name in concat.input]
        weight = initializers.get(conv.input[1])
        if weight is None or None in widths or len(consumers.get(conv.input[1], [])) != 1:
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
            if bias is None or len(consumers.get(conv.input[2], [])) != 1:
                continue
            biases = np.split(numpy_helper.to_array(bias), cuts)
            dropped_weights.append(conv.input[2])
        new_nodes, outputs = [], []
        for index, (tensor, part) in enumerate(zip(concat.input, parts, strict=True)):
            name = f"{conv.name}_part{index}"
            graph.initializer.append(numpy_helper.from_array(part, f"{conv.input[1]}_part{index}"))
            inputs = [tensor, f"{conv.input[1]}_part{index}"]
            if biases[index] is not None:
                graph.initializer.append(numpy_helper.from_array(biases[index], f"{conv.input[2]}_part{index}"))
                inputs.append(f"{conv.input[2]}_part{index}")
            elif pointwise and index == 0:
                inputs += list(conv.input[2:3])  # the bias is added once, by the first partial sum
            part_attrs = {**attrs, "group": int(part.shape[0])} if depthwise else attrs
            new_nodes.append(helper.make_node("Conv", inputs, [f"{name}_output"], name=name, **part_attrs))
            outputs.append(f"{name}_output")
        if pointwise:
            new_nodes.append(helper.make_node("Add", outputs, [conv.output[0]], name=f"{conv.name}_sum"))
        else:
            new_nodes.append(helper.make_node("Concat", outputs, [conv.output[0]], name=f"{conv.name}_cat", axis=1))
        replacement[id(conv)] = new_nodes
        replacement[id(concat)] = []
        dropped_weights.append(conv.input[1])
    return proto, apply_replacements(graph, replacement, set(dropped_weights))


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

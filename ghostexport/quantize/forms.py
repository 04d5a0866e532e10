"""Exact graph rewrites made only for the int8 artifact, so ORT's int8 kernels take fast paths.

The fp32 ``model.onnx`` is left as built; the quantizer rewrites its own copy. Each rewrite
computes the same function in fp32 (tested to float rounding), so calibration ranges and
the quality figures still describe the model that was built.

- ``merge_split_convs`` undoes ``build --split-concat-convs``: the split helps fp32 (the
  NCHWc path fuses the Add; Concats move past stride-2 depthwise convs) but int8 made from
  it quantizes the two partial sums apart (measured −3.3 dB on the digits model). Merged
  back, one build folder carries both the fastest fp32 graph and the full-quality int8 graph.
- ``stem_space_to_depth`` re-expresses a 3×3 stride-2 stem conv over 3 channels as
  ``SpaceToDepth(2)`` and a 2×2 stride-1 conv over 12 channels. MLAS's symmetric int8 conv
  kernel needs input channels in multiples of 4; with 3 it falls back to an im2col GEMM
  that took 524 µs of GhostNet 1.0×'s 224² int8 run (1 thread) against 228 µs + 84 µs for
  the rewritten pair. Used only when the stem itself is quantized.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..simplify import apply_replacements, repeat_until_unchanged

#: names ``ghostexport.simplify.split_concat_convs`` gives its nodes
_PART = re.compile(r"^(?P<conv>.+)_part(?P<index>\d+)$")


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def merge_split_convs(proto: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Undo every rewrite of ``build --split-concat-convs``; (model, count).

    ``Conv_a(a) + Conv_b(b)`` (named ``X_part0``, ``X_part1`` … ``X_sum``) back to
    ``X(Concat(a, b))``, and ``Concat(Depthwise_a(a), Depthwise_b(b))`` back to
    ``Depthwise(Concat(a, b))``. Passes repeat: merging a 1×1 split re-creates the Concat of
    depthwise parts that the split had moved.
    """
    return repeat_until_unchanged(_merge_pass, proto)


def _split_parts(node: onnx.NodeProto, producers: dict, uses: dict, initializers: dict) -> tuple[str, list] | None:
    """(conv name, its parts) when every input of ``node`` is one part of the same split conv."""
    parts = [producers.get(name) for name in node.input]
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
    producers = {output: node for node in graph.node for output in node.output}
    uses: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    replacement: dict[int, list] = {}
    dropped: list[str] = []
    for node in graph.node:
        if node.op_type not in ("Add", "Concat"):
            continue
        found = _split_parts(node, producers, uses, initializers)
        if found is None or any(id(part) in replacement for part in found[1]):
            continue
        conv_name, parts = found
        attrs = [_attrs(part) for part in parts]
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
            if node.name != f"{conv_name}_sum" or any(a != attrs[0] for a in attrs):
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


@dataclass(frozen=True)
class StemForm:
    """Where the space-to-depth stem was written and which tensor now feeds the stem conv."""

    model: onnx.ModelProto
    stem: str  # node name, unchanged
    tensor: str  # SpaceToDepth output: same values as the graph input, so the same range


def stem_space_to_depth(proto: onnx.ModelProto) -> StemForm | None:
    """The model with its stem as SpaceToDepth + 2×2 conv, or None when the stem is not 3×3/2, pad 1.

    Output pixel (i, j) of a 3×3 stride-2 conv with pad 1 reads rows 2i−1…2i+1. After
    SpaceToDepth(2) (ONNX's DCR order: channel (bh·2 + bw)·C + c holds row 2p + bh, column
    2q + bw of block (p, q)), those rows are block rows i−1 (bh = 1) and i (bh = 0, 1): a 2×2
    kernel with one row and column of zero padding at the top/left, tap (u, v) taking
    original tap (2u + bh − 1, 2v + bw − 1) when that lies inside the 3×3 window.
    """
    graph = proto.graph
    graph_input = graph.input[0].name
    dims = graph.input[0].type.tensor_type.shape.dim
    stem = next((node for node in graph.node if node.op_type == "Conv" and node.input[0] == graph_input), None)
    initializers = {init.name: init for init in graph.initializer}
    if stem is None or stem.input[1] not in initializers or len(dims) != 4:
        return None
    attrs = _attrs(stem)
    kernel = numpy_helper.to_array(initializers[stem.input[1]])
    spatial = [dim.dim_value if dim.HasField("dim_value") else 0 for dim in dims[2:]]
    if (
        kernel.shape[2:] != (3, 3)
        or list(attrs.get("strides", [1, 1])) != [2, 2]
        or list(attrs.get("pads", [0, 0, 0, 0])) != [1, 1, 1, 1]
        or list(attrs.get("dilations", [1, 1])) != [1, 1]
        or attrs.get("group", 1) != 1
        or attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET")
        or kernel.shape[1] % 4 == 0  # already fine for the symmetric kernel
        or any(size == 0 or size % 2 for size in spatial)  # odd sizes read the bottom/right padding
    ):
        return None
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    graph = model.graph
    out_channels, channels = kernel.shape[:2]
    blocked = np.zeros((out_channels, 4 * channels, 2, 2), dtype=kernel.dtype)
    for bh in range(2):
        for bw in range(2):
            for u in range(2):
                for v in range(2):
                    kh, kw = 2 * u + bh - 1, 2 * v + bw - 1
                    if 0 <= kh < 3 and 0 <= kw < 3:
                        first = (bh * 2 + bw) * channels
                        blocked[:, first : first + channels, u, v] = kernel[:, :, kh, kw]
    tensor = f"{stem.name}_space_to_depth"
    weight = f"{stem.input[1]}_space_to_depth"
    graph.initializer.append(numpy_helper.from_array(blocked, weight))
    rewritten = [
        helper.make_node("SpaceToDepth", [graph_input], [tensor], name=f"{stem.name}_space_to_depth", blocksize=2),
        helper.make_node(
            "Conv",
            [tensor, weight, *stem.input[2:]],
            list(stem.output),
            name=stem.name,
            kernel_shape=[2, 2],
            pads=[1, 1, 0, 0],
            strides=[1, 1],
        ),
    ]
    target = next(node for node in graph.node if node.name == stem.name)
    shared = sum(stem.input[1] in node.input for node in graph.node) > 1  # the weight feeds another node too
    apply_replacements(graph, {id(target): rewritten}, set() if shared else {stem.input[1]})
    return StemForm(model, stem.name, tensor)

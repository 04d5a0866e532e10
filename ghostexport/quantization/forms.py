"""Exact graph rewrites made only for the int8 artifact, so ORT's int8 kernels take fast paths.

The fp32 ``model.onnx`` is left as built; the quantizer rewrites its own copy. Each rewrite
computes the same function in fp32 (tested to float rounding), so calibration ranges and
the quality figures still describe the model that was built.

- ``graph.merge_split_convs`` (beside the split it undoes) puts back ``build
  --split-concat-convs``: the split helps fp32 but int8 made from it quantizes the two
  partial sums apart (measured −3.3 dB on the digits model). Merged back, one build folder
  carries both the fastest fp32 graph and the full-quality int8 graph.
- ``stem_space_to_depth`` re-expresses a 3×3 stride-2 stem conv over 3 channels as
  ``SpaceToDepth(2)`` and a 2×2 stride-1 conv over 12 channels. MLAS's symmetric int8 conv
  kernel needs input channels in multiples of 4; with 3 it falls back to an im2col GEMM
  that took 524 µs of GhostNet 1.0×'s 224² int8 run (1 thread) against 228 µs + 84 µs for
  the rewritten pair. Used only when the stem itself is quantized.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ghostexport.graph import apply_replacements, attributes


@dataclass(frozen=True)
class StemForm:
    """Where the space-to-depth stem was written and which tensor now feeds the stem conv."""

    model: onnx.ModelProto
    stem: str  # node name, unchanged
    tensor: str  # SpaceToDepth output: same values as the graph input, so the same range


def _rewritable(kernel: np.ndarray, attrs: dict, spatial: list[int]) -> bool:
    """A 3×3 stride-2 pad-1 dense conv whose input channels are not already a multiple of 4, on even sizes."""
    return not (
        kernel.shape[2:] != (3, 3)
        or list(attrs.get("strides", [1, 1])) != [2, 2]
        or list(attrs.get("pads", [0, 0, 0, 0])) != [1, 1, 1, 1]
        or list(attrs.get("dilations", [1, 1])) != [1, 1]
        or attrs.get("group", 1) != 1
        or attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET")
        or kernel.shape[1] % 4 == 0  # already fine for the symmetric kernel
        or any(size == 0 or size % 2 for size in spatial)  # odd sizes read the bottom/right padding
    )


def _blocked_kernel(kernel: np.ndarray) -> np.ndarray:
    """The 3×3 kernel as the equivalent 2×2 kernel over SpaceToDepth(2)'s 4·C channels (see below)."""
    out_channels, channels = kernel.shape[:2]
    blocked = np.zeros((out_channels, 4 * channels, 2, 2), dtype=kernel.dtype)
    for bh, bw, u, v in np.ndindex(2, 2, 2, 2):
        kh, kw = 2 * u + bh - 1, 2 * v + bw - 1
        if 0 <= kh < 3 and 0 <= kw < 3:
            first = (bh * 2 + bw) * channels
            blocked[:, first : first + channels, u, v] = kernel[:, :, kh, kw]
    return blocked


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
    attrs = attributes(stem)
    kernel = numpy_helper.to_array(initializers[stem.input[1]])
    spatial = [dim.dim_value if dim.HasField("dim_value") else 0 for dim in dims[2:]]
    if not _rewritable(kernel, attrs, spatial):
        return None
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    graph = model.graph
    blocked = _blocked_kernel(kernel)
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

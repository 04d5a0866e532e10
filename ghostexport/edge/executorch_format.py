"""ExecuTorch ``.pte`` with the XNNPACK delegate: fp32, and int8 through PT2E (XNNPACK's quantizer).

int8 is static, symmetric, per-channel weights (``get_symmetric_quantization_config``), the
recipe XNNPACK's kernels are written for; activations are calibrated on the given images at
batch 1. The lowered program is counted before it is serialised: how many delegate calls
(one is the goal: one XNNPACK piece) and which operators stayed outside.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import torch

from ghostexport.edge.prepare import calibrate, export_batch1

RECIPE_INT8 = "PT2E static int8: symmetric per-channel weights, per-tensor activations (XNNPACKQuantizer)"


def convert(model: torch.nn.Module, resolution: int, calibration: np.ndarray | None) -> tuple[bytes, dict]:
    """(``.pte`` bytes, record of the lowering); int8 when ``calibration`` images are given."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    program, removed = export_batch1(model, resolution)
    if calibration is not None:
        program, removed = _quantized(program, resolution, calibration)
    edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
    delegation = _delegation(edge.exported_program().graph)
    data = bytes(edge.to_executorch().buffer)
    return data, {"noop_aliases_removed": removed, "delegation": delegation, "delegate": "XNNPACK"}


def _quantized(program, resolution: int, calibration: np.ndarray):
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    prepared = prepare_pt2e(program.module(), quantizer)
    calibrate(prepared, calibration)
    converted = convert_pt2e(prepared)
    return export_batch1(converted, resolution)


def _delegation(graph) -> dict:
    """Delegate calls and the operators left outside them (``getitem``/outputs are plumbing, not work)."""
    calls, outside = 0, Counter()
    for node in graph.nodes:
        if node.op != "call_function":
            continue
        name = str(getattr(node.target, "__name__", node.target))
        if "executorch_call_delegate" in name:
            calls += 1
        elif name != "getitem":
            outside[name] += 1
    return {
        "delegate_calls": calls,
        "ops_outside": dict(sorted(outside.items())),
        "outside_total": sum(outside.values()),
    }

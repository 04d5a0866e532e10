"""``check --localize``: find the first node where two models part ways.

Both sides expose their intermediate tensors — an ONNX model by making every node output a
graph output, the PyTorch reference by forward hooks on its (BN-folded, deploy-form)
modules — and the tensors are matched by name (TorchScript export names nodes after module
scopes, and quantized graphs keep their float tensors' names) or, where names differ, by
topological position among nodes of the same op type. The candidate's nodes are then
walked in topological order and the first whose output leaves tolerance is named: what
Polygraphy's "mark all" gives TensorRT users.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx

from ghostexport.evidence.parity import Tolerance, compare
from ghostexport.evidence.quality import sqnr_db

COMPARED_OPS = ("Conv", "Gemm", "MatMul", "Relu", "Add", "Mul", "Concat", "GlobalAveragePool", "HardSigmoid", "Flatten")
TOP_N = 5


def expose_intermediates(proto: onnx.ModelProto) -> tuple[bytes, list[tuple[str, str, str]], dict[str, str]]:
    """A copy of ``proto`` with every compared node's first output added as a graph output.

    Returns the serialized model, ``[(node name, op type, tensor name)]`` in topological
    order, and aliases: in a QDQ graph a tensor ``T`` that is quantized is what its consumers
    see only after ``QuantizeLinear`` -> ``DequantizeLinear`` (which also applies a ReLU the
    quantizer removed), so ``T`` is read from that ``DequantizeLinear``'s output instead.
    """
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    existing = {output.name for output in model.graph.output}
    order, alias = [], {}

    def expose(tensor: str) -> None:
        if tensor not in existing:
            model.graph.output.append(onnx.ValueInfoProto(name=tensor))
            existing.add(tensor)

    for node in list(model.graph.node):
        if node.op_type in COMPARED_OPS and node.output:
            tensor = node.output[0]
            order.append((node.name, node.op_type, tensor))
            expose(tensor)
            quantize = next((c for c in consumers.get(tensor, []) if c.op_type == "QuantizeLinear"), None)
            if quantize is not None:
                dequantize = next(
                    (c for c in consumers.get(quantize.output[0], []) if c.op_type == "DequantizeLinear"), None
                )
                if dequantize is not None:
                    alias[tensor] = dequantize.output[0]
                    expose(dequantize.output[0])
    return model.SerializeToString(), order, alias


def onnx_activations(session_factory: Callable[[bytes], object], proto: onnx.ModelProto, inputs: np.ndarray):
    """``(order, {tensor: array})`` for one run of ``proto`` with all intermediates exposed."""
    data, order, alias = expose_intermediates(proto)
    session = session_factory(data)
    names = [output.name for output in session.get_outputs()]
    values = dict(zip(names, session.run(None, {session.get_inputs()[0].name: inputs}), strict=True))
    for tensor, seen_by_consumers in alias.items():
        values[tensor] = values[seen_by_consumers]
    return order, values


def module_for_scope(node_name: str) -> str:
    """``/blocks/blocks.6/blocks.6.3/se/conv_reduce/Conv`` -> ``blocks.6.3.se.conv_reduce``."""
    full, previous = "", ""
    for segment in node_name.strip("/").split("/")[:-1]:
        if previous and segment.startswith(previous + "."):  # child of a Sequential: "<name>.<index>"
            full += segment[len(previous) :]
        else:
            full = f"{full}.{segment}" if full else segment
        previous = segment
    return full


def torch_activations(model, inputs: np.ndarray, order: list[tuple[str, str, str]]) -> dict[str, np.ndarray]:
    """Reference activations keyed by the candidate's tensor names, from module forward hooks.

    A module's output stands for the *last* node of its scope (e.g. an SE block's output is
    its final ``Mul``); nodes whose module output has another shape are simply not compared.
    """
    import torch

    last_node_of_module = {}
    for node_name, _op, tensor in order:
        last_node_of_module[module_for_scope(node_name)] = tensor
    captured: dict[str, np.ndarray] = {}
    handles = []
    for name, module in model.named_modules():
        if name in last_node_of_module:
            tensor = last_node_of_module[name]

            def hook(_module, _inputs, output, tensor=tensor):
                captured.setdefault(tensor, output.detach().numpy().copy())  # a reused module: its first call

            handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(torch.from_numpy(inputs))
    finally:
        for handle in handles:
            handle.remove()
    return captured


def match_by_position(candidate_order, reference_order, reference_values) -> dict[str, np.ndarray]:
    """Pair the k-th node of each op type on both sides when tensor names differ."""
    by_type: dict[str, list[str]] = {}
    for _name, op, tensor in reference_order:
        by_type.setdefault(op, []).append(tensor)
    seen: dict[str, int] = {}
    matched = {}
    for _name, op, tensor in candidate_order:
        index = seen.get(op, 0)
        seen[op] = index + 1
        if index < len(by_type.get(op, [])) and by_type[op][index] in reference_values:
            matched[tensor] = reference_values[by_type[op][index]]
    return matched


def localize(
    candidate_order: list[tuple[str, str, str]],
    candidate_values: dict[str, np.ndarray],
    reference_values: dict[str, np.ndarray],
    tolerance: Tolerance,
    min_sqnr_db: float | None,
    matching: str,
) -> dict:
    """The first diverging node (topological order) and the worst few, with their figures.

    fp32 candidates use the element-wise atol + rtol·|ref| rule on each activation; reduced
    precision ones (``min_sqnr_db`` given) use the per-tensor SQNR instead.
    """
    compared = []
    for node_name, op, tensor in candidate_order:
        ref = reference_values.get(tensor)
        cand = candidate_values.get(tensor)
        if ref is None or cand is None or ref.shape != cand.shape:
            continue
        result = compare(ref.reshape(len(ref), -1), cand.reshape(len(cand), -1), tolerance)
        sqnr = sqnr_db(ref, cand) if np.isfinite(cand).all() else float("-inf")
        failed = (sqnr < min_sqnr_db) if min_sqnr_db is not None else result["verdict"] == "fail"
        compared.append(
            {
                "node": node_name,
                "op": op,
                "tensor": tensor,
                "max_abs": result.get("max_abs"),
                "sqnr_db": round(sqnr, 2),
                "nonfinite": result["nonfinite"],
                "fails": bool(failed),
            }
        )
    first = next((entry for entry in compared if entry["fails"]), None)
    worst = sorted(compared, key=lambda entry: entry["sqnr_db"])[:TOP_N]
    return {
        "matching": matching,
        "compared": len(compared),
        "first_divergence": first,
        "worst": worst,
        "rule": f"SQNR < {min_sqnr_db} dB"
        if min_sqnr_db is not None
        else f"|a−b| > {tolerance.atol:g} + {tolerance.rtol:g}·|ref| or cosine < {tolerance.min_cosine}",
    }

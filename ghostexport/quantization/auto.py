"""``--method auto``: the calibration method and the fewest float layers that meet a target.

1. Quantize with each calibration method (the rule-based float ends included) and keep the
   one with the best logits SQNR on the evaluation data.
2. If the target (``--target-sqnr``, ``--max-accuracy-drop``, and always the int8 gate) is
   still missed, rank the quantized nodes by their local quantization error, measured as
   ORT's qdq_loss_debug does (SQNR of each activation before/after its Q/DQ pair, on
   calibration images), and binary-search the smallest k such that keeping the k most
   sensitive nodes in float meets the target.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from ghostexport.base.progress import Progress, quiet_libraries
from ghostexport.evidence.quality import QualityGate, measure, meets
from ghostexport.quantization.recipe import METHODS, Recipe
from ghostexport.quantization.static import BatchReader, Int8Quantizer

SENSITIVITY_SAMPLES = 16
#: Nodes with int8 kernels; keeping one in float is a real recipe choice (Relu/Concat follow them).
COMPUTE_OPS = ("Conv", "Gemm", "MatMul", "Mul", "Add", "GlobalAveragePool", "HardSigmoid")


#: the trial that keeps only the rule-based float nodes, with MinMax: the all-int8 reference point
RULES_ONLY_TAG = "minmax"


def trial_path(work_dir: Path, tag: str) -> Path:
    """Where the search leaves the model of trial ``tag`` (the latency comparison reads it back)."""
    return work_dir / f"auto-{tag}.onnx"


def search(
    quantizer: Int8Quantizer,
    base: Recipe,
    evaluate: Callable[[Path], np.ndarray],
    reference: np.ndarray,
    labels: np.ndarray | None,
    gate: QualityGate,
    work_dir: Path,
    say: Progress,
) -> tuple[Recipe, Path, dict]:
    """Return (recipe, quantized model path, search record): the best method, then the fewest float nodes."""
    trials = _Trials(quantizer, lambda output: measure(reference, evaluate(output), labels), work_dir)
    best = None
    for method in METHODS:
        recipe = replace(base, method=method)
        output, figures = trials.attempt(recipe, method)
        say("auto", f"{method:<10} SQNR {figures['sqnr_db']:.2f} dB, agreement {figures['top1_agreement']:.4f}")
        if best is None or (figures["sqnr_db"] or -1e9) > (best[2]["sqnr_db"] or -1e9):
            best = (recipe, output, figures)
    recipe, output, figures = best
    record = {"methods_tried": list(METHODS), "chosen_method": recipe.method, "trials": trials.rows, "ranked_nodes": []}
    if meets(figures, gate):
        return recipe, output, {**record, "target_met": True}
    ranked = [name for name in rank_sensitivity(quantizer, output, work_dir) if name not in recipe.kept_float]
    record["ranked_nodes"] = ranked[:20]
    found = _fewest_float_nodes(trials, recipe, ranked, gate, say)
    if found is None:
        return recipe, output, {**record, "target_met": False}
    return found[0], found[1], {**record, "target_met": True}


class _Trials:
    """Quantize a recipe into the work folder, measure it, and keep a row per trial for the record."""

    def __init__(self, quantizer: Int8Quantizer, figures_of: Callable[[Path], dict], work_dir: Path) -> None:
        self.quantizer, self.figures_of, self.work_dir, self.rows = quantizer, figures_of, work_dir, []

    def attempt(self, recipe: Recipe, tag: str) -> tuple[Path, dict]:
        output = trial_path(self.work_dir, tag)
        self.quantizer.quantize(recipe, recipe.kept_float, output)
        figures = self.figures_of(output)
        self.rows.append(
            {
                "method": recipe.method,
                "kept_float": len(recipe.kept_float),
                "sqnr_db": figures["sqnr_db"],
                "top1_agreement": figures["top1_agreement"],
                "accuracy_drop_points": figures.get("accuracy_drop_points"),
            }
        )
        return output, figures


def _fewest_float_nodes(trials: _Trials, recipe: Recipe, ranked: list[str], gate: QualityGate, say: Progress):
    """Bisect the number of most-sensitive nodes kept float: the smallest k that meets the gate, or None."""
    low, high, found = 1, len(ranked), None
    while low <= high:
        k = (low + high) // 2
        candidate = replace(recipe, kept_float=[*recipe.kept_float, *ranked[:k]])
        path, result = trials.attempt(candidate, f"{recipe.method}-k{k}")
        say(
            "auto",
            f"{k:>3} more nodes in float: SQNR {result['sqnr_db']:.2f} dB, agreement {result['top1_agreement']:.4f}",
        )
        if meets(result, gate):
            found, high = (candidate, path), k - 1
        else:
            low = k + 1
    return found


def rank_sensitivity(quantizer: Int8Quantizer, quantized: Path, work_dir: Path) -> list[str]:
    """Quantizable node names, most damaged by their own Q/DQ first (lowest local SQNR)."""
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        compute_activation_error,
        create_activation_matching,
        modify_model_output_intermediate_tensors,
    )

    with quiet_libraries():
        float_aug, qdq_aug = work_dir / "float-aug.onnx", work_dir / "qdq-aug.onnx"
        modify_model_output_intermediate_tensors(str(quantizer.preprocessed), str(float_aug))
        modify_model_output_intermediate_tensors(str(quantized), str(qdq_aug))
        samples = quantizer.calibration[:SENSITIVITY_SAMPLES]
        float_acts = collect_activations(
            str(float_aug), BatchReader(samples, quantizer.input_name, None, quantizer.static_batch)
        )
        qdq_acts = collect_activations(
            str(qdq_aug), BatchReader(samples, quantizer.input_name, None, quantizer.static_batch)
        )
        errors = compute_activation_error(create_activation_matching(qdq_acts, float_acts))
    # A Q/DQ pair sits on the output of a fused Conv+Relu, i.e. on the Relu's output: charge
    # the error to the compute node that the activation follows, the one worth keeping float.
    producer = {output: node for node in quantizer.proto.graph.node for output in node.output}
    scored: dict[str, float] = {}
    for tensor, error in errors.items():
        node = producer.get(tensor)
        value = error.get("qdq_err")
        if node is None or value is None or not np.isfinite(value):
            continue
        if node.op_type == "Relu" and node.input[0] in producer:
            node = producer[node.input[0]]
        if node.op_type in COMPUTE_OPS:
            scored[node.name] = min(scored.get(node.name, float("inf")), float(value))
    return sorted(scored, key=lambda name: (scored[name], name))

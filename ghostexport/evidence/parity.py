"""Numerical parity between a reference and a candidate: the figures and the verdict.

An element fails only if ``|a - b| > atol + rtol * |b|`` (b = reference), the same rule as
``numpy.isclose``; on top of that every sample's logits must keep cosine similarity with
the reference, the batch's *centred* logits (``figures.centred_figures``: what depends on
the input) must keep theirs, and any NaN/Inf anywhere fails. The centred gate is the one
that catches a model computing on the wrong input (negated, BGR, shifted) when the
reference's logits are dominated by per-class constants. Tolerances travel with the figures into
the manifest so a reader can see what was promised, not only what was measured.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

import numpy as np

from ghostexport.base.errors import UsageError
from ghostexport.evidence.comparison import centred_figures, centred_gate_applies, input_dependence, rowwise_cosine


@dataclass(frozen=True)
class Tolerance:
    """fp32 parity limits. Each is validated so that no value (NaN, negative) can switch a gate off."""

    atol: float = 1e-4
    rtol: float = 1e-3
    min_cosine: float = 0.99999
    #: over the batch's centred logits; fp32 rounding leaves it at 1 - 1e-9 or closer
    min_centred_cosine: float = 0.9999

    def __post_init__(self) -> None:
        for name in ("atol", "rtol"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise UsageError(f"--{name} must be a finite number >= 0, got {value}")
        for name in ("min_cosine", "min_centred_cosine"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and -1 <= value <= 1):
                raise UsageError(f"--{name.replace('_', '-')} must be a number in [-1, 1], got {value}")


#: fp32 against PyTorch, and fp32 against fp32 (docs/design.md, "Tolerances").
FP32_TOLERANCE = Tolerance()


def compare(reference: np.ndarray, candidate: np.ndarray, tolerance: Tolerance) -> dict:
    """Figures and verdict for two (N, classes) logit arrays."""
    ref = np.asarray(reference, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    if ref.shape != cand.shape:
        return _verdict(
            {"shape": [list(ref.shape), list(cand.shape)]},
            [f"output shape {list(cand.shape)} differs from the reference {list(ref.shape)}"],
            tolerance,
        )
    nonfinite = int((~np.isfinite(ref)).sum() + (~np.isfinite(cand)).sum())
    figures: dict = {"samples": int(ref.shape[0]), "nonfinite": nonfinite}
    reasons = []
    if nonfinite:
        reasons.append(f"{nonfinite} NaN/Inf values in the outputs")
        return _verdict(figures, reasons, tolerance)

    diff = np.abs(cand - ref)
    allowed = tolerance.atol + tolerance.rtol * np.abs(ref)
    failing = int((diff > allowed).sum())
    significant = np.abs(ref) > tolerance.atol
    cosines = rowwise_cosine(ref, cand)
    figures.update(
        max_abs=float(diff.max()),
        max_rel=float((diff[significant] / np.abs(ref[significant])).max()) if significant.any() else 0.0,
        worst_ratio=float((diff / allowed).max()),
        failing_elements=failing,
        elements=int(diff.size),
        min_cosine=float(cosines.min()),
        top1_agreement=float((ref.argmax(1) == cand.argmax(1)).mean()),
        **centred_figures(ref, cand),
        input_dependence=input_dependence(ref),
    )
    if failing:
        reasons.append(
            f"{failing} of {diff.size} logits outside atol {tolerance.atol:g} + rtol "
            f"{tolerance.rtol:g}·|ref| (max abs diff {figures['max_abs']:.3g})"
        )
    if figures["min_cosine"] < tolerance.min_cosine:
        reasons.append(f"cosine {figures['min_cosine']:.7f} < {tolerance.min_cosine}")
    centred_cosine = figures["centred_cosine"]
    if not centred_gate_applies(ref):
        figures["centred_gate"] = "not applied: the reference's logits do not depend on the input"
    elif centred_cosine is not None and centred_cosine < tolerance.min_centred_cosine:
        reasons.append(
            f"centred cosine {centred_cosine:.6f} < {tolerance.min_centred_cosine}: "
            "the outputs do not follow the inputs as the reference's do"
        )
    return _verdict(figures, reasons, tolerance)


def _verdict(figures: dict, reasons: list[str], tolerance: Tolerance) -> dict:
    return {
        **figures,
        "tolerance": asdict(tolerance),
        "verdict": "fail" if reasons else "pass",
        "reasons": reasons,
    }


def random_inputs(samples: int, resolution: int, seed: int) -> np.ndarray:
    """Standard-normal images in the normalised input space, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((samples, 3, resolution, resolution), dtype=np.float32)


def run_batched(run: Callable[[np.ndarray], np.ndarray], inputs: np.ndarray, batch: int) -> np.ndarray:
    """Run ``inputs`` through ``run`` in chunks of ``batch`` (the last chunk may be short)."""
    return np.concatenate([run(inputs[i : i + batch]) for i in range(0, len(inputs), batch)])


def parity_over_batches(
    reference: np.ndarray,
    run: Callable[[np.ndarray], np.ndarray],
    inputs: np.ndarray,
    batches: Iterable[int],
    tolerance: Tolerance = FP32_TOLERANCE,
) -> dict:
    """Compare ``run`` at each batch size against reference logits for the same inputs.

    Every batch size sees the same images, so a batch-dependent bug (a specialised batch
    dimension, a wrong reshape) shows up as a mismatch at one size only.
    """
    per_batch = {str(batch): compare(reference, run_batched(run, inputs, batch), tolerance) for batch in batches}
    reasons = [f"batch {b}: {r}" for b, result in per_batch.items() for r in result["reasons"]]
    worst = max(per_batch.values(), key=lambda r: r.get("max_abs", float("inf")))
    return {
        "samples": len(inputs),
        "batches": [int(b) for b in per_batch],
        "max_abs": worst.get("max_abs"),
        "min_cosine": min((r.get("min_cosine", 0.0) for r in per_batch.values()), default=None),
        "centred_cosine": min(
            (r["centred_cosine"] for r in per_batch.values() if r.get("centred_cosine") is not None), default=None
        ),
        "input_dependence": input_dependence(reference),
        "per_batch": per_batch,
        "tolerance": asdict(tolerance),
        "verdict": "fail" if reasons else "pass",
        "reasons": reasons,
    }

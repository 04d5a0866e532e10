"""How much a reduced-precision artifact changes the model's answers, and the gates on it.

Figures are computed on logits of the same inputs: top-1/top-5 agreement with fp32, logits
SQNR in dB (10·log10 of signal power over error power, the figure ORT's qdq_loss_debug
uses), mean cosine, max abs difference, accuracy of both models when labels exist, and the
centred SQNR and cosine (``figures.centred_figures``) that only credit the part of the
logits that depends on the input. The plain SQNR alone can be high for a model that
ignores its input, because per-class offsets dominate the signal power.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

from ghostexport.base.errors import UsageError
from ghostexport.evidence.comparison import MIN_INPUT_DEPENDENCE, centred_figures, input_dependence, sqnr_db

__all__ = ["BF16_GATE", "FP16_GATE", "INT8_GATE", "QualityGate", "judge", "measure", "meets", "sqnr_db"]

#: The accepted range of each gate field; a value outside it (NaN included) is a usage error.
_RANGES = {
    "min_sqnr_db": (-math.inf, math.inf),
    "min_centred_sqnr_db": (-math.inf, math.inf),
    "min_agreement": (0.0, 1.0),
    "min_mean_cosine": (-1.0, 1.0),
    "min_centred_cosine": (-1.0, 1.0),
    "max_accuracy_drop": (0.0, 100.0),
}


@dataclass(frozen=True)
class QualityGate:
    min_sqnr_db: float | None = None
    min_agreement: float | None = None
    min_mean_cosine: float | None = None  # mean over the samples
    max_accuracy_drop: float | None = None  # points (percent), needs labels
    min_centred_sqnr_db: float | None = None
    min_centred_cosine: float | None = None

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            low, high = _RANGES[field.name]
            if value is not None and not (
                isinstance(value, (int, float)) and math.isfinite(value) and low <= value <= high
            ):
                bounds = f"in [{low:g}, {high:g}]" if math.isfinite(low) else "finite"
                raise UsageError(f"{field.name.replace('_', '-')} must be a number {bounds}, got {value}")


#: int8 vs fp32 and fp16 vs fp32. The centred bars sit below what every measured model
#: reaches (docs/design.md gives the figures) and far above a model that ignores its input.
INT8_GATE = QualityGate(min_sqnr_db=20.0, min_agreement=0.95, min_centred_sqnr_db=20.0)
FP16_GATE = QualityGate(min_mean_cosine=0.999, min_agreement=0.99, min_centred_cosine=0.999)
#: an fp32 model run in bf16 (OpenVINO's CPU default on CPUs with bf16 instructions) vs fp32: bf16
#: keeps 8 significant bits to fp16's 11, so its bars sit one step below fp16's
BF16_GATE = QualityGate(min_mean_cosine=0.995, min_agreement=0.98, min_centred_cosine=0.99)
#: the gate of each reduced precision an fp32 model may be run at, by name
REDUCED_PRECISION_GATES = {"fp16": FP16_GATE, "f16": FP16_GATE, "bf16": BF16_GATE}


def measure(reference: np.ndarray, candidate: np.ndarray, labels: np.ndarray | None = None) -> dict:
    """Figures comparing candidate logits against reference (fp32) logits."""
    ref = reference.astype(np.float64)
    cand = candidate.astype(np.float64)
    finite = bool(np.isfinite(cand).all())
    figures = {
        "samples": len(ref),
        "top1_agreement": float(np.mean(ref.argmax(1) == cand.argmax(1))),
        # the reference's answer is among the candidate's five best
        "top5_agreement": float(
            np.mean([r in c for r, c in zip(ref.argmax(1), np.argsort(-cand, axis=1)[:, :5], strict=True)])
        ),
        "sqnr_db": round(sqnr_db(ref, cand), 3) if finite else None,
        "mean_cosine": float(
            np.mean(np.sum(ref * cand, 1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(cand, axis=1) + 1e-30))
        )
        if finite
        else None,
        "max_abs": float(np.max(np.abs(ref - cand))) if finite else None,
        **(centred_figures(ref, cand) if finite else {"centred_cosine": None, "centred_sqnr_db": None}),
        "input_dependence": input_dependence(ref),
        "nonfinite": int((~np.isfinite(cand)).sum()),
    }
    if labels is not None:
        figures["accuracy_reference"] = float(np.mean(ref.argmax(1) == labels))
        figures["accuracy"] = float(np.mean(cand.argmax(1) == labels))
        figures["accuracy_drop_points"] = round(100.0 * (figures["accuracy_reference"] - figures["accuracy"]), 4)
    return figures


def judge(figures: dict, gate: QualityGate, enforced: bool) -> dict:
    """Add ``gate``, ``reasons`` and ``verdict`` (pass/fail, or "reported" when not enforced)."""
    reasons = []
    if figures["nonfinite"]:
        reasons.append(f"{figures['nonfinite']} NaN/Inf logits")
    if gate.min_sqnr_db is not None and (figures["sqnr_db"] is None or figures["sqnr_db"] < gate.min_sqnr_db):
        reasons.append(f"SQNR {figures['sqnr_db']} dB < {gate.min_sqnr_db} dB")
    if gate.min_agreement is not None and figures["top1_agreement"] < gate.min_agreement:
        reasons.append(f"top-1 agreement {figures['top1_agreement']:.4f} < {gate.min_agreement}")
    mean_cosine = figures["mean_cosine"]
    if gate.min_mean_cosine is not None and (mean_cosine is None or mean_cosine < gate.min_mean_cosine):
        reasons.append(f"mean cosine {mean_cosine} < {gate.min_mean_cosine}")
    centred_sqnr, centred_cosine = figures.get("centred_sqnr_db"), figures.get("centred_cosine")
    if (figures.get("input_dependence") or 0.0) < MIN_INPUT_DEPENDENCE:  # centred figures would be noise
        centred_sqnr = centred_cosine = None
    if gate.min_centred_sqnr_db is not None and centred_sqnr is not None and centred_sqnr < gate.min_centred_sqnr_db:
        reasons.append(f"centred SQNR {centred_sqnr} dB < {gate.min_centred_sqnr_db} dB")
    if gate.min_centred_cosine is not None and centred_cosine is not None and centred_cosine < gate.min_centred_cosine:
        reasons.append(f"centred cosine {centred_cosine:.6f} < {gate.min_centred_cosine}")
    if gate.max_accuracy_drop is not None:
        drop = figures.get("accuracy_drop_points")
        if drop is None:
            reasons.append("--max-accuracy-drop needs labelled evaluation data (class sub-folders or FILE.labels.npy)")
        elif drop > gate.max_accuracy_drop:
            reasons.append(f"accuracy drop {drop:.2f} points > {gate.max_accuracy_drop}")
    verdict = ("fail" if reasons else "pass") if enforced else "reported"
    return {**figures, "gate": asdict(gate), "enforced": enforced, "verdict": verdict, "reasons": reasons}


def meets(figures: dict, gate: QualityGate) -> bool:
    return not judge(figures, gate, enforced=True)["reasons"]

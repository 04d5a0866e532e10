"""How much a reduced-precision artifact changes the model's answers, and the gates on it.

Figures are computed on logits of the same inputs: top-1/top-5 agreement with fp32, logits
SQNR in dB (10·log10 of signal power over error power, the figure ORT's qdq_loss_debug
uses), cosine, max abs difference, and accuracy of both models when labels exist.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class QualityGate:
    min_sqnr_db: float | None = None
    min_agreement: float | None = None
    min_cosine: float | None = None
    max_accuracy_drop: float | None = None  # points (percent), needs labels


#: DESIGN.md: int8 vs fp32 and fp16 vs fp32.
INT8_GATE = QualityGate(min_sqnr_db=20.0, min_agreement=0.95)
FP16_GATE = QualityGate(min_cosine=0.999, min_agreement=0.99)


def sqnr_db(reference: np.ndarray, candidate: np.ndarray) -> float:
    signal = float(np.sum(np.square(reference, dtype=np.float64)))
    noise = float(np.sum(np.square(reference.astype(np.float64) - candidate)))
    if noise == 0:
        return float("inf")
    return 10.0 * np.log10(signal / noise) if signal > 0 else float("-inf")


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
        "cosine": float(
            np.mean(np.sum(ref * cand, 1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(cand, axis=1) + 1e-30))
        )
        if finite
        else None,
        "max_abs_diff": float(np.max(np.abs(ref - cand))) if finite else None,
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
    if gate.min_cosine is not None and (figures["cosine"] is None or figures["cosine"] < gate.min_cosine):
        reasons.append(f"cosine {figures['cosine']} < {gate.min_cosine}")
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

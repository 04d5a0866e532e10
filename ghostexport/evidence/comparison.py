"""The numbers every comparison of two sets of logits is judged on, computed in one place.

Plain figures (SQNR, cosine, max |Δ|) compare the logits as they are. At random init, or
whenever a model's answer barely depends on its input, most of each logit is a per-class
constant; two models can then agree to 1e-4 while one of them computes on a negated or
channel-swapped image. The *centred* figures remove that constant first — each model's
per-class mean over the batch — so they measure whether the candidate responds to the
inputs the way the reference does. They need at least two samples.
"""

from __future__ import annotations

import numpy as np

#: Below this fraction of the logits' spread, the reference barely depends on its input: its
#: centred logits are then at the level of float rounding, the centred figures are noise, and
#: their gates are not applied (a warning says so). Measured: trained and BN-calibrated
#: random-init models 0.3–0.6; random-init v3 with arbitrary BN statistics 0.0034 (its
#: centred figures still catch a wrong input); a checkpoint of random values 1e-7 or 0.
MIN_INPUT_DEPENDENCE = 1e-3
NO_INPUT_DEPENDENCE_WARNING = (
    "the reference's logits barely depend on the input (spread across samples {dependence:.2e} of their range): "
    "no figure can tell inputs apart and the centred gates are not applied; use trained weights or real --data"
)


def sqnr_db(reference: np.ndarray, candidate: np.ndarray) -> float:
    """10·log10(signal power / error power): the figure ORT's qdq_loss_debug uses."""
    reference = np.asarray(reference, dtype=np.float64)
    noise = float(np.sum(np.square(reference - np.asarray(candidate, dtype=np.float64))))
    signal = float(np.sum(np.square(reference)))
    if noise == 0:
        return float("inf")
    return 10.0 * float(np.log10(signal / noise)) if signal > 0 else float("-inf")


def rowwise_cosine(reference: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """Cosine similarity of each sample's logits; identical rows (zeros included) are 1."""
    numerator = (reference * candidate).sum(1)
    denominator = np.linalg.norm(reference, axis=1) * np.linalg.norm(candidate, axis=1)
    exact = np.all(reference == candidate, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cosine = np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), 0.0)
    return np.where(exact, 1.0, cosine)


def centred(logits: np.ndarray) -> np.ndarray:
    """Logits minus each class's mean over the batch: what depends on the input."""
    return logits - logits.mean(axis=0, keepdims=True)


def centred_figures(reference: np.ndarray, candidate: np.ndarray) -> dict:
    """``centred_cosine`` and ``centred_sqnr_db`` over the whole batch (None below 2 samples).

    The cosine is taken over the batch's centred logits as one vector, so a model whose
    answers do not follow the input the way the reference's do scores near 0, whatever the
    per-class offsets.
    """
    ref = np.asarray(reference, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    if len(ref) < 2:
        return {"centred_cosine": None, "centred_sqnr_db": None}
    ref_c, cand_c = centred(ref).ravel(), centred(cand).ravel()
    if np.array_equal(ref_c, cand_c):
        cosine = 1.0
    else:
        norm = float(np.linalg.norm(ref_c) * np.linalg.norm(cand_c))
        cosine = float(ref_c @ cand_c / norm) if norm > 0 else 0.0
    return {"centred_cosine": cosine, "centred_sqnr_db": round(sqnr_db(ref_c, cand_c), 3)}


def centred_gate_applies(reference: np.ndarray) -> bool:
    """Whether the centred figures measure the model rather than float rounding (see MIN_INPUT_DEPENDENCE)."""
    dependence = input_dependence(reference)
    return dependence is not None and dependence >= MIN_INPUT_DEPENDENCE


def input_dependence(reference: np.ndarray) -> float | None:
    """The spread of the logits across samples as a fraction of their overall spread.

    About 0.5 for a network whose answer follows its input; near 0 when every sample gets
    the same logits (e.g. an untrained model with default BatchNorm statistics), in which
    case no parity figure can tell one input from another.
    """
    ref = np.asarray(reference, dtype=np.float64)
    if len(ref) < 2:
        return None
    total = float(ref.std())
    return float(ref.std(axis=0).mean() / total) if total > 0 else 0.0

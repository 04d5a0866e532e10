"""``predict``: top-k classes for real images, preprocessed as the model records."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from ghostexport.base.errors import UsageError
from ghostexport.base.files import read_bounded
from ghostexport.evidence.preprocess import load_image
from ghostexport.folder.artifacts import resolve_model
from ghostexport.runtime.ort import input_shape, run_logits
from ghostexport.runtime.providers import cpu_session

MAX_LABELS_BYTES = 16 * 1024 * 1024
RANDOM_WEIGHTS_WARNING = (
    "{path} has random weights (built without --checkpoint/--weights): these classes are meaningless; "
    "build with a trained checkpoint"
)


@dataclass
class Prediction:
    image: str
    top: list[dict]


@dataclass
class PredictResult:
    predictions: list[Prediction]
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        return {
            "predictions": [{"image": p.image, "top": p.top} for p in self.predictions],
            "warnings": self.warnings,
        }


def has_random_weights(ref) -> bool:
    """From the manifest, else the ONNX metadata; False for a foreign model (nothing is known)."""
    if ref.manifest is not None:
        return ref.manifest["model"].get("checkpoint") is None
    return ref.metadata.get("ghostexport.checkpoint_sha256") == ""


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet-1k class names (first synonym), in model output order."""
    text = resources.files("ghostexport.resources").joinpath("imagenet_classes.tsv").read_text(encoding="utf-8")
    rows = [line.split("\t") for line in text.splitlines()[1:] if line.strip()]
    return [row[2].split(",")[0].strip() for row in sorted(rows, key=lambda row: int(row[0]))]


def read_labels(path: str | Path, num_classes: int) -> list[str]:
    """One label per line; a TSV takes its last column; a header line 'index…' is skipped."""
    try:
        text = read_bounded(path, MAX_LABELS_BYTES, "labels file").decode("utf-8", errors="replace")
    except FileNotFoundError as exc:
        raise UsageError(f"cannot read --labels {path} ({exc.strerror})") from exc
    lines = [line.rstrip("\n") for line in text.splitlines() if line.strip()]
    if lines and lines[0].lower().startswith("index"):
        lines = lines[1:]
    labels = [line.split("\t")[-1].strip() for line in lines]
    if len(labels) != num_classes:
        raise UsageError(f"--labels {path} has {len(labels)} labels; the model has {num_classes} classes")
    return labels


def predict(
    model: str | Path | None, images: list[str | Path], topk: int = 5, labels: str | Path | None = None
) -> PredictResult:
    """Top-``topk`` classes per image; a model with random weights comes with a warning."""
    if not images:
        raise UsageError("give at least one IMAGE")
    if topk < 1:
        raise UsageError("--topk must be at least 1")
    ref = resolve_model(model)
    if ref.preprocess is None:
        raise UsageError(
            f"{ref.path} records no preprocessing (not built by ghostexport): predict cannot prepare images for it"
        )
    session = cpu_session(str(ref.path))
    resolution = input_shape(session)[-1]
    batch = np.stack([load_image(Path(image), ref.preprocess, resolution) for image in images])
    logits = run_logits(session, batch)
    classes = logits.shape[1]
    names = (
        read_labels(labels, classes)
        if labels
        else (imagenet_labels() if classes == 1000 else [f"class {i}" for i in range(classes)])
    )
    shifted = np.exp(logits - logits.max(1, keepdims=True))
    probabilities = shifted / shifted.sum(1, keepdims=True)
    results = []
    for image, row in zip(images, probabilities, strict=True):
        best = np.argsort(-row)[: min(topk, classes)]
        results.append(
            Prediction(str(image), [{"index": int(i), "label": names[i], "probability": float(row[i])} for i in best])
        )
    warnings = [RANDOM_WEIGHTS_WARNING.format(path=ref.path)] if has_random_weights(ref) else []
    return PredictResult(results, warnings)

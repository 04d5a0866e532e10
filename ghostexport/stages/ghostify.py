"""``ghostify``: a user's CNN with its convolutions replaced by Ghost modules, fine-tuned, then built.

spec -> original model (factory or registry name, optional checkpoint) -> the rule's
replacements with warm-started weights -> counts before/after -> (optional) distillation
fine-tuning on ``--train``, measured on ``--eval`` -> the ghosted weights saved (safetensors)
-> the accuracy gate -> the original and the ghosted model each through ``build`` (export,
simplify, parity gates, manifest), so ``quantize``, ``check``, ``bench`` and ``pipeline``
take them like any build folder.

The verdict is earned on held-out data: with labelled ``--eval`` the ghosted model may lose
at most ``max_drop`` points of accuracy against the original, measured on the same images;
with unlabelled ``--eval`` its top-1 agreement with the original may fall at most as far
below 100% (disagreeing on k% of images can cost at most k points of accuracy). A model
that fails is not built (exit 1); its weights and training state stay for ``--resume``.
Without ``--eval`` nothing was measured and the verdict says so: "unmeasured", never PASS.
The exported weights are those of the last epoch, the ones the figure was measured on.

Everything ghostify writes besides the two build folders lives in ``<out>/<name>.ghostify/``:
``weights.safetensors`` (what the ghosted build loads and the manifest hashes),
``train_state.pt`` (for ``--resume``) and ``ghostify.json`` (the table, counts, training).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ghostexport.base.errors import GateFailed
from ghostexport.base.progress import Progress, channel
from ghostexport.folder.naming import output_root
from ghostexport.stages.specs import BuildSpec, GhostifySpec

WEIGHTS_FILE = "weights.safetensors"
REPORT_FILE = "ghostify.json"


@dataclass
class GhostifyResult:
    work: Path
    rows: list[dict]
    counts: dict
    training: dict | None
    original: object = None  # BuildResult of the original, None with build=False
    ghosted: object = None  # BuildResult of the ghosted model
    seconds: dict = field(default_factory=dict)

    @property
    def accuracy_verdict(self) -> str:
        """ "pass"/"fail" on the held-out figure, "unmeasured" without one (no --train/--eval)."""
        return (self.training or {}).get("gate", {}).get("verdict", "unmeasured")

    @property
    def verdict(self) -> str:
        """ "fail" if the accuracy gate or a build's parity failed; "unmeasured" if accuracy was not measured."""
        built = [r for r in (self.original, self.ghosted) if r is not None]
        if self.accuracy_verdict == "fail" or any(r.verdict != "pass" for r in built):
            return "fail"
        return self.accuracy_verdict

    def as_json(self) -> dict:
        return {
            "work": str(self.work),
            "layers": self.rows,
            "counts": self.counts,
            "training": self.training,
            "original": str(self.original.folder) if self.original else None,
            "ghosted": str(self.ghosted.folder) if self.ghosted else None,
            "verdict": self.verdict,
            "seconds": {k: round(v, 2) for k, v in self.seconds.items()},
        }


def ghostify(
    spec: GhostifySpec | None = None,
    progress: Progress | None = None,
    on_step: Callable[[int, int, float], None] | None = None,
    **fields,
) -> GhostifyResult:
    """Replace, count, fine-tune (with ``train``), save and build; see the module docstring.

    Takes a ``GhostifySpec`` or its fields as keywords (``ghostify(model="pkg.nets:cnn", ratio=2)``);
    ``on_step(step, steps, loss)`` is called after every training step (a progress bar).
    """
    spec = (spec or GhostifySpec(**fields)).validated()
    from ghostexport.model.sources import trusted_factories

    with trusted_factories([spec.model]):  # named by the user: the builds may rebuild it
        return _ghostify(spec, progress, on_step)


def _ghostify(spec: GhostifySpec, progress: Progress | None, on_step) -> GhostifyResult:
    say = channel(progress)
    seconds: dict[str, float] = {}
    with output_root(Path(spec.out)) as root:
        original, ghosted, rows, counts = _replace(spec, say)
        work = root / f"{spec.folder_stem()}.ghostify"
        work.mkdir(exist_ok=True)
        training = _fine_tune(spec, original, ghosted, work, seconds, say, on_step) if spec.train else None
        weights = _save_weights(ghosted, work / WEIGHTS_FILE)
        _write_report(work, spec, rows, counts, training)
        result = GhostifyResult(work, rows, counts, training, seconds=seconds)
        if result.accuracy_verdict == "fail":
            raise GateFailed(training["gate"]["message"], result)
        if spec.build:
            result.original, result.ghosted = _build_both(spec, weights, counts, training, progress)
    return result


def _replace(spec: GhostifySpec, say: Progress):
    from ghostexport.folder.reference import prepare_custom_model
    from ghostexport.model.counting import count_macs, count_params
    from ghostexport.model.ghost.rule import ghostify_model

    original = prepare_custom_model(spec.model, spec.num_classes, spec.seed, spec.checkpoint, spec.resolution)
    ghosted, rows = ghostify_model(original, spec.rule())
    counts = {
        "params_before": count_params(original),
        "params_after": count_params(ghosted),
        "macs_before": count_macs(original, spec.resolution),
        "macs_after": count_macs(ghosted, spec.resolution),
        "layers_replaced": sum(row["replaced"] for row in rows),
        "layers_considered": len(rows),
        "resolution": spec.resolution,
    }
    say(
        "ghostify",
        f"{counts['layers_replaced']}/{counts['layers_considered']} convolutions replaced (s={spec.ratio}, d={spec.dw_size}): "
        f"params {counts['params_before'] / 1e6:.2f}M -> {counts['params_after'] / 1e6:.2f}M, "
        f"MACs {counts['macs_before'] / 1e6:.1f}M -> {counts['macs_after'] / 1e6:.1f}M at {spec.resolution}²",
    )
    return original, ghosted, rows, counts


def _fine_tune(spec: GhostifySpec, original, ghosted, work: Path, seconds: dict, say: Progress, on_step) -> dict:
    from ghostexport.model.ghost.distill import distill, teacher_logits

    tick = time.perf_counter()
    train, held, evaluate, measure = _data(spec, original)
    soft = teacher_logits(original, train.inputs)
    before = {"original": evaluate(original), "ghosted_warm_start": evaluate(ghosted)}
    labelled = "labelled" if train.labels is not None else "no labels: distillation only"
    say(
        "train",
        f"{len(train)} training images ({labelled}); held-out {measure}: original {_pct(before['original'])}, "
        f"ghosted before fine-tuning {_pct(before['ghosted_warm_start'])}",
    )
    recipe = spec.recipe()

    def on_epoch(epoch) -> None:
        say(
            "train",
            f"epoch {epoch.epoch}/{recipe.epochs}: loss {epoch.loss:.4f}, train {_pct(epoch.train_accuracy)}, "
            f"held-out {_pct(epoch.eval_accuracy)} ({epoch.seconds:.1f} s)",
        )

    history, stopped = distill(
        ghosted, soft, train.inputs, train.labels, recipe, work, evaluate, on_epoch, on_step, spec.resume
    )
    seconds["train"] = time.perf_counter() - tick
    after = evaluate(ghosted)
    drop = None if after is None else round(100 * (before["original"] - after), 3)
    return {
        "recipe": recipe.as_dict(),
        "train": train.describe(),
        "eval": held.describe() if held is not None else None,
        "measure": measure,
        "before": before,
        "after": after,
        "drop_points": drop,
        "gate": _accuracy_gate(measure, before["original"], after, drop, spec.max_drop),
        "epochs": [vars(epoch) for epoch in history],
        "stopped": stopped,
        "seconds": round(seconds["train"], 2),
        "warm_start": WARM_START,
    }


def _accuracy_gate(measure: str, original: float | None, after: float | None, drop: float | None, limit: float) -> dict:
    """The held-out gate: with labels, accuracy points lost; without, agreement with the original below 100%."""
    gate = {"measure": measure, "max_drop_points": limit, "weights": "last epoch"}
    if after is None:
        return {
            **gate,
            "verdict": "unmeasured",
            "message": "no held-out data: give --eval to measure the ghosted model",
        }
    lost = drop if measure == "accuracy" else round(100 * (1 - after), 3)
    gate["lost_points"] = lost
    if lost <= limit:
        side = "below" if lost >= 0 else "above"
        reference = "the original's" if measure == "accuracy" else "100% agreement"
        return {**gate, "verdict": "pass", "message": f"{abs(lost):.2f} points {side} {reference} (limit {limit:g})"}
    what = (
        f"held-out accuracy {100 * after:.2f}% is {lost:.2f} points below the original's {100 * original:.2f}%"
        if measure == "accuracy"
        else f"top-1 agreement with the original on held-out images is {100 * after:.2f}%, {lost:.2f} points below 100%"
    )
    return {
        **gate,
        "verdict": "fail",
        "message": f"ghostify: {what} (--max-drop {limit:g}): fine-tune longer (--epochs, --resume) or on more images",
    }


WARM_START = (
    "primary conv (and its BN) = the original's first m filters; each ghost map's depthwise centre tap = the "
    "least-squares multiple of its intrinsic filter closest to the original filter it replaces"
)


def _data(spec: GhostifySpec, original):
    """Training data, held-out data, the held-out measure as a function of a model, and its name."""
    from ghostexport.evidence.data import load_dataset
    from ghostexport.folder.records import preprocess_config
    from ghostexport.model.ghost.distill import accuracy, teacher_logits

    shape = (3, spec.resolution, spec.resolution)
    train = load_dataset(spec.train, preprocess_config(spec.resolution), shape, spec.seed)
    held = load_dataset(spec.eval, preprocess_config(spec.resolution), shape, spec.seed) if spec.eval else None
    if held is None:
        return train, None, lambda _model: None, "none (no --eval)"
    if held.labels is not None:
        return train, held, lambda model: accuracy(model, held.inputs, held.labels), "accuracy"
    agreed = teacher_logits(original, held.inputs).argmax(1).numpy()
    return train, held, lambda model: accuracy(model, held.inputs, agreed), "top-1 agreement with the original"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f}%"


def _save_weights(model, path: Path) -> Path:
    from safetensors.torch import save

    from ghostexport.base.files import atomic_write_bytes

    state = {name: tensor.detach().contiguous() for name, tensor in model.state_dict().items()}
    atomic_write_bytes(path, save(state, metadata={"format": "pt"}))
    return path


def _write_report(work: Path, spec: GhostifySpec, rows, counts, training) -> None:
    from ghostexport.base.files import atomic_write_bytes

    payload = {
        "model": spec.model,
        "rule": spec.rule().as_dict(),
        "counts": counts,
        "layers": rows,
        "training": training,
    }
    atomic_write_bytes(work / REPORT_FILE, (json.dumps(payload, indent=2) + "\n").encode())


def _build_both(spec: GhostifySpec, weights: Path, counts: dict, training: dict | None, progress):
    from ghostexport.stages.build import build

    common = {
        "model": spec.model,
        "resolution": spec.resolution,
        "seed": spec.seed,
        "out": spec.out,
        "target": spec.target,
    }
    original = build(BuildSpec(checkpoint=spec.checkpoint, num_classes=spec.num_classes, **common), progress=progress)
    origin = {**spec.rule().as_dict(), "counts": counts, "training": training, "weights": str(weights)}
    ghosted = build(
        BuildSpec(checkpoint=weights, num_classes=spec.num_classes, ghostify=origin, **common), progress=progress
    )
    return original, ghosted

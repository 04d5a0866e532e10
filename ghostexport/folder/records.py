"""The manifest's records: their types, how each is made, and how a folder's history grows.

``manifest.json`` (its types in ``folder.schema``) is written by
every stage; this module is the one place that says what goes into it. Stages compute
figures and hand them here; ``manifest.py`` reads, writes and validates the file.

Figure names are the same everywhere: ``max_abs`` (largest absolute logit difference),
``min_cosine`` (worst sample's cosine, the fp32 parity figure), ``mean_cosine`` (the
quality figure of reduced precision), ``sqnr_db``, ``centred_cosine``, ``centred_sqnr_db``,
``top1_agreement``, ``input_dependence``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ghostexport.base.errors import UsageError
from ghostexport.base.version import __version__
from ghostexport.folder.commit import update_manifest
from ghostexport.folder.manifest import read_manifest
from ghostexport.folder.schema import SCHEMA_VERSION, Artifact, BenchEntry, CheckEntry, Manifest, Model, Preprocess
from ghostexport.targets.host import environment

#: previous builds of a folder kept in its manifest's ``history``
HISTORY_LIMIT = 20
#: The eval transform published GhostNet weights expect (timm's: bicubic, crop 0.875).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_CROP_PCT = 0.875
DEFAULT_INTERPOLATION = "bicubic"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_manifest(command: str, model: Model, artifacts: dict[str, Artifact]) -> Manifest:
    return {
        "schema": SCHEMA_VERSION,
        "ghostexport": __version__,
        "created": now(),
        "command": command,
        "model": model,
        "environment": environment(),
        "artifacts": artifacts,
        "checks": [],
        "benchmarks": [],
    }


def model_name(model: dict) -> str:
    """``ghostnet 1×``, or a user's model by its source (``mynets:cnn, ghosted s=2 d=3``)."""
    source = model.get("source")
    if model["variant"] != "custom" or not source:
        return f"{model['variant']} {model['width']:g}×"
    rule = source.get("ghostify")
    return source["model"] + (f", ghosted s={rule['ratio']} d={rule['dw_size']}" if rule else "")


def preprocess_config(resolution: int) -> Preprocess:
    """The eval transform a build records: resize to resolution/crop_pct, centre crop, ImageNet normalisation."""
    return {
        "resize": math.floor(resolution / DEFAULT_CROP_PCT),
        "crop_pct": DEFAULT_CROP_PCT,
        "interpolation": DEFAULT_INTERPOLATION,
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
    }


def model_record(spec, num_classes: int, counts: dict, checkpoint: dict | None, bn_statistics) -> Model:
    """What was built, from a validated ``BuildSpec`` and what building it found (class count, counts)."""
    return {
        "variant": spec.variant,
        "width": spec.width,
        "num_classes": num_classes,
        "resolution": spec.resolution,
        "batch": spec.batch if spec.batch else "dynamic",
        **counts,
        "checkpoint": checkpoint,
        "seed": spec.seed,
        "bn_statistics": bn_statistics,
        "preprocess": preprocess_config(spec.resolution),
        "target": target_record(spec),
        **({"source": source_record(spec)} if spec.model is not None else {}),
    }


def source_record(spec) -> dict:
    """Where a user's model comes from (``--model``), the rule that ghosted it, and how it was trained."""
    from ghostexport.model.sources import describe_source

    return {
        "model": spec.model,
        "kind": describe_source(spec.model),
        "num_classes": spec.num_classes,
        "ghostify": spec.ghostify,
    }


def target_record(spec) -> dict:
    """The target a build was made for, its profile, and the layout it got (a flag may override the profile)."""
    profile = spec.profile
    return {
        "name": profile.name,
        "runs_on": profile.runs_on,
        "profile": {
            "align_channels": profile.align_channels,
            "split_concat_convs": profile.split_concat_convs,
            "static_batch": profile.static_batch,
            "op_forms": profile.op_forms,
        },
        "applied": {
            "align_channels": spec.align_channels,
            "split_concat_convs": spec.split_concat_convs,
            "static_batch": spec.batch,
            "op_forms": profile.op_forms,
        },
        "reason": profile.layout_reason,
    }


def onnx_metadata(model: Model) -> dict[str, str]:
    """The manifest's model fields that a lone .onnx must carry (metadata_props)."""
    pre = model["preprocess"]
    return {
        "ghostexport.variant": model["variant"],
        "ghostexport.width": f"{model['width']:g}",
        "ghostexport.num_classes": str(model["num_classes"]),
        "ghostexport.resolution": str(model["resolution"]),
        "ghostexport.mean": json.dumps(pre["mean"]),
        "ghostexport.std": json.dumps(pre["std"]),
        "ghostexport.crop_pct": f"{pre['crop_pct']:g}",
        "ghostexport.interpolation": pre["interpolation"],
        "ghostexport.checkpoint_sha256": model["checkpoint"]["sha256"] if model["checkpoint"] else "",
        "ghostexport.seed": str(model["seed"]),
        "ghostexport.target": (model.get("target") or {}).get("name", "host"),
        "ghostexport.version": __version__,
    }


def artifact_verdict(record: Artifact | None) -> str | None:
    """An artifact's verdict over all its gates: fail if one failed, reported if one was only reported, else pass.

    An fp32 OpenVINO IR run in bf16 carries two (its f32 parity and its bf16 quality); None
    where a record has no gate (a foreign file).
    """
    verdicts = {block["verdict"] for block in ((record or {}).get("parity"), (record or {}).get("quality")) if block}
    return next((verdict for verdict in ("fail", "reported", "pass") if verdict in verdicts), None)


def file_record(data: bytes, parent: str | None, **fields: Any) -> Artifact:
    """Every artifact record starts with its bytes' hash and size and the sha256 it was made from."""
    return {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "parent": parent, **fields}


def built_artifact_record(data: bytes, opset: int, nodes: int, export: dict, parity: dict) -> Artifact:
    return file_record(data, None, opset=opset, nodes=nodes, export=export, parity=parity)


def quantized_artifact_record(data: bytes, proto, parent: str, made: dict, measured: dict) -> Artifact:
    """``made``: mode, recipe and what the recipe recorded; ``measured``: quality, data, environment, time."""
    from ghostexport.graph.export import op_counts

    return file_record(data, parent, nodes=len(proto.graph.node), ops=op_counts(proto), **made, **measured)


def record_artifact(manifest: Manifest, name: str, record: Artifact) -> None:
    """Add ``name`` — unless the artifact it was made from changed meanwhile (then nothing is written)."""
    source = record.get("source", "model.onnx")
    current = manifest["artifacts"].get(source, {}).get("sha256")
    if current != record["parent"]:
        raise UsageError(
            f"{source} changed while {name} was being made from it (sha256 {record['parent'][:12]} -> "
            f"{str(current)[:12]}): nothing written; run the command again"
        )
    manifest["artifacts"][name] = record


def verified_on_real_data(record: dict | None) -> bool:
    """Whether an artifact record's quality gate was enforced on real data and passed."""
    quality = (record or {}).get("quality")
    return isinstance(quality, dict) and quality.get("verdict") == "pass"


def refuse_downgrade(folder: Path, name: str, existing: dict | None, synthetic: bool, allowed: bool) -> None:
    """Refuse to replace an artifact verified on real data with one whose gate would only be reported.

    A folder's verified artifact is its evidence; a synthetic-data run must not erase it
    unnoticed (``--replace-verified`` says it is meant).
    """
    if synthetic and not allowed and verified_on_real_data(existing):
        data = (existing.get("calibration") or existing.get("evaluation") or {}).get("source", "real data")
        raise UsageError(
            f"{folder / name} passed its quality gate on {data}; synthetic data would replace it with one whose "
            "gate is only reported: give --calib with real images, or --replace-verified to replace it anyway"
        )


def committing(
    folder: Path, name: str, record: Artifact, seen: dict | None, synthetic: bool, allowed: bool, say
) -> Callable[[Manifest], None]:
    """The manifest change that records ``name``, checked again under the folder's lock.

    ``seen`` is the record of ``name`` when the run started: if another run wrote one since
    (two quantizes at once), this one still replaces it, but says so; a downgrade that became
    one meanwhile is refused like any other.
    """

    def change(manifest: Manifest) -> None:
        existing = manifest["artifacts"].get(name)
        refuse_downgrade(folder, name, existing, synthetic, allowed)
        if existing is not None and (seen or {}).get("sha256") != existing.get("sha256"):
            say(
                "replace",
                f"{name} was written by another run while this one ran (sha256 {str(existing.get('sha256'))[:12]}, "
                f"verdict {(existing.get('quality') or existing.get('parity') or {}).get('verdict', '?')}): "
                "replaced with this run's",
            )
        record_artifact(manifest, name, record)

    return change


def replaced_build(folder: Path) -> dict | None:
    """What a rebuild of ``folder`` replaces: its files and a summary of its manifest, with its history."""
    if not folder.is_dir():
        return None
    files = sorted(entry.name for entry in folder.iterdir() if not entry.name.startswith("."))
    try:
        old = read_manifest(folder)
    except UsageError:
        old = {}
    summary = {
        "replaced": now(),
        "created": old.get("created"),
        "command": old.get("command"),
        "artifacts": {name: record.get("sha256") for name, record in (old.get("artifacts") or {}).items()},
        "checks": len(old.get("checks") or []),
        "benchmarks": len(old.get("benchmarks") or []),
        "removed_files": files,
    }
    history = old.get("history") if isinstance(old.get("history"), list) else []
    return {**summary, "history": history[-(HISTORY_LIMIT - 1) :]}


def with_history(manifest: Manifest, replaced: dict | None) -> Manifest:
    """The new build's manifest, carrying the builds it replaced (newest last)."""
    if replaced is not None:
        previous = dict(replaced)
        manifest["history"] = [*previous.pop("history"), previous]
    return manifest


def check_record(
    command: str | None, provider: str, verdict: str, warnings: list[str], results: list[dict]
) -> CheckEntry:
    return {
        "created": now(),
        "command": command or "ghostexport.stages.check(...)",
        "provider": provider,
        "verdict": verdict,
        "warnings": warnings,
        "results": results,
    }


def bench_record(command: str | None, provider: str, environment: dict, rows: list[dict]) -> BenchEntry:
    return {
        "created": now(),
        "command": command or "ghostexport.stages.bench(...)",
        "provider": provider,
        "environment": environment,
        "results": rows,
    }


def append(folder: Path, key: str, record: CheckEntry | BenchEntry) -> None:
    """Append a check or bench record to ``folder``'s manifest, under its lock."""
    update_manifest(folder, lambda manifest: manifest.setdefault(key, []).append(record))

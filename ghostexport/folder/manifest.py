"""manifest.json, schema 1: reading, writing and validating the evidence that travels with every folder.

What goes into it is ``records.py``'s; its JSON Schema ships as ``resources/manifest.schema.json``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ghostexport.base.errors import UsageError
from ghostexport.base.files import atomic_write_text, read_bounded

SCHEMA = 1
MANIFEST_NAME = "manifest.json"


def write_manifest(folder: Path, manifest: dict) -> None:
    atomic_write_text(folder / MANIFEST_NAME, json.dumps(manifest, indent=2) + "\n")


#: far above any real manifest (history, checks and benchmarks included), far below memory
MAX_MANIFEST_BYTES = 64 * 1024 * 1024


def read_manifest(folder: Path) -> dict:
    """The folder's manifest, refused (exit 2) unless it is a bounded regular file with the expected shape."""
    path = Path(folder) / MANIFEST_NAME
    try:
        data = read_bounded(path, MAX_MANIFEST_BYTES, "manifest")
    except FileNotFoundError as exc:
        raise UsageError(
            f"{folder} has no {MANIFEST_NAME}: is it a ghostexport build folder? Run ghostexport build first"
        ) from exc
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise UsageError(f"{path} is unreadable ({exc}): rebuild the folder with ghostexport build") from exc
    problem = manifest_problem(manifest)
    if problem:
        raise UsageError(f"{path} is not a valid ghostexport manifest ({problem}): rebuild the folder")
    return manifest


def manifest_problem(manifest) -> str | None:
    """What makes ``manifest`` unusable, in a few words, or None: the fields later stages rely on."""
    if not isinstance(manifest, dict):
        return f"a JSON {type(manifest).__name__}, not an object"
    if manifest.get("schema") != SCHEMA:
        return f"schema {manifest.get('schema')!r}; this ghostexport reads schema {SCHEMA}"
    model, artifacts = manifest.get("model"), manifest.get("artifacts")
    if not isinstance(model, dict):
        return "no 'model' object"
    if not isinstance(artifacts, dict) or not artifacts:
        return "'artifacts' must map file names to records"
    for name, record in artifacts.items():
        problem = _artifact_problem(record)
        if problem:
            return f"artifacts.{name}: {problem}"
    for key in ("checks", "benchmarks"):
        if not isinstance(manifest.get(key, []), list):
            return f"'{key}' must be a list"
    expected = {"variant": str, "num_classes": int, "resolution": int, "seed": int, "preprocess": dict}
    for key, kind in expected.items():
        if not isinstance(model.get(key), kind) or isinstance(model.get(key), bool):
            return f"model.{key} missing or not a {kind.__name__}"
    if not isinstance(model.get("width"), (int, float)) or not math.isfinite(model["width"]) or model["width"] <= 0:
        return "model.width must be a positive number"
    if "checkpoint" not in model:
        return "model.checkpoint missing (null for random init)"
    if model.get("checkpoint") is not None and not (
        isinstance(model["checkpoint"], dict)
        and isinstance(model["checkpoint"].get("path"), str)
        and isinstance(model["checkpoint"].get("sha256"), str)
    ):
        return "model.checkpoint must be null or have a path and a sha256"
    preprocess = model["preprocess"]
    for key in ("mean", "std"):
        values = preprocess.get(key)
        if not (
            isinstance(values, list)
            and len(values) == 3
            and all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)
        ):
            return f"model.preprocess.{key} must be three finite numbers"
    if any(v <= 0 for v in preprocess["std"]):
        return "model.preprocess.std must be positive"
    if (
        not isinstance(preprocess.get("resize"), int)
        or isinstance(preprocess.get("resize"), bool)
        or preprocess["resize"] < 1
    ):
        return "model.preprocess.resize must be a positive integer"
    if not isinstance(preprocess.get("crop_pct"), (int, float)) or not 0 < preprocess["crop_pct"] <= 1:
        return "model.preprocess.crop_pct must be in (0, 1]"
    if preprocess.get("interpolation") not in ("bicubic", "bilinear", "nearest", "lanczos"):
        return "model.preprocess.interpolation must be bicubic, bilinear, nearest or lanczos"
    if model.get("batch") != "dynamic" and (
        not isinstance(model.get("batch"), int) or isinstance(model["batch"], bool)
    ):
        return "model.batch must be 'dynamic' or an integer"
    if model.get("bn_statistics") is not None and not isinstance(model["bn_statistics"], dict):
        return "model.bn_statistics must be null or an object"
    return None


def _artifact_problem(record) -> str | None:
    if not isinstance(record, dict):
        return "not an object"
    sha = record.get("sha256")
    if not (isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)):
        return "sha256 must be 64 hex digits"
    if record.get("parent") is not None and not isinstance(record["parent"], str):
        return "parent must be null or a sha256"
    if record.get("mode") is not None and record["mode"] not in ("int8", "fp16", "int8-dynamic"):
        return "mode must be int8, fp16 or int8-dynamic"
    for key in ("calibration", "evaluation", "quality", "parity", "recipe"):
        if record.get(key) is not None and not isinstance(record[key], dict):
            return f"{key} must be an object"
    origin = (record.get("calibration") or {}).get("origin")
    if origin is not None and not isinstance(origin, str):
        return "calibration.origin must be a path"
    return None


def manifest_schema() -> dict:
    """The published JSON Schema of manifest.json (``ghostexport/resources/manifest.schema.json``)."""
    from importlib import resources

    return json.loads(resources.files("ghostexport.resources").joinpath("manifest.schema.json").read_text("utf-8"))

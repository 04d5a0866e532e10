"""The artifact folder: its name, its all-or-nothing creation, and ``<out>/LATEST``."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UsageError
from .files import atomic_write_text, sha256_file
from .manifest import MANIFEST_NAME, read_manifest

LATEST_NAME = "LATEST"
MODEL_FILE = "model.onnx"
#: The artifacts a folder can hold, in the order commands list them (fp32 first: the reference).
ARTIFACT_ORDER = ("model.onnx", "model.int8.onnx", "model.fp16.onnx", "model.int8-dynamic.onnx")


def folder_name(variant: str, width: float, num_classes: int, resolution: int, batch: int | None) -> str:
    """``<variant>_<width*100:03d>`` plus ``-c<N>``, ``-r<R>``, ``-b<N>`` for non-defaults."""
    name = f"{variant}_{round(width * 100):03d}"
    if num_classes != 1000:
        name += f"-c{num_classes}"
    if resolution != 224:
        name += f"-r{resolution}"
    if batch is not None:
        name += f"-b{batch}"
    return name


@contextmanager
def output_root(out: Path) -> Iterator[Path]:
    """Create ``out`` if needed and prove it writable before any expensive work.

    If the block fails and this call created ``out``, the (empty) folder is removed again,
    so a failed command leaves no trace at all.
    """
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = tempfile.mkdtemp(dir=out, prefix=".ghostexport-probe-")
        os.rmdir(probe)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise UsageError(f"cannot write to --out {out} ({reason}): choose a writable folder with --out") from exc
    try:
        yield out
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                out.rmdir()  # only succeeds when empty
        raise


@contextmanager
def staged_folder(out: Path, name: str) -> Iterator[Path]:
    """Yield an empty hidden folder in ``out``; on success it replaces ``out/name`` whole.

    On any exception the staging folder is deleted and ``out/name`` (a previous good
    build, if any) is left untouched, so a failed build never leaves a file that looks good.
    """
    staging = Path(tempfile.mkdtemp(dir=out, prefix=f".{name}.staging-"))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    final = out / name
    retired = None
    if final.exists():
        retired = Path(tempfile.mkdtemp(dir=out, prefix=f".{name}.old-"))
        os.replace(final, retired / name)
    os.replace(staging, final)
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)


def write_latest(out: Path, name: str) -> None:
    atomic_write_text(out / LATEST_NAME, name + "\n")


def read_latest(out: Path = Path("models")) -> Path:
    """The folder named by ``out/LATEST``; later commands use it when given no MODEL."""
    latest = out / LATEST_NAME
    try:
        name = latest.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise UsageError(
            f"no MODEL given and {latest} does not exist: run ghostexport build first, or name a MODEL"
        ) from exc
    folder = out / name
    if not name or not folder.is_dir():
        raise UsageError(f"{latest} names '{name}', which is not a folder: rebuild with ghostexport build")
    return folder


@dataclass
class ModelRef:
    """What a ``MODEL`` argument resolved to: the ONNX file and, if it has one, its build folder.

    ``manifest`` is None for a foreign ``.onnx`` (no manifest beside it); ``metadata`` holds
    the ``ghostexport.*`` metadata_props, which a lone ghostexport ``.onnx`` still carries.
    """

    path: Path
    folder: Path | None
    manifest: dict | None
    metadata: dict[str, str] = field(default_factory=dict)
    whole_folder: bool = False  # MODEL named a folder (or LATEST), not one file in it

    @property
    def preprocess(self) -> dict | None:
        """Recorded preprocessing, from the manifest or else the ONNX metadata."""
        if self.manifest is not None:
            return self.manifest["model"]["preprocess"]
        meta = self.metadata
        if "ghostexport.mean" not in meta:
            return None
        resolution = int(meta["ghostexport.resolution"])
        crop_pct = float(meta["ghostexport.crop_pct"])
        return {
            "resize": math.floor(resolution / crop_pct),
            "crop_pct": crop_pct,
            "interpolation": meta["ghostexport.interpolation"],
            "mean": json.loads(meta["ghostexport.mean"]),
            "std": json.loads(meta["ghostexport.std"]),
        }


def resolve_model(model: str | Path | None, default_root: Path = Path("models")) -> ModelRef:
    """Resolve ``MODEL`` (a build folder, an ``.onnx``, or None for ``models/LATEST``)."""
    import onnx

    whole_folder = model is None or Path(model).is_dir()
    if model is None:
        folder = read_latest(default_root)
        path = folder / MODEL_FILE
    else:
        given = Path(model)
        if given.is_dir():
            folder, path = given, given / MODEL_FILE
        elif given.suffix == ".onnx" and given.is_file():
            path = given
            folder = given.parent if (given.parent / MANIFEST_NAME).is_file() else None
        elif given.suffix == ".onnx" or given.exists():
            raise UsageError(f"{given} is not a readable .onnx file: check the path")
        else:
            raise UsageError(f"{given} does not exist: give a build folder or an .onnx file")
    if not path.is_file():
        raise UsageError(f"{path} does not exist: rebuild the folder with ghostexport build")
    manifest = read_manifest(folder) if folder is not None else None
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and others for non-ONNX bytes
        raise UsageError(f"{path} is not a valid ONNX model ({type(exc).__name__}): rebuild or re-export it") from exc
    metadata = {p.key: p.value for p in proto.metadata_props if p.key.startswith("ghostexport.")}
    return ModelRef(path=path, folder=folder, manifest=manifest, metadata=metadata, whole_folder=whole_folder)


def verify_artifact(ref: ModelRef, name: str) -> dict:
    """The manifest record of ``name``; refuse a file whose bytes no longer match it."""
    if ref.manifest is None or ref.folder is None:
        raise UsageError(f"{ref.path} has no manifest.json beside it")
    record = ref.manifest["artifacts"].get(name)
    if record is None:
        raise UsageError(f"{ref.folder / name} is not recorded in {ref.folder / MANIFEST_NAME}: rebuild the folder")
    actual = sha256_file(ref.folder / name)
    if actual != record["sha256"]:
        raise UsageError(
            f"{ref.folder / name} changed since it was recorded (sha256 {actual[:12]} ≠ manifest "
            f"{record['sha256'][:12]}): it is stale; rebuild with ghostexport build"
        )
    return record


def artifact_sha256(path: Path, record: dict | None) -> str:
    """The sha256 of an artifact: its (verified) manifest record's, or the file's own."""
    return record["sha256"] if record else sha256_file(path)


def select_artifacts(ref: ModelRef) -> list[tuple[str, Path, dict | None]]:
    """``(name, path, manifest record)`` of what MODEL names: every artifact of a folder, or one file.

    Each recorded artifact is verified (its bytes against the manifest) and refused as stale
    when it was made from a ``model.onnx`` other than the folder's.
    """
    if ref.folder is None:
        return [(ref.path.name, ref.path, None)]
    artifacts = ref.manifest["artifacts"]
    names = [name for name in ARTIFACT_ORDER if name in artifacts] if ref.whole_folder else [ref.path.name]
    fp32_sha = verify_artifact(ref, MODEL_FILE)["sha256"]
    selected = []
    for name in names:
        record = verify_artifact(ref, name)
        if record.get("parent") not in (None, fp32_sha):
            raise UsageError(
                f"{ref.folder / name} is stale: it was made from a model.onnx with sha256 {record['parent'][:12]}, "
                f"the folder's is {fp32_sha[:12]}; re-run ghostexport quantize"
            )
        selected.append((name, ref.folder / name, record))
    return selected

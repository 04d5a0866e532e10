"""The artifact folder: its name, its all-or-nothing creation, and ``<out>/LATEST``."""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ghostexport.base.errors import UsageError
from ghostexport.base.files import atomic_write_text, read_bounded, sha256_file
from ghostexport.folder.manifest import MANIFEST_NAME, read_manifest

LATEST_NAME = "LATEST"
MAX_LATEST_BYTES = 4096
MODEL_FILE = "model.onnx"
#: The artifacts a folder can hold, in the order commands list them (fp32 first: the reference).
ARTIFACT_ORDER = ("model.onnx", "model.int8.onnx", "model.fp16.onnx", "model.int8-dynamic.onnx")
#: The edge runtimes (``convert --to litert|executorch``), in one table: the file suffix, the name
#: in tables, the module that converts and the one that runs (their import says whether the extra is
#: installed), and the packages whose versions a record names.
EDGE_RUNTIMES = {
    "litert": {
        "suffix": "tflite",
        "label": "LiteRT (XNNPACK)",
        "converter": "litert_torch",
        "runtime": "ai_edge_litert",
        "packages": ("litert-torch", "ai-edge-litert", "torchao"),
    },
    "executorch": {
        "suffix": "pte",
        "label": "ExecuTorch (XNNPACK)",
        "converter": "executorch",
        "runtime": "executorch",
        "packages": ("executorch", "torchao"),
    },
}


def edge_file(runtime: str, precision: str) -> str:
    """``model.tflite``, ``model.int8.tflite``, ``model.pte``, ``model.int8.pte``."""
    return f"model{'.int8' if precision == 'int8' else ''}.{EDGE_RUNTIMES[runtime]['suffix']}"


def runtime_installed(runtime: str, part: str = "runtime") -> bool:
    """Whether an edge runtime's module (``part``: "runtime" runs, "converter" converts) imports here."""
    try:
        __import__(EDGE_RUNTIMES[runtime][part])
    except ImportError:
        return False
    return True


def runtime_of(path: Path) -> str:
    """The runtime that runs an artifact file, by its suffix: an edge runtime's name, else ``onnxruntime``."""
    suffix = Path(path).suffix.lstrip(".")
    return next((name for name, entry in EDGE_RUNTIMES.items() if entry["suffix"] == suffix), "onnxruntime")


#: a folder's edge artifacts and the runtime each needs, in the order they are timed and checked
EDGE_ARTIFACTS = {edge_file(runtime, precision): runtime for runtime in EDGE_RUNTIMES for precision in ("fp32", "int8")}


def edge_artifacts(ref: ModelRef, provider: str, warnings: list[str]) -> list[tuple[str, str]]:
    """(name, runtime) of a folder's verified .tflite/.pte whose runtime is installed; CPU only, others warned."""
    found = []
    for name, runtime in EDGE_ARTIFACTS.items():
        if ref.manifest is None or name not in ref.manifest["artifacts"]:
            continue
        if provider != "cpu":
            warnings.append(f"{name}: {runtime} runs on the CPU here, not on --provider {provider}")
            continue
        if not runtime_installed(runtime):
            warnings.append(f"{name}: skipped, {runtime} is not installed (pip install 'ghostexport[{runtime}]')")
            continue
        verify_artifact(ref, name)
        found.append((name, runtime))
    return found


def folder_name(variant: str, width: float, num_classes: int, resolution: int, batch: int | None) -> str:
    """``<variant>_<width*100:03d>`` plus ``-c<N>``, ``-r<R>``, ``-b<N>`` for non-defaults.

    A width that is not a multiple of 0.01 keeps its further digits after a ``p``
    (0.504 -> ``050p4``), so two different widths never share a folder.
    """
    hundredths = width * 100
    name = f"{variant}_{round(hundredths):03d}"
    if abs(hundredths - round(hundredths)) > 1e-9:
        digits = f"{hundredths:.6f}".rstrip("0").split(".")[1]
        name = f"{variant}_{int(hundredths):03d}p{digits}"
    return name + _suffixes(num_classes if num_classes != 1000 else None, resolution, batch)


def _suffixes(num_classes: int | None, resolution: int, batch: int | None) -> str:
    """``-c<N>``, ``-r<R>``, ``-b<N>`` for a class count, resolution and static batch that are not the defaults."""
    return (
        (f"-c{num_classes}" if num_classes is not None else "")
        + (f"-r{resolution}" if resolution != 224 else "")
        + (f"-b{batch}" if batch is not None else "")
    )


#: the manifest's variant for a user's model (``--model``), rebuilt from its recorded source
CUSTOM_VARIANT = "custom"


def model_slug(model: str) -> str:
    """The part of a model name that names its folders: the factory's function, or the registry name."""
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "_", model.rpartition(":")[2] or model).strip("._-") or "model"


def custom_folder_name(model: str, ghostify: dict | None, num_classes: int | None, resolution: int, batch) -> str:
    """``<model>[-ghost-s<S>d<D>]`` plus the same suffixes as GhostNet's folders (a given class count always)."""
    ghosted = f"-ghost-s{ghostify['ratio']}d{ghostify['dw_size']}" if ghostify is not None else ""
    return model_slug(model) + ghosted + _suffixes(num_classes, resolution, batch)


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


def write_latest(out: Path, name: str) -> None:
    from ghostexport.folder.commit import clean_dead_scratch

    clean_dead_scratch(out, f".{LATEST_NAME}.")  # temporaries of killed writers
    atomic_write_text(out / LATEST_NAME, name + "\n")


def read_latest(out: Path = Path("models")) -> Path:
    """The folder named by ``out/LATEST``; later commands use it when given no MODEL."""
    latest = out / LATEST_NAME
    try:
        name = read_bounded(latest, MAX_LATEST_BYTES, "LATEST file").decode("utf-8", errors="replace").strip()
    except FileNotFoundError as exc:
        raise UsageError(
            f"no MODEL given and {latest} does not exist: run ghostexport build first, or name a MODEL"
        ) from exc
    folder = out / name
    if not name or "/" in name or name in (".", "..") or not folder.is_dir():
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
    def home(self) -> Path:
        """What working files sit beside: the build folder, or a lone .onnx's path without suffix."""
        return self.folder if self.folder is not None else self.path.with_name(self.path.stem)

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
        if folder is not None and not (folder / MANIFEST_NAME).is_file():
            raise UsageError(
                f"{folder} is not a build folder (no {MODEL_FILE}, no {MANIFEST_NAME}): give a folder made by "
                "ghostexport build, or an .onnx file (images go to --data/--calib/--eval)"
            )
        raise UsageError(f"{path} does not exist: rebuild the folder with ghostexport build")
    manifest = read_manifest(folder) if folder is not None else None
    if not path.is_file() or path.stat().st_size == 0:
        raise UsageError(f"{path} is empty or not a regular file: rebuild or re-export it")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and others for non-ONNX bytes
        raise UsageError(f"{path} is not a valid ONNX model ({type(exc).__name__}): rebuild or re-export it") from exc
    problem = classifier_problem(proto, path)
    if problem:
        raise UsageError(f"{path}: {problem}")
    metadata = {p.key: p.value for p in proto.metadata_props if p.key.startswith("ghostexport.")}
    return ModelRef(path=path, folder=folder, manifest=manifest, metadata=metadata, whole_folder=whole_folder)


def classifier_problem(proto, path: Path) -> str | None:
    """Why ghostexport cannot run ``proto`` as an image classifier, in one line with the fix, or None.

    Checked before any session is made, so a model ONNX Runtime would refuse (or one that
    would exhaust memory) is a usage error, not an internal one.
    """
    import onnx

    known = onnx.defs.onnx_opset_version()
    for opset in proto.opset_import:
        if opset.domain in ("", "ai.onnx") and not 1 <= opset.version <= known:
            return f"opset {opset.version} is not one this onnx ({onnx.__version__}) knows (1–{known}): re-export it"
    initializers = {init.name for init in proto.graph.initializer}
    inputs = [value for value in proto.graph.input if value.name not in initializers]
    if len(inputs) != 1 or len(proto.graph.output) != 1:
        return (
            f"it has {len(inputs)} inputs and {len(proto.graph.output)} outputs; ghostexport takes image "
            "classifiers with one N×3×H×W input and one N×classes output"
        )
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim]
    if len(dims) != 4 or dims[1] != 3 or dims[2] is None or dims[3] is None:
        return f"its input has shape {dims}; ghostexport needs N×3×H×W with static H and W"
    if not (1 <= dims[2] <= MAX_INPUT_SIDE and 1 <= dims[3] <= MAX_INPUT_SIDE):
        return f"its input is {dims[2]}×{dims[3]}, more than {MAX_INPUT_SIDE} per side: is it the right model?"
    if inputs[0].type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        return "its input is not float32; ghostexport feeds normalised float32 images"
    return _external_data_problem(proto, path)


#: the largest input side any command will feed (GhostNet builds stop at 2048)
MAX_INPUT_SIDE = 4096


def _external_data_problem(proto, path: Path) -> str | None:
    """External tensor files must be regular files inside the model's own folder."""
    base = path.parent.resolve()
    for tensor in proto.graph.initializer:
        if tensor.data_location != 1:  # onnx.TensorProto.EXTERNAL
            continue
        location = next((entry.value for entry in tensor.external_data if entry.key == "location"), "")
        target = (base / location).resolve()
        if Path(location).is_absolute() or ".." in Path(location).parts or base not in target.parents:
            return f"its external data '{location}' lies outside {base}: keep the .data file beside the .onnx"
        if not target.is_file():
            return f"its external data file {target} is missing or not a regular file: copy it beside the .onnx"
    return None


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


def precision_of(proto, record: dict | None) -> str:
    """fp32, fp16 or int8 — from the manifest record, else from the graph itself."""
    mode = (record or {}).get("mode")
    if mode:
        return "fp16" if mode == "fp16" else "int8"
    import onnx

    ops = {node.op_type for node in proto.graph.node}
    if ops & {"QuantizeLinear", "DequantizeLinear", "ConvInteger", "MatMulInteger", "QLinearConv"}:
        return "int8"
    if any(init.data_type == onnx.TensorProto.FLOAT16 for init in proto.graph.initializer):
        return "fp16"
    return "fp32"

"""What a MODEL argument names: the ONNX file, its build folder and manifest, each artifact verified against its record."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from ghostexport.base.errors import UsageError
from ghostexport.base.files import sha256_file
from ghostexport.folder.manifest import MANIFEST_NAME, read_manifest
from ghostexport.folder.naming import read_latest
from ghostexport.runtime.edge import EDGE_ARTIFACTS, runtime_installed

MODEL_FILE = "model.onnx"
#: The artifacts a folder can hold, in the order commands list them (fp32 first: the reference).
ARTIFACT_ORDER = ("model.onnx", "model.int8.onnx", "model.fp16.onnx", "model.int8-dynamic.onnx")


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
    files = [(name, record["sha256"])] + (
        [(record["weights"]["file"], record["weights"]["sha256"])] if "weights" in record else []
    )
    for file, recorded in files:  # an OpenVINO IR's weights are verified with it
        path = ref.folder / file
        if not path.is_file():
            raise UsageError(f"{path} is missing: the folder lost a recorded file; rebuild with ghostexport build")
        actual = sha256_file(path)
        if actual != recorded:
            raise UsageError(
                f"{path} changed since it was recorded (sha256 {actual[:12]} ≠ manifest "
                f"{recorded[:12]}): it is stale; rebuild with ghostexport build"
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

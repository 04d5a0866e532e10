"""``info``: what an artifact is — from its manifest when it has one, from the ONNX file always."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from ghostexport.base.files import sha256_file
from ghostexport.folder.artifacts import resolve_model
from ghostexport.folder.records import artifact_verdict
from ghostexport.graph.export import op_counts

_DTYPES = {
    onnx.TensorProto.FLOAT: "float32",
    onnx.TensorProto.FLOAT16: "float16",
    onnx.TensorProto.INT8: "int8",
    onnx.TensorProto.UINT8: "uint8",
    onnx.TensorProto.INT64: "int64",
    onnx.TensorProto.INT32: "int32",
}


def _io(values) -> list[dict]:
    described = []
    for value in values:
        tensor = value.type.tensor_type
        shape = [d.dim_param or d.dim_value for d in tensor.shape.dim]
        described.append(
            {"name": value.name, "dtype": _DTYPES.get(tensor.elem_type, str(tensor.elem_type)), "shape": shape}
        )
    return described


def info(model: str | Path | None) -> dict:
    ref = resolve_model(model)
    proto = onnx.load(str(ref.path))
    initializer_params = int(sum(np.prod(init.dims, dtype=np.int64) for init in proto.graph.initializer))
    described = {
        "path": str(ref.path),
        "sha256": sha256_file(ref.path),
        "bytes": ref.path.stat().st_size,
        "opset": next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None),
        "producer": f"{proto.producer_name} {proto.producer_version}".strip(),
        "inputs": _io(proto.graph.input),
        "outputs": _io(proto.graph.output),
        "nodes": len(proto.graph.node),
        "ops": op_counts(proto),
        "initializer_elements": initializer_params,
        "metadata": {p.key: p.value for p in proto.metadata_props},
        "manifest": None,
    }
    if ref.manifest is not None:
        manifest = ref.manifest
        described["manifest"] = {
            "folder": str(ref.folder),
            "model": manifest["model"],
            "created": manifest["created"],
            "ghostexport": manifest["ghostexport"],
            "artifacts": {
                name: {
                    "bytes": record["bytes"] + record.get("weights", {}).get("bytes", 0),  # an IR's .bin too
                    "sha256": record["sha256"],
                    "parent": record.get("parent"),
                    "verdict": artifact_verdict(record),
                    **({"runs_in": record["inference"]["precision"]} if "inference" in record else {}),
                }
                for name, record in manifest["artifacts"].items()
            },
            "checks": len(manifest.get("checks", [])),
            "benchmarks": len(manifest.get("benchmarks", [])),
            "recommended": manifest.get("recommended"),
            "devices": _device_evidence(manifest),
            "recommended_on": manifest.get("recommended_on", {}),
        }
    return described


def _device_evidence(manifest: dict) -> dict:
    """Per device checked with ``--on``, its latest check: what the device is and each artifact's verdict there."""
    found: dict = {}
    for entry in manifest.get("checks", []):
        for result in entry["results"]:
            device = result.get("device")
            if device:
                seen = found.setdefault(device["command"], {"device": device, "verdicts": {}})
                seen["checked"] = entry["created"]  # checks are in order: the latest wins
                seen["verdicts"][result["artifact"]] = result["verdict"]
    return found

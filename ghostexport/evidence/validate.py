"""Valid ONNX or nothing: the checks every artifact passes before it is written.

ONNX Runtime runs graphs that the ONNX specification rejects (an fp16 graph whose nodes
are out of topological order ran fine in ORT and OpenVINO, yet ``onnx.reference`` and
stricter runtimes refuse it). So each artifact is held to the specification itself:
``onnx.checker.check_model(full_check=True)`` and strict, type-checked shape inference.
"""

from __future__ import annotations

import onnx

from ghostexport.base.errors import GateFailed

CHECKS = "onnx.checker.check_model(full_check=True) and strict shape inference"


def validate_model(model: onnx.ModelProto | bytes, what: str) -> dict:
    """Raise ``GateFailed`` naming the failed check; return the record of what passed.

    ``what`` names the artifact in the message (e.g. "model.fp16.onnx").
    """
    proto = onnx.load_from_string(model) if isinstance(model, bytes) else model
    try:
        onnx.checker.check_model(proto, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise GateFailed(
            f"{what} is not valid ONNX (onnx.checker, full check: {_first_line(exc)}): nothing written"
        ) from exc
    try:
        onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError) as exc:
        raise GateFailed(f"{what} fails strict ONNX shape inference ({_first_line(exc)}): nothing written") from exc
    return {"checks": CHECKS, "verdict": "pass"}


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)

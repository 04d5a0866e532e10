"""The LiteRT/ExecuTorch half of ``convert``: rebuild, prepare, convert, gate, record, commit.

The PyTorch model is rebuilt from the folder's manifest (GhostNet or a user's model), its
deploy form (BatchNorm folded, branches fused) converted; the reference for every figure is
the unfolded PyTorch model, as for ``model.onnx``. Evidence, as for the ONNX artifacts:

- fp32: parity with PyTorch on 8 seeded images under the fp32 tolerance (``FP32_TOLERANCE``);
  a failure writes nothing (exit 1).
- int8: calibrated on ``calib`` (default: synthetic images, with a warning), measured on
  ``eval`` (default: every 4th calibration image, held out) against PyTorch's fp32 logits:
  SQNR, centred SQNR, top-1 agreement and, with labels, the accuracy drop — gated by
  ``INT8_GATE`` on real data, reported on synthetic data.

The artifact lands with its record in one commit, guarded like every derived artifact: if
``model.onnx`` (the build) changed meanwhile, nothing is written.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ghostexport.base.errors import GateFailed, UsageError
from ghostexport.base.progress import Progress
from ghostexport.edge.prepare import require, runtime_versions, stdout_to_stderr
from ghostexport.evidence.data import load_dataset, split_holdout
from ghostexport.evidence.parity import FP32_TOLERANCE, parity_over_batches, random_inputs
from ghostexport.evidence.quality import INT8_GATE, judge, measure
from ghostexport.folder.artifacts import MODEL_FILE, resolve_model, verify_artifact
from ghostexport.folder.commit import commit_files
from ghostexport.folder.records import committing, file_record, refuse_downgrade
from ghostexport.folder.reference import rebuild_from_manifest
from ghostexport.model.fold import deploy_form
from ghostexport.render.console import parity_line, quality_line
from ghostexport.runtime.edge import EDGE_RUNTIMES, edge_file, runner

PARITY_SAMPLES = 8
DEFAULT_CALIBRATION = "synthetic:32"
SYNTHETIC_EVAL = "synthetic:16"


@dataclass
class EdgeResult:
    path: Path
    record: dict

    @property
    def verdict(self) -> str:
        return (self.record.get("quality") or self.record.get("parity"))["verdict"]

    def as_json(self) -> dict:
        return {"artifact": str(self.path), "verdict": self.verdict, "record": self.record}


def convert_edge(
    model, to: str, precision: str, calib, eval_data, float_io: bool, say: Progress, replace_verified: bool = False
) -> EdgeResult:
    _validate(to, precision, calib, eval_data, float_io)
    require(to)
    ref = resolve_model(model)
    if ref.folder is None or ref.manifest is None:
        raise UsageError(
            f"--to {to} converts from PyTorch, rebuilt from a build folder's manifest: give the folder, not {ref.path}"
        )
    parent = verify_artifact(ref, MODEL_FILE)["sha256"]
    reference = rebuild_from_manifest(ref.manifest)
    resolution = ref.manifest["model"]["resolution"]
    calibration, evaluation = _data(ref, precision, calib, eval_data, resolution, say)
    name = edge_file(to, precision)
    seen = ref.manifest["artifacts"].get(name)
    synthetic = calibration is not None and (calibration.synthetic or evaluation.synthetic)
    refuse_downgrade(ref.folder, name, seen, synthetic, replace_verified)
    tick = time.perf_counter()
    with stdout_to_stderr():
        data, conversion = _convert(to, deploy_form(reference), resolution, calibration, float_io)
    seconds = time.perf_counter() - tick
    say("convert", f"{name}: {len(data) / 1e6:.1f} MB in {seconds:.1f} s; {_lowering_line(conversion)}")
    evidence = _evidence(to, data, reference, resolution, evaluation, calibration, say)
    record = file_record(
        data, parent, source=MODEL_FILE, format=to, precision=precision, conversion=conversion,
        runtime=runtime_versions(*EDGE_RUNTIMES[to]["packages"]), seconds=round(seconds, 2), **evidence,
    )  # fmt: skip
    result = EdgeResult(ref.folder / name, record)
    if result.verdict == "fail":
        gate = "parity" if precision == "fp32" else "quality"
        raise GateFailed(
            f"{to} {precision} {gate} gate failed, nothing written: {evidence[gate]['reasons'][0]}", result
        )
    commit_files(
        ref.folder, {name: data}, committing(ref.folder, name, record, seen, synthetic, replace_verified, say), say
    )
    say("write", f"{result.path}")
    return result


def _validate(to: str, precision: str, calib, eval_data, float_io: bool) -> None:
    if precision not in ("fp32", "int8"):
        raise UsageError(f"--precision {precision}: use fp32 or int8")
    if precision == "fp32" and (calib or eval_data):
        raise UsageError("--calib and --eval are for --precision int8: fp32 is gated on parity with PyTorch")
    if float_io and not (to == "litert" and precision == "int8"):
        raise UsageError("--float-io applies to --to litert --precision int8 (the other artifacts take float already)")


def _data(ref, precision: str, calib, eval_data, resolution: int, say: Progress):
    """(calibration images or None, evaluation dataset or None) for an int8 conversion."""
    if precision == "fp32":
        return None, None
    preprocess, shape = ref.manifest["model"]["preprocess"], (3, resolution, resolution)
    if calib is None:
        say("WARNING", f"no --calib: calibrating on {DEFAULT_CALIBRATION}; int8 figures are reported, not enforced")
    calibration = load_dataset(calib or DEFAULT_CALIBRATION, preprocess, shape, seed=0)
    if eval_data is not None:
        evaluation = load_dataset(eval_data, preprocess, shape, seed=1)
    elif not calibration.synthetic:
        calibration, evaluation = split_holdout(calibration)
    else:
        evaluation = load_dataset(SYNTHETIC_EVAL, preprocess, shape, seed=1)
    say(
        "data",
        f"calibration: {calibration.source}, {len(calibration)}; evaluation: {evaluation.source}, {len(evaluation)}",
    )
    return calibration, evaluation


def _convert(to: str, deploy: torch.nn.Module, resolution: int, calibration, float_io: bool) -> tuple[bytes, dict]:
    images = calibration.inputs if calibration is not None else None
    if to == "executorch":
        from ghostexport.edge import executorch_format

        data, conversion = executorch_format.convert(deploy, resolution, images)
        recipe = executorch_format.RECIPE_INT8
    else:
        from ghostexport.edge import litert_format

        data, conversion = litert_format.convert(deploy, resolution, images, float_io)
        recipe = litert_format.RECIPE_INT8
    conversion["recipe"] = recipe if images is not None else "fp32"
    return data, conversion


def _evidence(to: str, data: bytes, reference, resolution: int, evaluation, calibration, say: Progress) -> dict:
    run = runner(to, data)
    if evaluation is None:
        inputs = random_inputs(PARITY_SAMPLES, resolution, seed=0)
        expected = _torch_logits(reference, inputs)
        parity = parity_over_batches(expected, run, inputs, (1,), FP32_TOLERANCE)
        parity["reference"] = "torch (unfolded, eval)"
        say("parity", parity_line(to, parity))
        return {"parity": parity}
    figures = measure(_torch_logits(reference, evaluation.inputs), run(evaluation.inputs), evaluation.labels)
    enforced = not (evaluation.synthetic or calibration.synthetic)
    quality = judge(figures, INT8_GATE, enforced=enforced)
    quality["reference"] = "torch fp32 (unfolded, eval)"
    say("quality", quality_line(quality))
    return {
        "quality": quality,
        "calibration": calibration.describe(),
        "evaluation": evaluation.describe(),
    }


def _torch_logits(model: torch.nn.Module, inputs: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate([model(torch.from_numpy(inputs[i : i + 64])).numpy() for i in range(0, len(inputs), 64)])


def _lowering_line(conversion: dict) -> str:
    delegation = conversion.get("delegation")
    if delegation:
        outside = ", ".join(f"{op} {n}" for op, n in delegation["ops_outside"].items()) or "none"
        return f"{delegation['delegate_calls']} XNNPACK piece(s), ops outside: {outside}"
    io = conversion.get("io", {})
    return f"input {io.get('input')}, output {io.get('output')}"

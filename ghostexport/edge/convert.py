"""The LiteRT/ExecuTorch/OpenVINO half of ``convert``: rebuild, prepare, convert, gate, record, commit.

LiteRT and ExecuTorch convert the PyTorch model rebuilt from the folder's manifest (GhostNet
or a user's model), in its deploy form (BatchNorm folded, branches fused); OpenVINO converts
the folder's ``model.onnx``. The reference for every figure is the unfolded PyTorch model, as
for ``model.onnx``. Evidence, as for the ONNX artifacts:

- fp32: parity with PyTorch on 8 seeded images under the fp32 tolerance (``FP32_TOLERANCE``);
  a failure writes nothing (exit 1).
- int8: calibrated on ``calib`` (default: ``DEFAULT_CALIBRATION``, the same synthetic images
  ``quantize`` takes, with a warning), measured on ``eval`` (default: every 4th calibration
  image, held out) against PyTorch's fp32 logits: SQNR, centred SQNR, top-1 agreement and, with
  labels, the accuracy drop — gated by ``INT8_GATE`` on real data, reported on synthetic data.
- OpenVINO, at the precision that will run: the CPU plugin runs an fp32 IR in bf16 where the
  CPU has bf16 instructions, so the IR is gated at the inference precision it resolves to here
  (``--inference-precision auto``) or is forced to. An fp32 IR run in bf16/f16 keeps its fp32
  parity figures (measured in f32: the conversion is exact) and is gated, like an int8
  artifact, on quality (``BF16_GATE``/``FP16_GATE``) on the same images; the record says
  which precision ran, on which CPU, and why.

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
from ghostexport.evidence.data import DEFAULT_CALIBRATION, SYNTHETIC_EVAL_SAMPLES, load_dataset, split_holdout
from ghostexport.evidence.parity import FP32_TOLERANCE, parity_over_batches, random_inputs
from ghostexport.evidence.quality import INT8_GATE, REDUCED_PRECISION_GATES, judge, measure
from ghostexport.folder.artifacts import MODEL_FILE, resolve_model, verify_artifact
from ghostexport.folder.commit import commit_files, scratch_folder
from ghostexport.folder.records import artifact_verdict, committing, file_record, refuse_downgrade
from ghostexport.folder.reference import rebuild_from_manifest
from ghostexport.model.fold import deploy_form
from ghostexport.render.console import parity_line, quality_line
from ghostexport.runtime.edge import EDGE_RUNTIMES, edge_file, runner

PARITY_SAMPLES = 8
SYNTHETIC_EVAL = f"synthetic:{SYNTHETIC_EVAL_SAMPLES}"


@dataclass
class EdgeResult:
    path: Path
    record: dict

    @property
    def verdict(self) -> str:
        """fail if any gate failed; reported if one was only reported (synthetic data); else pass."""
        return artifact_verdict(self.record)

    def as_json(self) -> dict:
        return {"artifact": str(self.path), "verdict": self.verdict, "record": self.record}


def convert_edge(
    model,
    to: str,
    precision: str,
    calib,
    eval_data,
    float_io: bool,
    say: Progress,
    replace_verified: bool = False,
    inference_precision: str = "auto",
) -> EdgeResult:
    _validate(to, precision, calib, eval_data, float_io, inference_precision)
    require(to)
    ref = resolve_model(model)
    if ref.folder is None or ref.manifest is None:
        why = (
            "is gated against the PyTorch model a build folder's manifest rebuilds"
            if EDGE_RUNTIMES[to]["from"] == "onnx"
            else "converts from PyTorch, rebuilt from a build folder's manifest"
        )
        raise UsageError(f"--to {to} {why}: give the folder, not {ref.path}")
    parent = verify_artifact(ref, MODEL_FILE)["sha256"]
    reference = rebuild_from_manifest(ref.manifest)
    resolution = ref.manifest["model"]["resolution"]
    if to == "openvino":
        return _convert_openvino(
            ref, parent, reference, precision, (calib, eval_data), inference_precision, say, replace_verified
        )
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


def _convert_openvino(
    ref, parent: str, reference, precision: str, data, setting: str, say: Progress, replace_verified: bool
) -> EdgeResult:
    """model.onnx → IR (NNCF int8 on the calibration images), gated at the inference precision that runs here."""
    from ghostexport.edge import openvino_format
    from ghostexport.runtime.openvino import weights_file

    resolution = ref.manifest["model"]["resolution"]
    expected = _inference_precision(setting)["precision"]  # confirmed on the converted IR below
    calibration, evaluation = _data(ref, precision, *data, resolution, say, needed=expected != "f32")
    name = edge_file("openvino", precision)
    seen = ref.manifest["artifacts"].get(name)
    synthetic = evaluation is not None and (evaluation.synthetic or (precision == "int8" and calibration.synthetic))
    refuse_downgrade(ref.folder, name, seen, synthetic, replace_verified)
    with scratch_folder(ref.folder) as work:
        xml = work / name
        tick = time.perf_counter()
        with stdout_to_stderr():
            images = calibration.inputs if precision == "int8" else None
            conversion = openvino_format.convert(ref.folder / MODEL_FILE, xml, images, resolution)
        seconds = time.perf_counter() - tick
        files = {name: xml.read_bytes(), weights_file(name).name: weights_file(xml).read_bytes()}
        size = sum(len(blob) for blob in files.values()) / 1e6
        say("convert", f"{name} + {weights_file(name).name}: {size:.1f} MB in {seconds:.1f} s; {_ov_line(conversion)}")
        inference = _inference_precision(setting, xml)
        if inference["precision"] != "f32" and evaluation is None:  # the CPU chose otherwise than expected
            calibration, evaluation = _data(ref, precision, *data, resolution, say, needed=True)
        evidence = _openvino_evidence(xml, precision, inference, reference, resolution, evaluation, calibration, say)
    record = file_record(
        files[name], parent, source=MODEL_FILE, format="openvino", precision=precision, conversion=conversion,
        weights=file_record(files[weights_file(name).name], None) | {"file": weights_file(name).name},
        inference=inference, runtime=runtime_versions(*EDGE_RUNTIMES["openvino"]["packages"]),
        seconds=round(seconds, 2), **evidence,
    )  # fmt: skip
    result = EdgeResult(ref.folder / name, record)
    if result.verdict == "fail":
        failed = next(
            evidence[block] for block in ("parity", "quality") if evidence.get(block, {}).get("verdict") == "fail"
        )
        raise GateFailed(f"openvino {precision} gate failed, nothing written: {failed['reasons'][0]}", result)
    commit_files(ref.folder, files, committing(ref.folder, name, record, seen, synthetic, replace_verified, say), say)
    say("write", f"{result.path} and {weights_file(result.path).name}")
    return result


def _inference_precision(setting: str, xml: Path | None = None) -> dict:
    """What OpenVINO will compute in on this CPU, and how that was chosen (its default, or forced).

    With the converted ``xml``, the precision is the one the compiled model reports: a CPU
    without bf16 instructions runs f32 whatever is asked, and the record says so.
    """
    from ghostexport.runtime.openvino import compile_ir, default_precision, settings_record, version
    from ghostexport.targets.host import cpu_description

    default, why = default_precision()
    compiled = settings_record(compile_ir(xml, precision=setting)) if xml is not None else None
    precision = compiled["inference_precision"] if compiled else default if setting == "auto" else setting
    how = why if setting == "auto" else f"forced with --inference-precision {setting} (the CPU's default: {default})"
    if setting not in ("auto", precision):
        how += f"; OpenVINO runs {precision} here instead: this CPU does not compute {setting}"
    found = {"setting": setting, "precision": precision, "how": how, "cpu": cpu_description()[0], "openvino": version()}
    return found | ({"compiled": compiled} if compiled else {})


def _openvino_evidence(
    xml: Path, precision: str, inference: dict, reference, resolution: int, evaluation, calibration, say: Progress
) -> dict:
    """fp32: parity in f32 (the conversion), and quality at the reduced precision that runs here; int8: quality."""
    evidence: dict = {}
    if precision == "fp32":
        inputs = random_inputs(PARITY_SAMPLES, resolution, seed=0)
        parity = parity_over_batches(
            torch_logits(reference, inputs), runner("openvino", xml, precision="f32"), inputs, (1,), FP32_TOLERANCE
        )
        parity["reference"] = "torch (unfolded, eval); OpenVINO in f32"
        say("parity", parity_line("openvino f32", parity))
        evidence["parity"] = parity
    running = inference["precision"]
    if precision == "int8" or running != "f32":
        run = runner("openvino", xml, precision=running)
        figures = measure(torch_logits(reference, evaluation.inputs), run(evaluation.inputs), evaluation.labels)
        enforced = not (evaluation.synthetic or (precision == "int8" and calibration.synthetic))
        gate = INT8_GATE if precision == "int8" else REDUCED_PRECISION_GATES[running]
        quality = judge(figures, gate, enforced=enforced)
        quality["reference"] = f"torch fp32 (unfolded, eval); OpenVINO in {running}"
        say("quality", f"OpenVINO in {running}: " + quality_line(quality))
        evidence["quality"] = quality
        evidence["evaluation"] = evaluation.describe()
        if precision == "int8":
            evidence["calibration"] = calibration.describe()
    return evidence


def _ov_line(conversion: dict) -> str:
    ops = conversion["ops"]
    line = f"{sum(ops.values())} operations, {ops.get('Convolution', 0)} convolutions, {conversion['quantized_ops']} FakeQuantize"
    if "bias_correction" in conversion:
        chosen = conversion["bias_correction"]
        figures = ", ".join(f"{way} {db:.1f} dB" for way, db in chosen["calibration_sqnr_db"].items())
        line += f"; bias correction {chosen['kept']} (calibration SQNR: {figures})"
    return line


def _validate(to: str, precision: str, calib, eval_data, float_io: bool, inference_precision: str) -> None:
    if precision not in ("fp32", "int8"):
        raise UsageError(f"--precision {precision}: use fp32 or int8")
    if inference_precision != "auto" and to != "openvino":
        raise UsageError("--inference-precision applies to --to openvino (the other runtimes run what they were given)")
    if precision == "fp32" and (calib or eval_data) and to != "openvino":
        raise UsageError("--calib and --eval are for --precision int8: fp32 is gated on parity with PyTorch")
    if float_io and not (to == "litert" and precision == "int8"):
        raise UsageError("--float-io applies to --to litert --precision int8 (the other artifacts take float already)")


def _data(ref, precision: str, calib, eval_data, resolution: int, say: Progress, needed: bool = False):
    """(calibration images or None, evaluation dataset or None) for an int8 conversion (or ``needed``)."""
    if precision == "fp32" and not needed:
        return None, None
    preprocess, shape = ref.manifest["model"]["preprocess"], (3, resolution, resolution)
    if calib is None and eval_data is None:
        what = "calibrating on" if precision == "int8" else "measuring on"
        say("WARNING", f"no --calib: {what} {DEFAULT_CALIBRATION}; the figures are reported, not enforced")
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
        expected = torch_logits(reference, inputs)
        parity = parity_over_batches(expected, run, inputs, (1,), FP32_TOLERANCE)
        parity["reference"] = "torch (unfolded, eval)"
        say("parity", parity_line(to, parity))
        return {"parity": parity}
    figures = measure(torch_logits(reference, evaluation.inputs), run(evaluation.inputs), evaluation.labels)
    enforced = not (evaluation.synthetic or calibration.synthetic)
    quality = judge(figures, INT8_GATE, enforced=enforced)
    quality["reference"] = "torch fp32 (unfolded, eval)"
    say("quality", quality_line(quality))
    return {
        "quality": quality,
        "calibration": calibration.describe(),
        "evaluation": evaluation.describe(),
    }


def torch_logits(model: torch.nn.Module, inputs: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate([model(torch.from_numpy(inputs[i : i + 64])).numpy() for i in range(0, len(inputs), 64)])


def _lowering_line(conversion: dict) -> str:
    delegation = conversion.get("delegation")
    if delegation:
        outside = ", ".join(f"{op} {n}" for op, n in delegation["ops_outside"].items()) or "none"
        return f"{delegation['delegate_calls']} XNNPACK piece(s), ops outside: {outside}"
    io = conversion.get("io", {})
    return f"input {io.get('input')}, output {io.get('output')}"

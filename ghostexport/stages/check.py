"""``check``: compare every artifact against its natural reference, on a chosen provider.

``model.onnx`` is checked against PyTorch rebuilt from the manifest (checkpoint or seed);
quantized artifacts against ``model.onnx`` (run on the CPU provider). Tolerances default by
precision (docs/design.md) and can be overridden; fp32 parity is enforced on any inputs, int8
and fp16 quality only on real data. Results are appended to the manifest's ``checks``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import onnx

from ghostexport.base.errors import GateFailed, UsageError
from ghostexport.base.progress import Progress, channel
from ghostexport.evidence.comparison import MIN_INPUT_DEPENDENCE, NO_INPUT_DEPENDENCE_WARNING, input_dependence
from ghostexport.evidence.data import load_dataset, split_holdout
from ghostexport.evidence.parity import FP32_TOLERANCE, Tolerance, compare, random_inputs
from ghostexport.evidence.quality import INT8_GATE, REDUCED_PRECISION_GATES, QualityGate, judge, measure
from ghostexport.folder.artifacts import (
    MODEL_FILE,
    ModelRef,
    edge_artifacts,
    precision_of,
    resolve_model,
    select_artifacts,
)
from ghostexport.folder.records import append, check_record
from ghostexport.render.console import check_line, device_label
from ghostexport.runtime.device import Device
from ghostexport.runtime.edge import EDGE_RUNTIMES
from ghostexport.runtime.ort import input_shape, run_logits, static_batch
from ghostexport.runtime.providers import QDQ_ON_CUDA_WARNING, ProviderOptions, cpu_session, make_session
from ghostexport.stages.specs import CheckSpec

LOCALIZE_SAMPLES = 2
NOT_ENFORCED_WARNING = (
    "random inputs: int8/fp16 figures are reported, not enforced; pass --data with real images to gate them"
)
#: figures copied from the worst batch size into each artifact's entry
ENTRY_FIGURES = (
    "max_abs",
    "max_rel",
    "failing_elements",
    "min_cosine",
    "centred_cosine",
    "sqnr_db",
    "centred_sqnr_db",
    "top1_agreement",
    "top5_agreement",
    "nonfinite",
)


@dataclass
class CheckResult:
    results: list[dict]
    folder: Path | None
    warnings: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        """fail if any artifact failed; reported if none did but a gate was not enforced; else pass."""
        verdicts = {r["verdict"] for r in self.results}
        return "fail" if "fail" in verdicts else "reported" if "reported" in verdicts else "pass"

    def as_json(self) -> dict:
        return {"verdict": self.verdict, "warnings": self.warnings, "results": self.results}


@dataclass
class _Inputs:
    """What every artifact of one check run is fed, and the PyTorch model and logits computed once."""

    values: np.ndarray
    labels: np.ndarray | None
    real: bool
    source: str
    cache: dict = field(default_factory=dict)


def check(spec: CheckSpec | str | Path | None = None, progress: Progress | None = None, **fields) -> CheckResult:
    """Check ``spec.model`` (folder: every artifact; .onnx: that file). Raises GateFailed if any fails.

    Takes a ``CheckSpec``, or the model and the spec's other fields as keywords.
    """
    spec = (spec if isinstance(spec, CheckSpec) else CheckSpec(spec, **fields)).validated()
    say = channel(progress)
    ref = resolve_model(spec.model)
    targets = select_artifacts(ref)
    options = ProviderOptions(
        spec.provider, allow_fallback=spec.allow_fallback, cudnn_conv_algo_search=spec.cudnn_conv_algo_search
    )
    sessions = {name: make_session(str(path), options) for name, path, _record in targets}
    warnings: list[str] = []
    inputs = _inputs(spec, ref, targets, input_shape(next(iter(sessions.values())).session), warnings)
    say("inputs", f"{inputs.source} ({len(inputs.values)} samples)")
    results = []
    for name, path, record in targets:
        entry = _check_artifact(spec, ref, (name, path, record), sessions[name], inputs, warnings)
        say("check", check_line(entry))
        results.append(entry)
    edge = edge_artifacts(ref, spec.provider, warnings) if ref.whole_folder else []
    for name, runtime in edge:
        entry = _check_edge(spec, ref, name, runtime, inputs)
        say("check", check_line(entry))
        results.append(entry)
    for command in spec.on:
        results += _check_on_device(spec, ref, targets, sessions, inputs, Device(command), warnings, say)
        if edge:
            warnings.append(f"{command}: .tflite/.pte artifacts were checked here only; --on runs the ONNX ones")
    result = CheckResult(results, ref.folder, list(dict.fromkeys(warnings)))
    if ref.folder is not None:
        append(
            ref.folder, "checks", check_record(spec.command, spec.provider, result.verdict, result.warnings, results)
        )
    if result.verdict == "fail":
        failed = [r for r in results if r["verdict"] == "fail"]
        reasons = "; ".join(f"{r['artifact']}: {r['reasons'][0]}" for r in failed)
        raise GateFailed(f"{len(failed)} of {len(results)} artifacts failed: {reasons}", result)
    return result


def _inputs(spec: CheckSpec, ref: ModelRef, targets, shape, warnings: list[str]) -> _Inputs:
    """Real data (its held-out quarter when it is an int8 artifact's calibration data), else random inputs."""
    if spec.data is None:
        values = random_inputs(spec.samples, shape[-1], seed=0)
        return _Inputs(values, None, False, f"{spec.samples} standard-normal inputs, seed 0")
    dataset = load_dataset(spec.data, ref.preprocess, shape)
    if _calibrated_on(spec.data, targets) and not dataset.synthetic:
        _, dataset = split_holdout(dataset)
        warnings.append(
            f"{spec.data} is the int8 calibration data: evaluating on its held-out quarter only ({len(dataset)} samples)"
        )
    return _Inputs(dataset.inputs, dataset.labels, not dataset.synthetic, dataset.source)


def _check_on_device(spec: CheckSpec, ref: ModelRef, targets, sessions, inputs, device, warnings, say) -> list[dict]:
    """Every ONNX artifact run on ``device`` (outputs computed there), judged here against the same references."""
    say("device", f"{device.name}: sending the worker and {len(targets)} artifact(s)")
    entries = []
    for name, path, record in targets:
        entry = _check_artifact(spec, ref, (name, path, record), sessions[name], inputs, warnings, device)
        say("check", check_line(entry))
        entries.append(entry)
    described = device.description
    say(
        "device",
        f"{device.name}: {device_label(described)}, {described['cpu']}, onnxruntime {described['onnxruntime']}"
        + (": outputs count, timings do not" if device.emulated else ""),
    )
    return entries


def _check_artifact(
    spec: CheckSpec, ref: ModelRef, target, info, inputs: _Inputs, warnings: list[str], device=None
) -> dict:
    """One artifact against its reference at every batch size (on ``device`` when given): its check entry."""
    name, path, record = target
    proto = onnx.load(str(path))
    precision = precision_of(proto, record)
    against = _reference_for(name, ref, spec.reference)
    warnings += info.notes
    if info.device == "cuda" and precision == "int8":
        warnings.append(f"{name}: {QDQ_ON_CUDA_WARNING}")
    fixed = static_batch(info.session)
    run_batches = (fixed,) if fixed else spec.batches
    reference_logits = _reference_logits(against, ref, inputs)
    _same_classes(name, info.session, reference_logits, against)
    per_batch = {
        str(batch): _judge(reference_logits, candidate, inputs, precision, spec)
        for batch, candidate in _candidate_logits(info, path, inputs, run_batches, device).items()
    }
    reasons = [f"batch {b}: {r}" for b, result in per_batch.items() for r in result["reasons"]]
    worst = min(per_batch.values(), key=lambda r: r.get("sqnr_db") or -1e9)
    verdict = ("fail" if reasons else "pass") if worst["enforced"] else "reported"
    entry = {
        "artifact": name,
        "path": str(path),
        "precision": precision,
        "reference": _describe(against),
        "provider": spec.provider,
        "providers_used": info.providers,
        "fallback": info.fallback,
        "inputs": inputs.source,
        "samples": len(inputs.values),
        "batches": [int(b) for b in run_batches],
        **{k: worst.get(k) for k in ENTRY_FIGURES},
        "input_dependence": input_dependence(reference_logits),
        "per_batch": per_batch,
        "tolerance": worst["tolerance"],
        "enforced": worst["enforced"],
        "verdict": verdict,
        "reasons": reasons,
    }
    if entry["input_dependence"] is not None and entry["input_dependence"] < MIN_INPUT_DEPENDENCE:
        warnings.append(f"{name}: " + NO_INPUT_DEPENDENCE_WARNING.format(dependence=entry["input_dependence"]))
    if verdict == "reported":
        warnings.append(NOT_ENFORCED_WARNING)
    if device is not None:
        return _on_device(entry, device, spec.localize, warnings)
    if spec.localize:
        entry["localize"] = _localize(proto, against, ref, inputs, precision, worst)
    return entry


def _on_device(entry: dict, device, localize: bool, warnings: list[str]) -> dict:
    """An entry measured on ``device``: where it ran, as the device described itself."""
    entry |= {"provider": f"cpu on {device.name}", "providers_used": ["CPUExecutionProvider"], "fallback": False}
    if localize:
        warnings.append(f"{device.name}: --localize compares intermediate tensors here, not on the device")
    return entry | {"device": device.record}


def _candidate_logits(info, path: Path, inputs: _Inputs, batches, device) -> dict[int, np.ndarray]:
    """The artifact's outputs at each batch size: from its local session, or run on ``device``."""
    if device is None:
        return {batch: run_logits(info.session, inputs.values, batch) for batch in batches}
    artifact = path.read_bytes()
    return {batch: device.logits(artifact, inputs.values, batch) for batch in batches}


def _check_edge(spec: CheckSpec, ref: ModelRef, name: str, runtime: str, inputs: _Inputs) -> dict:
    """A .tflite/.pte/.xml against PyTorch (the reference it was gated on), on its own runtime, at batch 1.

    An OpenVINO IR runs at the inference precision it was gated at; an fp32 IR run in bf16 or
    f16 is judged as that precision (its quality gate), not as fp32.
    """
    from ghostexport.runtime.edge import runner

    record = ref.manifest["artifacts"][name]
    precision = record.get("precision", "fp32")
    inference = (record.get("inference") or {}).get("precision", "f32")
    if precision == "fp32" and inference != "f32":
        precision = inference
    reference_logits = _reference_logits("torch", ref, inputs)
    run = runner(runtime, ref.folder / name, precision=inference if runtime == "openvino" else "auto")
    judged = _judge(reference_logits, run(inputs.values), inputs, precision, spec)
    reasons = [f"batch 1: {reason}" for reason in judged["reasons"]]
    return {
        "artifact": name,
        "path": str(ref.folder / name),
        "precision": precision,
        "reference": _describe("torch"),
        "provider": spec.provider,
        "providers_used": [EDGE_RUNTIMES[runtime]["label"]],
        "fallback": False,
        "inputs": inputs.source,
        "samples": len(inputs.values),
        "batches": [1],
        **{k: judged.get(k) for k in ENTRY_FIGURES},
        "input_dependence": input_dependence(reference_logits),
        "per_batch": {"1": judged},
        "tolerance": judged["tolerance"],
        "enforced": judged["enforced"],
        "verdict": ("fail" if reasons else "pass") if judged["enforced"] else "reported",
        "reasons": reasons,
    }


def _same_classes(name: str, session, reference_logits: np.ndarray, against) -> None:
    """Models with different class counts cannot be compared: a usage error, not a failed gate."""
    classes = session.get_outputs()[0].shape[-1]
    if isinstance(classes, int) and classes != reference_logits.shape[-1]:
        raise UsageError(
            f"{name} gives {classes} logits per image, its reference {_describe(against)} "
            f"{reference_logits.shape[-1]}: compare models with the same classes"
        )


def _calibrated_on(source: str, targets) -> bool:
    """Whether ``source`` is the calibration data of an int8 artifact being checked."""
    for _name, _path, record in targets:
        recorded = ((record or {}).get("calibration") or {}).get("origin")
        if recorded and recorded == str(Path(source).resolve()):
            return True
    return False


def _reference_for(name: str, ref: ModelRef, reference: str | None) -> str | Path:
    if reference == "torch" or (reference is None and name == MODEL_FILE and ref.folder is not None):
        if ref.manifest is None:
            raise UsageError(f"{ref.path} has no manifest, so PyTorch cannot be rebuilt: pass --reference OTHER.onnx")
        return "torch"
    if reference is not None:
        other = Path(reference)
        if not other.is_file():
            raise UsageError(f"--reference {reference} does not exist")
        return other
    if ref.folder is not None:
        return ref.folder / MODEL_FILE
    raise UsageError(f"{ref.path} has no manifest beside it: pass --reference OTHER.onnx to compare it with")


def _describe(against) -> str:
    return "torch (rebuilt from the manifest)" if against == "torch" else str(against)


def _torch_model(ref: ModelRef, cache: dict):
    if "model" not in cache:
        from ghostexport.folder.reference import rebuild_from_manifest

        cache["model"] = rebuild_from_manifest(ref.manifest)
    return cache["model"]


def _reference_logits(against, ref: ModelRef, inputs: _Inputs) -> np.ndarray:
    cache, key = inputs.cache, ("logits", str(against))
    if key not in cache:
        if against == "torch":
            import torch

            with torch.no_grad():
                cache[key] = _torch_model(ref, cache)(torch.from_numpy(inputs.values)).numpy()
        else:
            cache[key] = run_logits(cpu_session(str(against)), inputs.values)
    return cache[key]


def _judge(reference, candidate, inputs: _Inputs, precision: str, spec: CheckSpec) -> dict:
    """fp32: parity under the (overridden) tolerance, on any inputs; fp16/int8: the quality gate, enforced on real data."""
    tolerance = spec.tolerance()
    parity = compare(reference, candidate, tolerance)
    figures = measure(reference, candidate, inputs.labels)
    if precision == "fp32":
        reasons = list(parity["reasons"])
        if spec.min_agreement is not None and figures["top1_agreement"] < spec.min_agreement:
            reasons.append(f"top-1 agreement {figures['top1_agreement']:.4f} < {spec.min_agreement}")
        return {
            **figures,
            **parity,
            "tolerance": asdict(tolerance) | {"min_agreement": spec.min_agreement},
            "enforced": True,
            "reasons": reasons,
        }
    gate: QualityGate = replace(REDUCED_PRECISION_GATES.get(precision, INT8_GATE), **spec.gate_overrides())
    judged = judge(figures, gate, enforced=inputs.real)
    return {
        **{k: parity.get(k) for k in ("max_rel", "failing_elements", "min_cosine")},
        **judged,
        "tolerance": judged["gate"],
    }


def _localize(proto, against, ref, inputs: _Inputs, precision, worst) -> dict:
    from ghostexport.evidence.localize import localize, match_by_position, onnx_activations, torch_activations

    cache, inputs = inputs.cache, inputs.values[:LOCALIZE_SAMPLES]
    order, values = onnx_activations(lambda data: cpu_session(data), proto, inputs)
    if against == "torch":
        from ghostexport.model.fold import deploy_form

        reference_values, matching = (
            torch_activations(deploy_form(_torch_model(ref, cache)), inputs, order),
            "module scope",
        )
    else:
        ref_order, reference_values = onnx_activations(lambda data: cpu_session(data), onnx.load(str(against)), inputs)
        matching = "name"
        if sum(tensor in reference_values for _n, _o, tensor in order) < 0.5 * len(order):
            reference_values, matching = match_by_position(order, ref_order, reference_values), "topological position"
    tolerance = (
        Tolerance(**{k: worst["tolerance"][k] for k in ("atol", "rtol", "min_cosine")})
        if precision == "fp32"
        else FP32_TOLERANCE
    )
    min_sqnr = None if precision == "fp32" else (worst["tolerance"].get("min_sqnr_db") or 20.0)
    return localize(order, values, reference_values, tolerance, min_sqnr, matching)

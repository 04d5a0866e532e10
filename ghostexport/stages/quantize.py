"""``quantize``: fp32 ``model.onnx`` -> a measured, gated int8 / fp16 / int8-dynamic artifact.

The fp32 model is never modified. The artifact is produced in a temporary folder, measured
against fp32 on evaluation data held out from calibration, gated, and only then written
(atomically) beside ``model.onnx`` with its record in the manifest (``parent`` = the
sha256 of the ``model.onnx`` it came from).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import onnx

from ghostexport.base.errors import GateFailed, UsageError
from ghostexport.base.files import atomic_write_bytes
from ghostexport.base.progress import Progress, channel, quiet_libraries
from ghostexport.evidence.data import DEFAULT_CALIBRATION, SYNTHETIC_EVAL_SAMPLES, Dataset, load_dataset, split_holdout
from ghostexport.evidence.quality import FP16_GATE, INT8_GATE, QualityGate, judge, measure
from ghostexport.evidence.validate import validate_model
from ghostexport.folder.artifacts import MODEL_FILE, ModelRef, artifact_sha256, resolve_model, verify_artifact
from ghostexport.folder.commit import commit_files, scratch_folder
from ghostexport.folder.records import committing, quantized_artifact_record, refuse_downgrade
from ghostexport.quantization.dynamic import SLOW_WARNING, quantize_int8_dynamic
from ghostexport.quantization.fp16 import convert_fp16
from ghostexport.quantization.recipe import Recipe, float_end_nodes
from ghostexport.quantization.static import BatchReader, Int8Quantizer
from ghostexport.render.console import quality_line, recipe_line
from ghostexport.runtime.latency import interleaved
from ghostexport.runtime.mobile import mobile_usability, usability_line
from ghostexport.runtime.ort import input_shape, run_logits
from ghostexport.runtime.providers import cpu_session
from ghostexport.stages.specs import QuantizeSpec
from ghostexport.targets.host import cpu_description
from ghostexport.targets.profiles import DEFAULT_TARGET, TargetProfile, int8_types, not_measured_here, target_profile

ARTIFACT_NAMES = {"int8": "model.int8.onnx", "fp16": "model.fp16.onnx", "int8-dynamic": "model.int8-dynamic.onnx"}
SYNTHETIC_WARNING = (
    "no --calib given: calibrating on synthetic:64 random images; the quality figures are MEANINGLESS "
    "and not enforced. Pass --calib DIR|FILE.npy with real images."
)
LATENCY_ROUNDS = 40


@dataclass
class QuantizeResult:
    path: Path
    name: str
    record: dict
    folder: Path | None
    warnings: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return self.record["quality"]["verdict"]

    def as_json(self) -> dict:
        return {"artifact": str(self.path), "verdict": self.verdict, "warnings": self.warnings, "record": self.record}


@dataclass
class _Source:
    """The fp32 model being quantized and what it is compared on."""

    ref: ModelRef
    parent: str  # its sha256
    calibration: Dataset | None
    evaluation: Dataset
    reference: np.ndarray  # fp32 logits on the evaluation data
    warnings: list[str]
    target: TargetProfile


def quantize(
    spec: QuantizeSpec | str | Path | None = None,
    progress: Progress | None = None,
    calibration_progress: Callable[[int, int], None] | None = None,
    **fields,
) -> QuantizeResult:
    """Quantize ``spec.model`` (a build folder, an .onnx, or None for ``models/LATEST``).

    Takes a ``QuantizeSpec``, or the model and the spec's other fields as keywords
    (``quantize("models/ghostnet_100", mode="fp16")``). Raises ``UsageError`` for unusable
    input and ``GateFailed`` (nothing written) when the artifact misses its quality gate on
    real data.
    """
    spec = (spec if isinstance(spec, QuantizeSpec) else QuantizeSpec(spec, **fields)).validated()
    say = channel(progress)
    if (spec.target_sqnr is not None or spec.max_accuracy_drop is not None) and spec.method != "auto":
        say("note", "targets are checked as gates; --method auto searches for a recipe that meets them")
    source = _source(spec, say)
    name = ARTIFACT_NAMES[spec.mode] if source.ref.folder else f"{source.ref.path.stem}.{spec.mode}.onnx"
    synthetic = source.evaluation.synthetic or bool(source.calibration and source.calibration.synthetic)
    seen = ((source.ref.manifest or {}).get("artifacts") or {}).get(name) if source.ref.folder else None
    if source.ref.folder:
        refuse_downgrade(source.ref.folder, name, seen, synthetic, spec.replace_verified)
    started = time.perf_counter()
    with scratch_folder(source.ref.home) as work:  # same disk; a killed run's is removed by the next
        output, made = _make(spec, source, work / name, say, calibration_progress)
        if output != work / name:  # auto's chosen trial: the artifact's own name, for validation and messages
            output = Path(shutil.copyfile(output, work / name))
        data, record = _measure(spec, source, output, made, time.perf_counter() - started, work, say)
        ref = source.ref
        path = ref.folder / name if ref.folder else ref.path.with_name(name)
        result = QuantizeResult(path, name, record, ref.folder, source.warnings)
        if record["quality"]["verdict"] == "fail":
            reasons = "; ".join(record["quality"]["reasons"])
            raise GateFailed(f"{spec.mode} quality gate failed, nothing written: {reasons}", result)
    if ref.folder is None:
        atomic_write_bytes(result.path, data)
    else:  # the artifact and its record land together, or neither does
        change = committing(ref.folder, name, record, seen, synthetic, spec.replace_verified, say)
        commit_files(ref.folder, {name: data}, change, say)
    say("write", f"{result.path} ({len(data) / 1e6:.1f} MB)")
    return result


def _source(spec: QuantizeSpec, say: Progress) -> _Source:
    """Resolve and verify the fp32 model; load calibration and (held-out) evaluation data."""
    ref = resolve_model(spec.model)
    if ref.folder is not None and ref.path.name != MODEL_FILE:
        raise UsageError(f"quantize takes the fp32 {MODEL_FILE}, not {ref.path.name}: pass the folder {ref.folder}")
    fp32_record = verify_artifact(ref, MODEL_FILE) if ref.folder is not None else None
    parent = artifact_sha256(ref.path, fp32_record)
    say("model", f"{ref.path}" + ("" if ref.folder else " (no manifest: the result is written beside it)"))
    session = cpu_session(str(ref.path))
    warnings: list[str] = []
    target = target_profile(spec.target or _recorded_target(ref))
    elsewhere = not_measured_here(target)
    if elsewhere:
        warnings.append(elsewhere)
        say("WARNING", elsewhere)
    if spec.mode == "int8-dynamic":
        warnings.append(SLOW_WARNING)
        say("WARNING", SLOW_WARNING)
    calibration, evaluation = _datasets(spec, ref.preprocess, input_shape(session), warnings, say)
    if spec.max_accuracy_drop is not None and evaluation.labels is None:
        raise UsageError(
            "--max-accuracy-drop needs labelled evaluation data: class sub-folders, or FILE.npy with FILE.labels.npy beside it"
        )
    reference = run_logits(session, evaluation.inputs)
    return _Source(ref, parent, calibration, evaluation, reference, warnings, target)


def _recorded_target(ref: ModelRef) -> str:
    """The target the build was made for (manifest, else the lone .onnx's metadata), else this machine."""
    recorded = ((ref.manifest or {}).get("model") or {}).get("target") or {}
    name = recorded.get("name") if isinstance(recorded, dict) else None
    return name or ref.metadata.get("ghostexport.target") or DEFAULT_TARGET


def _gate(spec: QuantizeSpec) -> QualityGate:
    gate = INT8_GATE if spec.mode != "fp16" else FP16_GATE
    return replace(
        gate,
        min_sqnr_db=max(filter(None, (gate.min_sqnr_db, spec.target_sqnr)), default=None),
        max_accuracy_drop=spec.max_accuracy_drop,
    )


def _make(spec: QuantizeSpec, source: _Source, output: Path, say: Progress, on_batch) -> tuple[Path, dict]:
    """The artifact in scratch, and what making it recorded (mode, recipe, search, baseline)."""
    if spec.mode == "fp16":
        recipe = {"converter": "onnxruntime.transformers.float16", "keep_io_types": True}
        return convert_fp16(source.ref.path, output), {"mode": "fp16", "target": source.target.name, "recipe": recipe}
    activation, weight, reduce_range, why = int8_types(source.target)
    if spec.mode == "int8-dynamic":
        recipe = {
            "weight_type": "int8",
            "per_channel": spec.per_channel,
            "reduce_range": reduce_range,
            "activations": "uint8, quantized per inference (DynamicQuantizeLinear)",
        }
        made = quantize_int8_dynamic(source.ref.path, output, spec.per_channel, reduce_range)
        return made, {"mode": "int8-dynamic", "target": source.target.name, "recipe": recipe}
    recipe = Recipe(
        method=spec.method,
        activation_type=activation,
        weight_type=weight,
        per_channel=spec.per_channel,
        reduce_range=reduce_range,
        float_ends=spec.float_ends,
        shared_concat_scales=spec.shared_concat_scales,
        exclude=list(spec.exclude),
        types_reason=why,
    )
    made, recipe, extra = _int8(spec, source, recipe, output.parent, say, on_batch)
    return made, {"mode": "int8", "target": source.target.name, **extra, "recipe": recipe.as_dict()}


def _measure(spec, source: _Source, output: Path, made: dict, seconds: float, work: Path, say: Progress):
    """Quality on the evaluation data against the gate, validity, and the artifact's full record."""
    figures = measure(source.reference, _logits(output, source.evaluation), source.evaluation.labels)
    calibration = source.calibration
    quality = judge(
        figures, _gate(spec), enforced=not (source.evaluation.synthetic or (calibration and calibration.synthetic))
    )
    if quality["verdict"] == "reported":
        quality["note"] = "synthetic data: figures are meaningless and not enforced"
    say("quality", quality_line(quality))
    if spec.mode == "int8" and spec.method == "auto":
        made["latency"] = _latency_cost(source.ref.path, output, work, source.evaluation.inputs[:1])
    data = output.read_bytes()
    proto = onnx.load_from_string(data)
    cpu, flags = cpu_description()
    measured = {
        "validation": validate_model(proto, output.name),
        "quality": quality,
        "calibration": {**calibration.describe(), "warning": SYNTHETIC_WARNING if calibration.synthetic else None}
        if calibration is not None
        else None,
        "evaluation": source.evaluation.describe(),
        "environment": {"cpu": cpu, "cpu_flags": flags},
        "seconds": round(seconds, 2),
    }
    if source.target.op_forms == "mobile":  # reported: Q/DQ and fp16 coverage differs by EP
        measured["mobile_usability"] = mobile_usability(proto)
        say("mobile", usability_line(measured["mobile_usability"]))
    return data, quantized_artifact_record(data, proto, source.parent, made, measured)


def _logits(path: Path, evaluation: Dataset) -> np.ndarray:
    return run_logits(cpu_session(str(path)), evaluation.inputs)


def _datasets(spec: QuantizeSpec, preprocess, shape, warnings, say: Progress) -> tuple[Dataset | None, Dataset]:
    """(calibration or None, evaluation): evaluation never overlaps calibration."""
    calibration = None
    if spec.mode == "int8":
        if spec.calib is None:
            warnings.append(SYNTHETIC_WARNING)
            say("WARNING", SYNTHETIC_WARNING)
        calibration = load_dataset(spec.calib or DEFAULT_CALIBRATION, preprocess, shape, seed=0)
    if spec.eval is not None:
        evaluation = load_dataset(spec.eval, preprocess, shape, seed=1)
    elif calibration is not None and not calibration.synthetic:
        calibration, evaluation = split_holdout(calibration)
    elif spec.calib is not None and not spec.calib.startswith("synthetic:"):
        _, evaluation = split_holdout(load_dataset(spec.calib, preprocess, shape))
    else:
        evaluation = load_dataset(f"synthetic:{SYNTHETIC_EVAL_SAMPLES}", preprocess, shape, seed=1)
    if calibration is not None:
        say("data", f"calibration: {calibration.source}, {len(calibration)} samples")
    labelled = ", labelled" if evaluation.labels is not None else ""
    say("data", f"evaluation: {evaluation.source}, {len(evaluation)} samples{labelled}")
    return calibration, evaluation


def _int8(spec: QuantizeSpec, source: _Source, recipe: Recipe, work: Path, say: Progress, on_batch):
    """Static int8 with the recipe (or the one ``auto`` finds); ORT's stock recipe alongside as the baseline."""
    from ghostexport.quantization import auto

    quantizer = Int8Quantizer(source.ref.path, source.calibration.inputs, work, on_batch)
    quantizer.check_nodes(recipe.exclude)
    rules = float_end_nodes(quantizer.proto, recipe.float_ends)
    recipe = replace(recipe, kept_float=list(dict.fromkeys([*rules, *recipe.exclude])))
    extra: dict = {}
    if recipe.method == "auto":
        evaluation = source.evaluation
        recipe, output, extra["auto"] = auto.search(
            quantizer,
            replace(recipe, method="minmax"),
            lambda path: _logits(path, evaluation),
            source.reference,
            evaluation.labels,
            _gate(spec),
            work,
            say,
        )
    else:
        output = quantizer.quantize(recipe, recipe.kept_float, work / "int8.onnx")
    extra["graph_forms"] = quantizer.forms(recipe.kept_float)
    say("int8", recipe_line(recipe))
    if spec.baseline:
        extra["baseline"] = _stock_baseline(quantizer, recipe, source, work)
        baseline = extra["baseline"]
        say(
            "baseline",
            f"ORT stock per-channel MinMax with the same types ({baseline['types']}): SQNR {baseline['sqnr_db']} dB",
        )
    return output, recipe, extra


def _stock_baseline(quantizer: Int8Quantizer, recipe: Recipe, source: _Source, work: Path) -> dict:
    """ORT's stock recipe on the same model and data, with the recipe's own types and ``reduce_range``.

    Only the graph preparation differs (no pre-processing, nothing kept float, no shared
    Concat scales), so the difference in SQNR is what the recipe itself adds, not what a
    better choice of types for this CPU adds.
    """
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    types = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
    output = work / "stock.onnx"
    with quiet_libraries():
        quantize_static(
            str(source.ref.path),
            str(output),
            BatchReader(quantizer.calibration, quantizer.input_name, None, quantizer.static_batch),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=recipe.reduce_range,
            activation_type=types[recipe.activation_type],
            weight_type=types[recipe.weight_type],
        )
    figures = measure(source.reference, _logits(output, source.evaluation), source.evaluation.labels)
    described = f"{recipe.activation_type}/{recipe.weight_type}{', reduce_range' if recipe.reduce_range else ''}"
    return {
        "recipe": f"quantize_static(per_channel=True, QDQ, {described}, MinMax), no pre-processing, nothing kept float",
        "types": described,
        **{
            k: figures.get(k)
            for k in (
                "sqnr_db",
                "centred_sqnr_db",
                "top1_agreement",
                "mean_cosine",
                "centred_cosine",
                "accuracy",
                "accuracy_drop_points",
            )
        },
    }


def _latency_cost(fp32_path: Path, chosen: Path, work: Path, sample: np.ndarray) -> dict:
    """What keeping nodes in float costs: fp32 vs the chosen int8 vs all-int8, interleaved."""
    runners = {}
    candidates = {"fp32": fp32_path, "int8 (chosen)": chosen}
    from ghostexport.quantization.auto import RULES_ONLY_TAG, trial_path

    all_int8 = trial_path(work, RULES_ONLY_TAG)
    if all_int8.is_file():
        candidates["int8 (rules only, minmax)"] = all_int8
    for label, path in candidates.items():
        session = cpu_session(str(path), threads=1, spinning=False)
        name = session.get_inputs()[0].name
        runners[label] = lambda s=session, n=name: s.run(None, {n: sample})
    stats = interleaved(runners, LATENCY_ROUNDS)
    base = stats["fp32"]["p50_ms"]
    return {
        "batch": 1,
        "threads": 1,
        "rounds": LATENCY_ROUNDS,
        "runs": {label: {**s, "ratio_to_fp32": round(s["p50_ms"] / base, 3)} for label, s in stats.items()},
    }

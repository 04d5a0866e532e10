"""``quantize``: fp32 ``model.onnx`` -> a measured, gated int8 / fp16 / int8-dynamic artifact.

The fp32 model is never modified. The artifact is produced in a temporary folder, measured
against fp32 on evaluation data held out from calibration, gated, and only then written
(atomically) beside ``model.onnx`` with its record in the manifest (``parent`` = the
sha256 of the ``model.onnx`` it came from).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import onnx

from ..artifacts import MODEL_FILE, artifact_sha256, resolve_model, verify_artifact
from ..commit import commit_files, scratch_folder
from ..data import DEFAULT_CALIBRATION, SYNTHETIC_EVAL_SAMPLES, Dataset, load_dataset, split_holdout
from ..errors import GateFailed, UsageError
from ..export import op_counts
from ..files import atomic_write_bytes
from ..host import cpu_description
from ..latency import interleaved
from ..providers import cpu_session
from ..quality import FP16_GATE, INT8_GATE, judge, measure
from ..runtime import input_shape, quiet_ort, run_logits
from ..validate import validate_model
from .dynamic import SLOW_WARNING, quantize_int8_dynamic
from .fp16 import convert_fp16
from .recipe import FLOAT_ENDS, METHODS, Recipe, float_end_nodes, types_for_cpu
from .static import BatchReader, Int8Quantizer

MODES = ("int8", "fp16", "int8-dynamic")
ARTIFACT_NAMES = {"int8": "model.int8.onnx", "fp16": "model.fp16.onnx", "int8-dynamic": "model.int8-dynamic.onnx"}
SYNTHETIC_WARNING = (
    "no --calib given: calibrating on synthetic:64 random images; the quality figures are MEANINGLESS "
    "and not enforced. Pass --calib DIR|FILE.npy with real images."
)
LATENCY_ROUNDS = 40

Report = Callable[[str, str], None]


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


def quantize(
    model: str | Path | None = None,
    mode: str = "int8",
    calib: str | None = None,
    eval: str | None = None,
    method: str = "minmax",
    per_channel: bool = True,
    exclude: tuple[str, ...] | list[str] = (),
    target_sqnr: float | None = None,
    max_accuracy_drop: float | None = None,
    float_ends: str = "stem",
    shared_concat_scales: bool = True,
    baseline: bool = True,
    progress: Report | None = None,
    calibration_progress: Callable[[int, int], None] | None = None,
) -> QuantizeResult:
    """Quantize ``model`` (a build folder, an .onnx, or None for ``models/LATEST``).

    Raises ``UsageError`` for unusable input and ``GateFailed`` (nothing written) when the
    artifact misses its quality gate on real data.
    """
    report = progress or (lambda stage, detail: None)
    if mode not in MODES:
        raise UsageError(f"unknown --mode {mode}: use one of {', '.join(MODES)}")
    if method not in (*METHODS, "auto"):
        raise UsageError(f"unknown --method {method}: use one of {', '.join((*METHODS, 'auto'))}")
    if float_ends not in FLOAT_ENDS:
        raise UsageError(f"unknown --float-ends {float_ends}: use one of {', '.join(FLOAT_ENDS)}")
    if target_sqnr is not None and not math.isfinite(target_sqnr):
        raise UsageError(f"--target-sqnr must be a finite number of dB, got {target_sqnr}")
    if mode != "int8" and (method != "minmax" or exclude or target_sqnr is not None):
        raise UsageError(f"--method, --exclude and --target-sqnr apply to --mode int8, not {mode}")
    if (target_sqnr is not None or max_accuracy_drop is not None) and method != "auto" and mode == "int8":
        report("note", "targets are checked as gates; --method auto searches for a recipe that meets them")

    ref = resolve_model(model)
    if ref.folder is not None and ref.path.name != MODEL_FILE:
        raise UsageError(f"quantize takes the fp32 {MODEL_FILE}, not {ref.path.name}: pass the folder {ref.folder}")
    fp32_record = verify_artifact(ref, MODEL_FILE) if ref.folder is not None else None
    parent = artifact_sha256(ref.path, fp32_record)
    report("model", f"{ref.path}" + ("" if ref.folder else " (no manifest: the result is written beside it)"))

    fp32_session = cpu_session(str(ref.path))
    shape = input_shape(fp32_session)
    warnings: list[str] = []
    if mode == "int8-dynamic":
        warnings.append(SLOW_WARNING)
        report("WARNING", SLOW_WARNING)
    calibration, evaluation = _datasets(mode, calib, eval, ref.preprocess, shape, warnings, report)
    if max_accuracy_drop is not None and evaluation.labels is None:
        raise UsageError(
            "--max-accuracy-drop needs labelled evaluation data: class sub-folders, or FILE.npy with FILE.labels.npy beside it"
        )
    reference = run_logits(fp32_session, evaluation.inputs)

    cpu, flags = cpu_description()
    activation, weight, reduce_range, why = types_for_cpu(flags)
    recipe = Recipe(
        method=method,
        activation_type=activation,
        weight_type=weight,
        per_channel=per_channel,
        reduce_range=reduce_range,
        float_ends=float_ends,
        shared_concat_scales=shared_concat_scales,
        exclude=list(exclude),
        types_reason=why,
    )
    gate = INT8_GATE if mode != "fp16" else FP16_GATE
    gate = replace(
        gate,
        min_sqnr_db=max(filter(None, (gate.min_sqnr_db, target_sqnr)), default=None),
        max_accuracy_drop=max_accuracy_drop,
    )

    name = ARTIFACT_NAMES[mode] if ref.folder else f"{ref.path.stem}.{mode}.onnx"
    started = time.perf_counter()
    with scratch_folder(ref.home) as work:  # same disk; a killed run's is removed by the next
        record: dict = {"mode": mode}

        def evaluate(path: Path) -> np.ndarray:
            return run_logits(cpu_session(str(path)), evaluation.inputs)

        if mode == "int8":
            output, recipe, extra = _int8(
                ref.path,
                calibration,
                recipe,
                gate,
                evaluate,
                reference,
                evaluation,
                work,
                report,
                calibration_progress,
                baseline,
            )
            record.update(extra)
            record["recipe"] = recipe.as_dict()
        elif mode == "fp16":
            output = convert_fp16(ref.path, work / name)
            record["recipe"] = {"converter": "onnxruntime.transformers.float16", "keep_io_types": True}
        else:
            output = quantize_int8_dynamic(ref.path, work / name, per_channel, reduce_range)
            record["recipe"] = {
                "weight_type": "int8",
                "per_channel": per_channel,
                "reduce_range": reduce_range,
                "activations": "uint8, quantized per inference (DynamicQuantizeLinear)",
            }
        seconds = time.perf_counter() - started
        figures = measure(reference, evaluate(output), evaluation.labels)
        quality = judge(figures, gate, enforced=not (evaluation.synthetic or (calibration and calibration.synthetic)))
        if quality["verdict"] == "reported":
            quality["note"] = "synthetic data: figures are meaningless and not enforced"
        report("quality", _quality_line(quality))
        if mode == "int8" and method == "auto":
            record["latency"] = _latency_cost(ref.path, output, record, work, evaluation.inputs[:1])
        data = output.read_bytes()
        proto = onnx.load_from_string(data)
        validation = validate_model(proto, name)
        record = {
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
            "parent": parent,
            "nodes": len(proto.graph.node),
            "ops": op_counts(proto),
            "validation": validation,
            **record,
            "quality": quality,
            "calibration": {**calibration.describe(), "warning": SYNTHETIC_WARNING if calibration.synthetic else None}
            if calibration is not None
            else None,
            "evaluation": evaluation.describe(),
            "environment": {"cpu": cpu, "cpu_flags": flags},
            "seconds": round(seconds, 2),
        }
        result = QuantizeResult(
            ref.folder / name if ref.folder else ref.path.with_name(name), name, record, ref.folder, warnings
        )
        if quality["verdict"] == "fail":
            raise GateFailed(f"{mode} quality gate failed, nothing written: {'; '.join(quality['reasons'])}", result)
    if ref.folder is None:
        atomic_write_bytes(result.path, data)
    else:  # the artifact and its record land together, or neither does
        commit_files(ref.folder, {name: data}, lambda manifest: _record(manifest, name, record, parent))
    report("write", f"{result.path} ({len(data) / 1e6:.1f} MB)")
    return result


def _record(manifest: dict, name: str, record: dict, parent: str) -> None:
    """Record ``name`` — unless model.onnx was rebuilt while it was being quantized."""
    current = manifest["artifacts"].get(MODEL_FILE, {}).get("sha256")
    if current != parent:
        raise UsageError(
            f"model.onnx changed while {name} was being made from it (sha256 {parent[:12]} -> {str(current)[:12]}): "
            "nothing written; run quantize again"
        )
    manifest["artifacts"][name] = record


def _datasets(mode, calib, eval_spec, preprocess, shape, warnings, report) -> tuple[Dataset | None, Dataset]:
    """(calibration or None, evaluation): evaluation never overlaps calibration."""
    calibration = None
    if mode == "int8":
        if calib is None:
            warnings.append(SYNTHETIC_WARNING)
            report("WARNING", SYNTHETIC_WARNING)
        calibration = load_dataset(calib or DEFAULT_CALIBRATION, preprocess, shape, seed=0)
    if eval_spec is not None:
        evaluation = load_dataset(eval_spec, preprocess, shape, seed=1)
    elif calibration is not None and not calibration.synthetic:
        calibration, evaluation = split_holdout(calibration)
    elif calib is not None and not calib.startswith("synthetic:"):
        _, evaluation = split_holdout(load_dataset(calib, preprocess, shape))
    else:
        evaluation = load_dataset(f"synthetic:{SYNTHETIC_EVAL_SAMPLES}", preprocess, shape, seed=1)
    if calibration is not None:
        report("data", f"calibration: {calibration.source}, {len(calibration)} samples")
    report(
        "data",
        f"evaluation: {evaluation.source}, {len(evaluation)} samples"
        + (", labelled" if evaluation.labels is not None else ""),
    )
    return calibration, evaluation


def _int8(fp32_path, calibration, recipe, gate, evaluate, reference, evaluation, work, report, on_batch, baseline):
    from . import auto

    quantizer = Int8Quantizer(fp32_path, calibration.inputs, work, on_batch)
    quantizer.check_nodes(recipe.exclude)
    rules = float_end_nodes(quantizer.proto, recipe.float_ends)
    recipe = replace(recipe, kept_float=list(dict.fromkeys([*rules, *recipe.exclude])))
    extra: dict = {}
    if recipe.method == "auto":
        recipe, output, extra["auto"] = auto.search(
            quantizer, replace(recipe, method="minmax"), evaluate, reference, evaluation.labels, gate, work, report
        )
    else:
        output = quantizer.quantize(recipe, recipe.kept_float, work / "int8.onnx")
    extra["graph_forms"] = quantizer.forms(recipe.kept_float)
    report(
        "int8",
        f"{recipe.method}, {recipe.activation_type}/{recipe.weight_type}, "
        f"{'per-channel' if recipe.per_channel else 'per-tensor'}, {len(recipe.kept_float)} node{'' if len(recipe.kept_float) == 1 else 's'} kept float",
    )
    if baseline:
        extra["baseline"] = _stock_baseline(fp32_path, quantizer, recipe, evaluate, reference, evaluation, work)
        report(
            "baseline",
            f"ORT stock per-channel MinMax with the same types ({extra['baseline']['types']}): "
            f"SQNR {extra['baseline']['sqnr_db']} dB",
        )
    return output, recipe, extra


def _stock_baseline(fp32_path, quantizer: Int8Quantizer, recipe: Recipe, evaluate, reference, evaluation, work) -> dict:
    """ORT's stock recipe on the same model and data, with the recipe's own types and ``reduce_range``.

    Only the graph preparation differs (no pre-processing, nothing kept float, no shared
    Concat scales), so the difference in SQNR is what the recipe itself adds, not what a
    better choice of types for this CPU adds.
    """
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    types = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
    output = work / "stock.onnx"
    with quiet_ort():
        quantize_static(
            str(fp32_path),
            str(output),
            BatchReader(quantizer.calibration, quantizer.input_name, None, quantizer.static_batch),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=recipe.reduce_range,
            activation_type=types[recipe.activation_type],
            weight_type=types[recipe.weight_type],
        )
    figures = measure(reference, evaluate(output), evaluation.labels)
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
                "cosine",
                "centred_cosine",
                "accuracy",
                "accuracy_drop_points",
            )
        },
    }


def _latency_cost(fp32_path: Path, chosen: Path, record: dict, work: Path, sample: np.ndarray) -> dict:
    """What keeping nodes in float costs: fp32 vs the chosen int8 vs all-int8, interleaved."""
    runners = {}
    candidates = {"fp32": fp32_path, "int8 (chosen)": chosen}
    from .auto import RULES_ONLY_TAG, trial_path

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
        **{label: {**s, "ratio_to_fp32": round(s["p50_ms"] / base, 3)} for label, s in stats.items()},
    }


def _quality_line(quality: dict) -> str:
    parts = [
        f"SQNR {quality['sqnr_db']} dB",
        f"centred SQNR {quality.get('centred_sqnr_db')} dB",
        f"top-1 agreement {quality['top1_agreement']:.4f}",
    ]
    if quality.get("cosine") is not None:
        parts.append(f"cosine {quality['cosine']:.6f}")
    if "accuracy" in quality:
        parts.append(f"accuracy {quality['accuracy_reference']:.4f} -> {quality['accuracy']:.4f}")
    return ", ".join(parts) + f" -> {quality['verdict'].upper()}"

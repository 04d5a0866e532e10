"""``check``: compare every artifact against its natural reference, on a chosen provider.

``model.onnx`` is checked against PyTorch rebuilt from the manifest (checkpoint or seed);
quantized artifacts against ``model.onnx`` (run on the CPU provider). Tolerances default by
precision (docs/design.md) and can be overridden; fp32 parity is enforced on any inputs, int8
and fp16 quality only on real data. Results are appended to the manifest's ``checks``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import onnx

from .artifacts import MODEL_FILE, ModelRef, precision_of, resolve_model, select_artifacts
from .commit import update_manifest
from .data import load_dataset, split_holdout
from .errors import GateFailed, UsageError
from .figures import MIN_INPUT_DEPENDENCE, NO_INPUT_DEPENDENCE_WARNING, input_dependence
from .parity import FP32_TOLERANCE, Tolerance, compare, random_inputs
from .providers import QDQ_ON_CUDA_WARNING, ProviderOptions, cpu_session, make_session, provider_label
from .quality import FP16_GATE, INT8_GATE, QualityGate, judge, measure
from .runtime import input_shape, run_logits, static_batch

DEFAULT_SAMPLES = 8
DEFAULT_BATCHES = (1, 4)
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

Report = Callable[[str, str], None]


@dataclass
class Overrides:
    atol: float | None = None
    rtol: float | None = None
    min_cosine: float | None = None
    min_agreement: float | None = None

    def validate(self) -> None:
        """Refuse any value that could switch a gate off (NaN, negative, out of range) before work starts."""
        given = {"atol": self.atol, "rtol": self.rtol, "min_cosine": self.min_cosine}
        replace(FP32_TOLERANCE, **{key: value for key, value in given.items() if value is not None})
        QualityGate(min_cosine=self.min_cosine, min_agreement=self.min_agreement)


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


def check(
    model: str | Path | None = None,
    reference: str | None = None,
    provider: str = "cpu",
    data: str | None = None,
    samples: int = DEFAULT_SAMPLES,
    batches: tuple[int, ...] = DEFAULT_BATCHES,
    overrides: Overrides | None = None,
    localize: bool = False,
    allow_fallback: bool = False,
    cudnn_conv_algo_search: str = "HEURISTIC",
    command: str | None = None,
    progress: Report | None = None,
) -> CheckResult:
    """Check MODEL (folder: every artifact; .onnx: that file). Raises GateFailed if any fails."""
    report = progress or (lambda stage, detail: None)
    overrides = overrides or Overrides()
    if samples < 2 or any(b < 1 for b in batches):
        raise UsageError(
            "--samples must be at least 2 (the centred figures compare samples with each other) "
            "and every --batch value a positive integer"
        )
    overrides.validate()
    if reference not in (None, "torch") and not str(reference).endswith(".onnx"):
        raise UsageError(f"--reference {reference}: use 'torch' or the path of another .onnx")
    ref = resolve_model(model)
    targets = select_artifacts(ref)
    options = ProviderOptions(provider, allow_fallback=allow_fallback, cudnn_conv_algo_search=cudnn_conv_algo_search)
    sessions = {name: make_session(str(path), options) for name, path, _record in targets}
    shape = input_shape(next(iter(sessions.values())).session)
    warnings: list[str] = []
    if data is not None:
        dataset = load_dataset(data, ref.preprocess, shape)
        if _calibrated_on(data, targets) and not dataset.synthetic:
            _, dataset = split_holdout(dataset)
            warnings.append(
                f"{data} is the int8 calibration data: evaluating on its held-out quarter only ({len(dataset)} samples)"
            )
        inputs, labels, real = dataset.inputs, dataset.labels, not dataset.synthetic
        source = dataset.source
    else:
        inputs, labels, real = random_inputs(samples, shape[-1], seed=0), None, False
        source = f"{samples} standard-normal inputs, seed 0"
    report("inputs", f"{source} ({len(inputs)} samples)")

    results = []
    torch_cache: dict = {}
    for name, path, record in targets:
        proto = onnx.load(str(path))
        precision = precision_of(proto, record)
        against = _reference_for(name, ref, reference)
        info = sessions[name]
        warnings += info.notes
        if info.device == "cuda" and precision == "int8":
            warnings.append(f"{name}: {QDQ_ON_CUDA_WARNING}")
        fixed = static_batch(info.session)
        run_batches = (fixed,) if fixed else batches
        reference_logits = _reference_logits(against, ref, inputs, torch_cache)
        _same_classes(name, info.session, reference_logits, against)
        per_batch = {}
        for batch in run_batches:
            candidate = run_logits(info.session, inputs, batch)
            per_batch[str(batch)] = _judge(reference_logits, candidate, labels, precision, overrides, real)
        reasons = [f"batch {b}: {r}" for b, result in per_batch.items() for r in result["reasons"]]
        worst = min(per_batch.values(), key=lambda r: r.get("sqnr_db") or -1e9)
        enforced = worst["enforced"]
        verdict = ("fail" if reasons else "pass") if enforced else "reported"
        entry = {
            "artifact": name,
            "path": str(path),
            "precision": precision,
            "reference": _describe(against),
            "provider": provider,
            "providers_used": info.providers,
            "fallback": info.fallback,
            "inputs": source,
            "samples": len(inputs),
            "batches": [int(b) for b in run_batches],
            **{k: worst.get(k) for k in ENTRY_FIGURES},
            "input_dependence": input_dependence(reference_logits),
            "per_batch": per_batch,
            "tolerance": worst["tolerance"],
            "enforced": enforced,
            "verdict": verdict,
            "reasons": reasons,
        }
        if entry["input_dependence"] is not None and entry["input_dependence"] < MIN_INPUT_DEPENDENCE:
            warnings.append(f"{name}: " + NO_INPUT_DEPENDENCE_WARNING.format(dependence=entry["input_dependence"]))
        if verdict == "reported":
            warnings.append(NOT_ENFORCED_WARNING)
        if localize:
            entry["localize"] = _localize(proto, against, ref, inputs[:LOCALIZE_SAMPLES], precision, worst, torch_cache)
        report("check", _line(entry))
        results.append(entry)

    result = CheckResult(results, ref.folder, list(dict.fromkeys(warnings)))
    if ref.folder is not None:
        record = {
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": command or "ghostexport.check(...)",
            "provider": provider,
            "verdict": result.verdict,
            "warnings": result.warnings,
            "results": results,
        }
        update_manifest(ref.folder, lambda manifest: manifest.setdefault("checks", []).append(record))
    if result.verdict == "fail":
        failed = [r for r in results if r["verdict"] == "fail"]
        raise GateFailed(
            f"{len(failed)} of {len(results)} artifacts failed: "
            + "; ".join(f"{r['artifact']}: {r['reasons'][0]}" for r in failed),
            result,
        )
    return result


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
        from .reference import rebuild_from_manifest

        cache["model"] = rebuild_from_manifest(ref.manifest)
    return cache["model"]


def _reference_logits(against, ref: ModelRef, inputs: np.ndarray, cache: dict) -> np.ndarray:
    key = ("logits", str(against))  # one set of inputs per check run
    if key not in cache:
        if against == "torch":
            import torch

            with torch.no_grad():
                cache[key] = _torch_model(ref, cache)(torch.from_numpy(inputs)).numpy()
        else:
            cache[key] = run_logits(cpu_session(str(against)), inputs)
    return cache[key]


def _judge(reference, candidate, labels, precision, overrides: Overrides, real: bool) -> dict:
    given = {"atol": overrides.atol, "rtol": overrides.rtol, "min_cosine": overrides.min_cosine}
    tolerance = replace(FP32_TOLERANCE, **{key: value for key, value in given.items() if value is not None})
    parity = compare(reference, candidate, tolerance)
    figures = measure(reference, candidate, labels)
    if precision == "fp32":
        reasons = list(parity["reasons"])
        if overrides.min_agreement is not None and figures["top1_agreement"] < overrides.min_agreement:
            reasons.append(f"top-1 agreement {figures['top1_agreement']:.4f} < {overrides.min_agreement}")
        return {
            **parity,
            **figures,
            "tolerance": asdict(tolerance) | {"min_agreement": overrides.min_agreement},
            "enforced": True,
            "reasons": reasons,
        }
    gate: QualityGate = FP16_GATE if precision == "fp16" else INT8_GATE
    gate = replace(
        gate,
        min_cosine=overrides.min_cosine if overrides.min_cosine is not None else gate.min_cosine,
        min_agreement=overrides.min_agreement if overrides.min_agreement is not None else gate.min_agreement,
    )
    judged = judge(figures, gate, enforced=real)
    return {
        **{k: parity.get(k) for k in ("max_abs", "max_rel", "failing_elements", "min_cosine")},
        **judged,
        "tolerance": judged["gate"],
    }


def _localize(proto, against, ref, inputs, precision, worst, cache) -> dict:
    from .localize import localize, match_by_position, onnx_activations, torch_activations

    order, values = onnx_activations(lambda data: cpu_session(data), proto, inputs)
    if against == "torch":
        from .fold import deploy_form

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


def _line(entry: dict) -> str:
    figures = f"max |Δ| {entry['max_abs']:.3g}" if entry.get("max_abs") is not None else "no figures"
    if entry.get("sqnr_db") is not None:
        figures += f", SQNR {entry['sqnr_db']} dB"
    if entry.get("centred_cosine") is not None:
        figures += f", centred cosine {entry['centred_cosine']:.6f}"
    figures += f", top-1 agreement {entry['top1_agreement']:.4f}" if entry.get("top1_agreement") is not None else ""
    where = provider_label(entry["provider"], True) if entry["fallback"] else entry["providers_used"][0]
    text = f"{entry['artifact']} ({entry['precision']}) vs {entry['reference']} on {where}: {figures} -> {entry['verdict'].upper()}"
    if entry.get("localize") and entry["localize"]["first_divergence"]:
        text += f"; first divergence at {entry['localize']['first_divergence']['node']}"
    return text

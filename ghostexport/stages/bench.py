"""``bench``: latency and throughput of several artifacts, interleaved, on one provider.

Each batch size is warmed up per model (shape-specific kernels, cuDNN algorithm search),
then every round runs each model once in turn so that background load hits them alike;
thread spinning is off whenever sessions coexist. ``streams`` > 1 is throughput mode: each
round sends that many concurrent requests to a model (one core's worth of threads each). Results are medians and percentiles,
shown as ratios to the first model, and appended to each folder's manifest.

With ``select``, the selection runs first and times every artifact of the folder at batch 1
under every setting, bench's own settings included; the table's batch-1 rows of those
artifacts are that measurement (marked ``measured_by: selection``), not a second one, so
that the table, the recommendation and its notes never show two figures for the same
artifact and settings.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ghostexport.base.errors import UsageError
from ghostexport.base.progress import Progress, channel
from ghostexport.choose.trials import SessionSettings, openvino_settings
from ghostexport.folder.artifacts import (
    MODEL_FILE,
    ModelRef,
    edge_artifacts,
    precision_of,
    resolve_model,
    select_artifacts,
)
from ghostexport.folder.records import append, bench_record, model_name
from ghostexport.runtime.device import Device
from ghostexport.runtime.edge import EDGE_RUNTIMES
from ghostexport.runtime.latency import concurrent, interleaved_samples, summarize
from ghostexport.runtime.ort import import_onnxruntime, input_shape, physical_cores
from ghostexport.runtime.providers import (
    QDQ_ON_CUDA_WARNING,
    ProviderOptions,
    SessionInfo,
    make_session,
    provider_label,
)
from ghostexport.stages.specs import DEFAULT_BENCH_ITERATIONS, BenchSpec, max_threads
from ghostexport.targets.host import cpu_description

__all__ = ["BenchResult", "bench", "max_threads"]


@dataclass
class Target:
    label: str
    path: Path | None  # None for PyTorch eager
    ref: ModelRef
    artifact: str
    runtime: str = "onnxruntime"  # or "litert" / "executorch" (a folder's .tflite / .pte, batch 1, CPU)


@dataclass
class BenchResult:
    rows: list[dict]
    environment: dict
    samples: dict[tuple[str, int], list[float]] = field(repr=False, default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    selection: dict | None = None  # bench --select: every setting timed, and the recommendation

    def as_json(self) -> dict:
        found = {"environment": self.environment, "warnings": self.warnings, "results": self.rows}
        return found | ({"selection": self.selection} if self.selection else {})

    def write_csv(self, path: str | Path) -> None:
        columns = [
            "model",
            "batch",
            "p50_ms",
            "p90_ms",
            "p99_ms",
            "mean_ms",
            "std_ms",
            "throughput_ips",
            "streams",
            "ratio_to_first",
            "iterations",
            "provider",
        ]
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(self.rows)


def bench(spec: BenchSpec | list | tuple | None = None, progress: Progress | None = None, **fields) -> BenchResult:
    """Time every artifact of ``spec.models`` (folders, .onnx files; none: ``models/LATEST``) interleaved.

    Takes a ``BenchSpec``, or the list of models and the spec's other fields as keywords.
    """
    spec = (spec if isinstance(spec, BenchSpec) else BenchSpec(tuple(spec or ()), **fields)).validated()
    say = channel(progress)
    warnings: list[str] = []
    targets = _targets(spec.models, spec.torch_eager, spec.provider, warnings)
    options = ProviderOptions(
        spec.provider,
        allow_fallback=spec.allow_fallback,
        threads=spec.threads,
        spinning=len(targets) == 1,  # coexisting sessions must not spin against each other
        cudnn_conv_algo_search=spec.cudnn_conv_algo_search,
        trt_fp16=spec.trt_fp16,
        trt_engine_cache=spec.trt_engine_cache,
    )
    # the settings every ORT row is timed with, in the selection's terms (its grid includes them)
    settings = SessionSettings(spec.threads or physical_cores(), options.spinning, "all")
    selection, measured = _select_first(spec, targets, settings, say) if spec.select else (None, {})
    sessions = _sessions(targets, options, warnings)
    device = next((info.device for info in sessions.values()), "cpu")
    torch_models = {
        t.label: _torch_runner_model(t, device, spec.threads, spec.allow_fallback, warnings)
        for t in targets
        if t.path is None
    }
    rows, samples = _time(spec, targets, sessions, torch_models, warnings, say, measured, settings)
    environment = {
        **_environment(options, sessions, spec.threads, device),
        "streams": spec.streams,
        "subject": _subject(targets),
    }
    edge = {t.label: EDGE_RUNTIMES[t.runtime]["label"] for t in targets if t.runtime in EDGE_RUNTIMES}
    if edge:
        environment["providers_in_use"].update(edge)
        environment["edge_threads"] = {
            runtime: spec.threads or physical_cores()
            for runtime in sorted({t.runtime for t in targets} & set(EDGE_RUNTIMES))
        }
    for command in spec.on:
        rows += _on_device(spec, targets, sessions, Device(command), environment, samples, warnings, say)
    result = BenchResult(rows, environment, samples, list(dict.fromkeys(warnings)), selection)
    _record_in_manifests(targets, result, spec.command, spec.provider)
    return result


def _select_first(spec: BenchSpec, targets: list[Target], settings: SessionSettings, say: Progress):
    """The selection, and per bench target the selection's batch-1 samples at bench's own ``settings``."""
    from ghostexport.choose.selection import select

    selection, found = select(targets[0].ref, spec.select_seconds, spec.command, say, (settings,))
    if spec.streams > 1:  # a round of concurrent requests is another measurement
        return selection, {}
    measured = {}
    for target in targets:
        key = (
            target.artifact,
            _edge_settings(target, settings.threads) if target.runtime in EDGE_RUNTIMES else settings,
        )
        if target.path is not None and key in found:
            measured[target.label] = found[key]
    return selection, measured


def _time(
    spec: BenchSpec,
    targets,
    sessions,
    torch_models,
    warnings,
    say: Progress,
    measured: dict,
    settings: SessionSettings,
) -> tuple[list[dict], dict]:
    """Per batch size: every model warmed up, then timed in interleaved rounds; rows and raw samples.

    ``measured``: batch-1 samples already taken (by the selection) per label, used instead of timing again.
    """
    rows, samples = [], {}
    streams = f", {spec.streams} streams" if spec.streams > 1 else ""
    pool = ThreadPoolExecutor(max_workers=spec.streams) if spec.streams > 1 else None
    providers = _providers(targets, sessions)
    try:
        for batch in spec.batches:
            runners = _runners(spec, targets, batch, sessions, torch_models, pool, warnings)
            if not runners:
                continue
            reused = {label: measured[label] for label in runners if batch == 1 and label in measured}
            to_time = {label: run for label, run in runners.items() if label not in reused}
            rounds = spec.iterations or DEFAULT_BENCH_ITERATIONS
            timed = interleaved_samples(to_time, rounds, spec.seconds, spec.warmup) if to_time else {}
            timed = {label: reused.get(label) or timed[label] for label in runners}
            rows += _rows(timed, batch, spec.streams, providers, samples, set(reused))
            times = ", ".join(f"{r['model']} {r['p50_ms']:.2f} ms" for r in rows if r["batch"] == batch)
            say("bench", f"batch {batch} ({settings.label()}{streams}): {times}")
    finally:
        if pool is not None:
            pool.shutdown()
    return rows, samples


def _sessions(targets: list[Target], options: ProviderOptions, warnings: list[str]) -> dict[str, SessionInfo]:
    sessions: dict[str, SessionInfo] = {}
    for target in targets:
        if target.path is None or target.runtime != "onnxruntime":
            continue
        info = make_session(str(target.path), options)
        sessions[target.label] = info
        warnings += info.notes
        if info.device == "cuda" and precision_of(_load(target.path), _record(target)) == "int8":
            warnings.append(f"{target.label}: {QDQ_ON_CUDA_WARNING}")
    return sessions


def _runners(spec: BenchSpec, targets, batch: int, sessions, torch_models, pool, warnings) -> dict[str, Callable]:
    """One callable per model at ``batch``; a static-batch model of another size is skipped, with a warning."""
    runners = {}
    for target in targets:
        if target.path is None:
            runners[target.label] = _torch_runner(torch_models[target.label], batch, target)
            continue
        if target.runtime != "onnxruntime":
            if batch != 1:
                warnings.append(f"{target.label}: converted at batch 1, skipped at batch {batch}")
                continue
            runners[target.label] = _edge_runner(target, spec.threads or physical_cores())
            continue
        info = sessions[target.label]
        if not _takes_batch(target, info, batch, warnings):
            continue
        runners[target.label] = concurrent(_ort_runner(info, batch, 0), spec.streams, pool)
    return runners


def _takes_batch(target: Target, info: SessionInfo, batch: int, warnings: list[str]) -> bool:
    """Whether an ONNX model runs at ``batch``: a static-batch model of another size is skipped, with a warning."""
    fixed = info.session.get_inputs()[0].shape[0]
    if isinstance(fixed, int) and fixed != batch:
        warnings.append(f"{target.label}: static batch {fixed}, skipped at batch {batch}")
        return False
    return True


def _providers(targets: list[Target], sessions: dict[str, SessionInfo]) -> dict[str, str]:
    """What ran each model: the ORT execution provider, PyTorch, or the edge runtime with its delegate."""
    return {
        t.label: sessions[t.label].providers[0]
        if t.label in sessions
        else EDGE_RUNTIMES[t.runtime]["label"] + (f", {_gated_precision(t)}" if _gated_precision(t) else "")
        if t.runtime in EDGE_RUNTIMES
        else "torch"
        for t in targets
    }


def _on_device(spec: BenchSpec, targets, sessions, device: Device, environment, samples, warnings, say) -> list[dict]:
    """Rows timed on ``device``, the device described in the environment, and with --select its own choice first
    (whose batch-1 samples at bench's thread count are then the table's, not a second measurement)."""
    measured = {}
    if spec.select:
        from ghostexport.choose.on_device import select_on_device

        rounds = spec.iterations or DEFAULT_BENCH_ITERATIONS
        found = select_on_device(targets[0].ref, device, rounds, spec.warmup, say)
        measured = {name: values for (name, threads), values in found.items() if threads == spec.threads}
    rows = _device_rows(spec, targets, sessions, device, samples, measured, warnings, say)
    environment.setdefault("devices", {})[device.name] = device.record
    if device.emulated:
        warnings.append(
            f"{device.name} is emulated: its outputs count, its timings say nothing about the device's speed"
        )
    return rows


def _device_rows(
    spec: BenchSpec, targets, sessions: dict, device: Device, samples: dict, measured: dict, warnings, say
):
    """The ONNX targets timed on ``device``, interleaved there; each row names the device and whether it was emulated.

    ``measured``: batch-1 samples the device's selection already took, per label, used instead of timing again.
    """
    onnx_targets = [t for t in targets if t.path is not None and t.runtime == "onnxruntime"]
    image = input_shape(sessions[onnx_targets[0].label].session)
    rounds = spec.iterations or DEFAULT_BENCH_ITERATIONS
    rows = []
    for batch in spec.batches:
        running = [t for t in onnx_targets if _takes_batch(t, sessions[t.label], batch, warnings)]
        if not running:
            continue
        reused = {label: values for label, values in measured.items() if batch == 1}
        artifacts = {t.label: t.path.read_bytes() for t in running if t.label not in reused}
        timed = device.latency_ms(artifacts, (batch, *image), rounds, spec.warmup, spec.threads) if artifacts else {}
        timed = {t.label: reused.get(t.label) or timed[t.label] for t in running}
        where = _device_where(device.record)
        labelled = {f"{label} on {where}": values for label, values in timed.items()}
        providers = dict.fromkeys(labelled, "CPUExecutionProvider")
        for target, row in zip(running, _rows(labelled, batch, 1, providers, samples), strict=True):
            by = "selection" if target.label in reused else "device"
            rows.append(row | {"measured_by": by, "device": device.name, "emulated": device.emulated})
    say("device", f"{device.name}: {len(onnx_targets)} artifact(s) timed on {device.description.get('cpu', '?')}")
    return rows


def _device_where(device: dict) -> str:
    """How a device's rows are labelled: ``<artifact> on aarch64 emulated``."""
    return device["machine"] + (" emulated" if device["emulated"] else "")


def _rows(
    timed: dict[str, list[float]], batch: int, streams: int, providers: dict, samples: dict, reused: set = frozenset()
) -> list[dict]:
    """Summary rows of one batch size, each with its ratio to the first model's median."""
    rows, first = [], None
    for label, values in timed.items():
        stats = summarize(values)
        first = first or stats["p50_ms"]
        rows.append(
            {
                "model": label,
                "batch": batch,
                **stats,
                "throughput_ips": round(streams * batch * 1000.0 / stats["p50_ms"], 2),
                "streams": streams,
                "ratio_to_first": round(stats["p50_ms"] / first, 3),
                "provider": providers[label],
                "measured_by": "selection" if label in reused else "bench",
            }
        )
        samples[(label, batch)] = values
    return rows


def _targets(models, torch_eager: bool, provider: str, warnings: list[str]) -> list[Target]:
    targets: list[Target] = []
    for model in models:
        ref = resolve_model(model)
        if ref.folder is not None:
            for name, path, _record in select_artifacts(ref):
                targets.append(Target(name, path, ref, name))
            if ref.whole_folder:
                targets += _edge_targets(ref, provider, warnings)
            if torch_eager:
                targets.append(Target("torch eager", None, ref, MODEL_FILE))
        else:
            if torch_eager:
                raise UsageError(
                    f"--torch needs a build folder (its manifest says which model to rebuild); {ref.path} has none"
                )
            targets.append(Target(ref.path.name, ref.path, ref, ref.path.name))
    folders = {t.ref.folder for t in targets}
    if len(folders) > 1 or len({t.label for t in targets}) < len(targets):
        for target in targets:
            prefix = target.ref.folder.name if target.ref.folder else target.ref.path.parent.name
            target.label = f"{prefix}/{target.label}"
    return targets


def _edge_targets(ref: ModelRef, provider: str, warnings: list[str]) -> list[Target]:
    return [
        Target(name, ref.folder / name, ref, name, runtime) for name, runtime in edge_artifacts(ref, provider, warnings)
    ]


def _edge_settings(target: Target, threads: int) -> SessionSettings:
    """How bench runs an edge or OpenVINO artifact, in the selection's terms (so its samples can be reused)."""
    if target.runtime == "openvino":
        return openvino_settings(threads, _gated_precision(target))
    return SessionSettings(threads)  # the XNNPACK runtimes take a thread count alone


def _gated_precision(target: Target) -> str | None:
    """An OpenVINO IR's inference precision as gated (it is run at that precision), else None."""
    return ((_record(target) or {}).get("inference") or {}).get("precision")


def _edge_runner(target: Target, threads: int | None) -> Callable[[], object]:
    """One batch-1 call of the artifact's own runtime, with ``threads`` (ORT's count) for each."""
    from ghostexport.runtime.edge import batch1_call

    resolution = target.ref.manifest["model"]["resolution"]
    return batch1_call(target.runtime, target.path, resolution, threads, _gated_precision(target) or "auto")


def _load(path: Path):
    import onnx

    return onnx.load(str(path), load_external_data=False)


def _record(target: Target) -> dict | None:
    return target.ref.manifest["artifacts"].get(target.artifact) if target.ref.manifest else None


def _feed(session, batch: int) -> np.ndarray:
    shape = session.get_inputs()[0].shape
    return np.random.default_rng(batch).standard_normal((batch, *shape[1:]), dtype=np.float32)


def _ort_runner(info: SessionInfo, batch: int, device_id: int) -> Callable[[], object]:
    session = info.session
    feed = _feed(session, batch)
    name = session.get_inputs()[0].name
    if info.device != "cuda":
        return lambda: session.run(None, {name: feed})
    # CUDA: inputs live on the GPU and outputs stay there, so timing is the model, not copies
    ort = import_onnxruntime()
    binding = session.io_binding()
    binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(feed, "cuda", device_id))
    for output in session.get_outputs():
        binding.bind_output(output.name, "cuda", device_id)

    def run() -> None:
        session.run_with_iobinding(binding)
        binding.synchronize_outputs()

    return run


def _torch_runner_model(target: Target, device: str, threads, allow_fallback, warnings):
    import torch

    from ghostexport.folder.reference import rebuild_from_manifest

    if threads:
        torch.set_num_threads(threads)
    if device == "cuda" and not torch.cuda.is_available():
        if not allow_fallback:
            raise UsageError(
                "--torch on --provider cuda needs a CUDA build of PyTorch (torch.cuda.is_available() is False)"
            )
        warnings.append("torch eager: FALLBACK to CPU (--allow-fallback): this PyTorch has no CUDA")
        device = "cpu"
    model = rebuild_from_manifest(target.ref.manifest).to(device)
    return model, device


def _torch_runner(model_and_device, batch: int, target: Target) -> Callable[[], object]:
    import torch

    model, device = model_and_device
    resolution = target.ref.manifest["model"]["resolution"]
    feed = torch.from_numpy(
        np.random.default_rng(batch).standard_normal((batch, 3, resolution, resolution), dtype=np.float32)
    ).to(device)

    def run() -> None:
        with torch.inference_mode():
            model(feed)
        if device == "cuda":
            torch.cuda.synchronize()

    return run


def _subject(targets: list[Target]) -> str:
    """What was timed, for titles: each folder's model, or the file names."""
    described = []
    for target in targets:
        model = (target.ref.manifest or {}).get("model")
        text = (
            f"{model_name(model)}, {model['resolution']}² ({target.ref.folder.name})"
            if model and target.ref.folder is not None
            else target.ref.path.name
        )
        described.append(text)
    return ", ".join(dict.fromkeys(described))


def _environment(options: ProviderOptions, sessions: dict[str, SessionInfo], threads, device: str) -> dict:
    ort = import_onnxruntime()
    cpu, flags = cpu_description()
    environment = {
        "cpu": cpu,
        "cpu_flags": flags,
        "onnxruntime": ort.__version__,
        "provider_requested": options.provider,
        "provider": provider_label(options.provider, any(info.fallback for info in sessions.values())),
        "providers_in_use": {label: info.providers[0] for label, info in sessions.items()},
        "threads": threads or "ORT default (one per physical core)",
        "thread_spinning": options.spinning,
        "graph_optimization_level": "ORT_ENABLE_ALL",
    }
    if device == "cuda":
        environment["cuda_device"] = _cuda_device_name()
        environment["cudnn_conv_algo_search"] = options.cudnn_conv_algo_search
        environment["io_binding"] = True
    return environment


def _cuda_device_name() -> str:
    import subprocess

    try:
        completed = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return completed.stdout.strip().splitlines()[0] if completed.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"


def _record_in_manifests(targets: list[Target], result: BenchResult, command: str | None, provider: str) -> None:
    by_folder: dict[Path, list[str]] = {}
    for target in targets:
        if target.ref.folder is not None:
            by_folder.setdefault(target.ref.folder, []).append(target.label)
    for folder, labels in by_folder.items():
        wheres = [_device_where(device) for device in result.environment.get("devices", {}).values()]
        names = {*labels, *(f"{label} on {where}" for label in labels for where in wheres)}
        rows = [r for r in result.rows if r["model"] in names]
        append(folder, "benchmarks", bench_record(command, provider, result.environment, rows))

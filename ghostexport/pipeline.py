"""``pipeline``: build -> quantize (int8, fp16) -> check -> bench (-> convert) -> report.

One command for the main job. Every stage is the library call the CLI also wraps; the run
ends with ``report.md``, ``report.json`` and ``bench.png`` in the build folder (or, if the
build itself failed, ``<out>/<name>.report.md``), which say what was built, every figure
with its tolerance and verdict, the latency table, the environment and the file hashes. A
failed gate stops the run with exit 1 and a report that names the gate and why.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .commit import commit_files, scratch_folder
from .errors import GateFailed, UsageError
from .files import atomic_write_bytes
from .manifest import read_manifest
from .report import pipeline_markdown

Report = Callable[[str, str], None]
BENCH_ITERATIONS = 50
MAX_BENCH_ITERATIONS, MAX_BENCH_BATCH = 1_000_000, 1024


@dataclass
class PipelineResult:
    folder: Path | None
    report_md: Path
    report_json: Path
    stages: list[dict] = field(default_factory=list)
    failed: dict | None = None

    warnings: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        if self.failed:
            return "fail"
        return "reported" if any(s["verdict"] == "reported" for s in self.stages) else "pass"

    def as_json(self) -> dict:
        return {
            "folder": str(self.folder) if self.folder else None,
            "report": str(self.report_md),
            "verdict": self.verdict,
            "stages": self.stages,
            "failed": self.failed,
            "warnings": self.warnings,
        }


def stage_verdict(result: object) -> str:
    """PASS only where every gate of the stage was enforced; REPORTED where one was not (synthetic data)."""
    verdict = getattr(result, "verdict", "pass")
    return verdict if verdict in ("pass", "reported") else "pass"


def _validate(provider: str, allow_fallback: bool, bench_batches, bench_iterations: int, float_ends: str) -> None:
    """Every later stage's options, refused before the build replaces anything."""
    from .providers import require_provider
    from .quantize.recipe import FLOAT_ENDS

    require_provider(provider, allow_fallback)
    if not isinstance(bench_iterations, int) or not 1 <= bench_iterations <= MAX_BENCH_ITERATIONS:
        raise UsageError(f"--bench-iters must be an integer from 1 to {MAX_BENCH_ITERATIONS:,}, got {bench_iterations}")
    if not bench_batches or any(not 1 <= b <= MAX_BENCH_BATCH for b in bench_batches):
        raise UsageError(f"--bench-batch values must be integers from 1 to {MAX_BENCH_BATCH}, got {bench_batches}")
    if float_ends not in FLOAT_ENDS:
        raise UsageError(f"unknown --float-ends {float_ends}: use one of {', '.join(FLOAT_ENDS)}")


def _warnings(manifest: dict | None, bench_result) -> list[str]:
    """Every warning the run printed, for report.json and report.md."""
    found = [
        record["calibration"]["warning"]
        for record in (manifest or {}).get("artifacts", {}).values()
        if (record.get("calibration") or {}).get("warning")
    ]
    for entry in (manifest or {}).get("checks", [])[-1:]:
        found += entry.get("warnings", [])
    found += getattr(bench_result, "warnings", None) or []
    return list(dict.fromkeys(found))


def pipeline(
    build_options: dict,
    calib: str | None = None,
    eval_data: str | None = None,
    provider: str = "cpu",
    ort: bool = False,
    bench_batches: tuple[int, ...] = (1,),
    bench_iterations: int = BENCH_ITERATIONS,
    allow_fallback: bool = False,
    float_ends: str = "stem",
    command: str | None = None,
    progress: Report | None = None,
) -> PipelineResult:
    from .bench import bench
    from .builder import build
    from .check import check
    from .convert import convert
    from .quantize import quantize
    from .report import bench_plot as plot

    report = progress or (lambda stage, detail: None)
    stages: list[dict] = []
    started = time.perf_counter()
    folder = None
    bench_result = None
    real_data = eval_data or (calib if calib and not calib.startswith("synthetic:") else None)

    _validate(provider, allow_fallback, bench_batches, bench_iterations, float_ends)

    def stage(name: str, run: Callable[[], object]):
        tick = time.perf_counter()
        report("pipeline", f"--- {name}")
        try:
            value = run()
        except GateFailed as failure:
            stages.append(
                {
                    "stage": name,
                    "verdict": "fail",
                    "seconds": round(time.perf_counter() - tick, 2),
                    "error": str(failure),
                }
            )
            raise
        stages.append({"stage": name, "verdict": stage_verdict(value), "seconds": round(time.perf_counter() - tick, 2)})
        return value

    failed = None
    try:
        built = stage("build", lambda: build(**build_options, command=command, progress=progress))
        folder = built.folder
        stage(
            "quantize int8",
            lambda: quantize(
                folder, mode="int8", calib=calib, eval=eval_data, float_ends=float_ends, progress=progress
            ),
        )
        # fp16 is measured on the same real data as int8 (its held-out part when only --calib is given)
        stage("quantize fp16", lambda: quantize(folder, mode="fp16", calib=calib, eval=eval_data, progress=progress))
        if ort:
            stage("convert to ort", lambda: convert(folder, progress=progress))
        stage(
            "check",
            lambda: check(
                folder,
                provider=provider,
                data=real_data,
                allow_fallback=allow_fallback,
                command=command,
                progress=progress,
            ),
        )
        bench_result = stage(
            "bench",
            lambda: bench(
                [folder],
                provider=provider,
                batches=bench_batches,
                iterations=bench_iterations,
                allow_fallback=allow_fallback,
                command=command,
                progress=progress,
            ),
        )
    except GateFailed as failure:
        failed = {"stage": stages[-1]["stage"], "reason": str(failure)}
        if folder is None:  # a failed build writes no folder; its result names the one it would have
            planned = failure.result.folder

    total = round(time.perf_counter() - started, 2)
    plotted = None
    if folder is None:
        planned.parent.mkdir(parents=True, exist_ok=True)  # a failed build removed the folder it had created
        md, js = planned.parent / f"{planned.name}.report.md", planned.parent / f"{planned.name}.report.json"
        manifest = None
    else:
        md, js = folder / "report.md", folder / "report.json"
        manifest = read_manifest(folder)
        if bench_result is not None and bench_result.rows:
            with scratch_folder(folder) as scratch:
                try:
                    plotted = plot(bench_result, scratch / "bench.png").read_bytes()
                except Exception as exc:  # matplotlib missing: the report says so instead of failing the run
                    stages.append({"stage": "plot", "verdict": "skipped", "error": str(exc)})
    result = PipelineResult(folder, md, js, stages, failed, _warnings(manifest, bench_result))
    payload = {
        "command": command,
        "verdict": result.verdict,
        "exit_code": 1 if failed else 0,
        "seconds": total,
        "stages": stages,
        "failed": failed,
        "warnings": result.warnings,
        "manifest": manifest,
        "bench": bench_result.as_json() if bench_result else None,
    }
    reports = {
        js.name: (json.dumps(payload, indent=2, default=str) + "\n").encode("utf-8"),
        md.name: pipeline_markdown(payload, plotted is not None).encode("utf-8"),
    }
    if folder is None:
        for name, data in reports.items():
            atomic_write_bytes(planned.parent / name, data)
    else:  # the reports and the plot land in the folder together
        commit_files(folder, {**reports, **({"bench.png": plotted} if plotted else {})}, lambda manifest: None)
    report("report", f"{md} ({total:.1f} s in all)")
    if failed:
        raise GateFailed(f"pipeline stopped at {failed['stage']}: {failed['reason']} (report: {md})", result)
    return result

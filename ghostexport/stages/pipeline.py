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

from ghostexport.base.errors import GateFailed
from ghostexport.base.files import atomic_write_bytes
from ghostexport.base.progress import Progress, channel
from ghostexport.folder.commit import commit_files, scratch_folder
from ghostexport.folder.manifest import read_manifest
from ghostexport.render.plot import bench_plot
from ghostexport.render.report import pipeline_markdown
from ghostexport.stages.bench import bench
from ghostexport.stages.build import build
from ghostexport.stages.check import check
from ghostexport.stages.convert import convert
from ghostexport.stages.quantize import quantize
from ghostexport.stages.specs import PipelineSpec


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


def pipeline(spec: PipelineSpec | None = None, progress: Progress | None = None, **fields) -> PipelineResult:
    """Run every stage on one model and write the reports; GateFailed (with the reports written) at a failed gate.

    Takes a ``PipelineSpec``, or its fields as keywords (``build=BuildSpec(width=0.5)``).
    """
    spec = (spec or PipelineSpec(**fields)).validated()
    from ghostexport.model.sources import trusted_factories

    named = [spec.build.model] if spec.build.model else []  # the user named it: its stages may rebuild it
    with trusted_factories(named):
        return _pipeline(spec, progress)


def _pipeline(spec: PipelineSpec, progress: Progress | None) -> PipelineResult:
    say = channel(progress)
    run = _Run(say)
    started = time.perf_counter()
    folder, planned, bench_result = None, None, None
    try:
        folder = run.stage("build", lambda: build(spec.build, progress=progress)).folder
        run.stage("quantize int8", lambda: quantize(spec.quantize_spec(folder, "int8"), progress=progress))
        run.stage("quantize fp16", lambda: quantize(spec.quantize_spec(folder, "fp16"), progress=progress))
        if spec.ort:
            run.stage("convert to ort", lambda: convert(folder, progress=progress))
        for runtime, precision in ((r, p) for r in spec.edge for p in ("fp32", "int8")):
            # one calibration for every runtime: the user's --calib (else the same synthetic default)
            needs_data = precision == "int8" or runtime == "openvino"  # an IR run in bf16 is judged on images
            data = {"calib": spec.calib, "eval": spec.eval} if needs_data else {}
            run.stage(
                f"convert to {runtime} {precision}",
                lambda r=runtime, p=precision, d=data: convert(folder, to=r, precision=p, progress=progress, **d),
            )
        run.stage("check", lambda: check(spec.check_spec(folder), progress=progress))
        bench_result = run.stage("bench", lambda: bench(spec.bench_spec(folder), progress=progress))
    except GateFailed as failure:
        run.failed = {"stage": run.stages[-1]["stage"], "reason": str(failure)}
        if folder is None:  # a failed build writes no folder; its result names the one it would have
            planned = failure.result.folder
    result = _write_reports(spec, run, folder, planned, bench_result, round(time.perf_counter() - started, 2))
    if run.failed:
        raise GateFailed(
            f"pipeline stopped at {run.failed['stage']}: {run.failed['reason']} (report: {result.report_md})", result
        )
    return result


class _Run:
    """The stages run so far, each with its verdict and time; the failed one, if any."""

    def __init__(self, say: Progress) -> None:
        self.say, self.stages, self.failed = say, [], None

    def stage(self, name: str, run: Callable[[], object]):
        tick = time.perf_counter()
        self.say("pipeline", f"--- {name}")
        try:
            value = run()
        except GateFailed as failure:
            self.stages.append({"stage": name, "verdict": "fail", "seconds": _since(tick), "error": str(failure)})
            raise
        self.stages.append({"stage": name, "verdict": stage_verdict(value), "seconds": _since(tick)})
        return value


def _since(tick: float) -> float:
    return round(time.perf_counter() - tick, 2)


def _write_reports(spec: PipelineSpec, run: _Run, folder, planned, bench_result, total: float) -> PipelineResult:
    """report.md, report.json (and bench.png) into the folder together; beside it when the build failed."""
    if folder is None:
        planned.parent.mkdir(parents=True, exist_ok=True)  # a failed build removed the folder it had created
        md, js, manifest = (
            planned.parent / f"{planned.name}.report.md",
            planned.parent / f"{planned.name}.report.json",
            None,
        )
    else:
        md, js, manifest = folder / "report.md", folder / "report.json", read_manifest(folder)
    plotted = _plot(folder, bench_result, run) if folder is not None and bench_result and bench_result.rows else None
    result = PipelineResult(folder, md, js, run.stages, run.failed, _warnings(manifest, bench_result))
    payload = {
        "command": spec.command,
        "verdict": result.verdict,
        "exit_code": 1 if run.failed else 0,
        "seconds": total,
        "stages": run.stages,
        "failed": run.failed,
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
    run.say("report", f"{md} ({total:.1f} s in all)")
    return result


def _plot(folder: Path, bench_result, run: _Run) -> bytes | None:
    with scratch_folder(folder) as scratch:
        try:
            return bench_plot(bench_result, scratch / "bench.png").read_bytes()
        except Exception as exc:  # matplotlib missing: the report says so instead of failing the run
            run.stages.append({"stage": "plot", "verdict": "skipped", "error": str(exc)})
            return None

"""The docs' measured tables, rendered from the benchmarks' saved results and nothing else.

Each benchmark that the docs quote saves its whole output as ``benchmarks/results/NAME.json``
(``--save``); this script turns each saved file into the markdown between
``<!-- benchmark NAME -->`` and ``<!-- /benchmark -->`` wherever that block appears (README.md,
docs/performance.md). A figure in a table is therefore always one a script measured, and a
test re-renders every block from the saved files and fails if the docs differ.

    python benchmarks/docs_tables.py            # rewrite every block from benchmarks/results/
    python benchmarks/docs_tables.py --check    # exit 1 if a block is not what its results say
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOCUMENTS = (ROOT / "README.md", ROOT / "docs" / "performance.md")
BLOCK = re.compile(r"(<!-- benchmark (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /benchmark -->)", re.DOTALL)


def targets_table(result: dict) -> str:
    """README's speed table: per artifact, its best median latency at batch 1 as a ratio to the naive path."""
    first = result["first"]
    naive = first["best"]["naive"]["p50_ms"]
    lines = [
        f"Measured on {result['cpu']} (class `{result['cpu_class']}`, {result['cores']} cores), "
        f"ONNX Runtime {result['versions']['onnxruntime']}; the naive path {naive:.2f} ms.",
        "",
        "| artifact | latency × naive | 95% interval × naive | settings |",
        "|---|---|---|---|",
    ]
    for label, row in sorted(first["best"].items(), key=lambda item: item[1]["p50_ms"]):
        if label == "naive":
            continue
        low, high = row["p50_interval_ms"]
        settings = f"{row['runtime']}, {row['threads']} thread{'s' if row['threads'] != 1 else ''}"
        if row.get("spinning") is not None:
            settings += f", spinning {'on' if row['spinning'] else 'off'}"
        lines.append(f"| {label} | {row['p50_ms'] / naive:.3f} | {low / naive:.3f}–{high / naive:.3f} | {settings} |")
    chosen = first["recommended"]
    lines += [
        "",
        f"Chosen the way `bench --select` chooses: **{chosen['artifact']}** ({chosen['ratios']['to naive']}× the "
        f"naive path); an independent re-run of the three fastest found it {result['reran_within']}× the best of them.",
    ]
    return "\n".join(lines) + "\n"


def ghostify_digits_table(report: dict) -> str:
    """The ghostify benchmark: per architecture, counts, accuracy before and after, int8 and latency ratios."""
    lines = [
        f"`python benchmarks/ghostify_digits.py` on {report['cpu']}: scikit-learn's digits at "
        f"{report['resolution']}², {report['train_images']} training / {report['held_out_images']} held-out "
        f"images, s=2, d=3, {report['epochs']} epochs of distillation.",
        "",
        "| architecture | params | MACs | held-out accuracy: original → ghosted (warm start) | drop | verdict "
        "| int8 accuracy: original / ghosted | fp32 latency | int8 latency |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for arch, figures in report["archs"].items():
        counts, training = figures["counts"], figures["training"]
        latency = figures.get("latency_ms") or {}
        int8 = figures.get("int8_accuracy") or {}

        def ratio(kind: str, latency: dict = latency) -> str:
            if not latency:
                return "–"
            return f"{latency[f'ghosted {kind}'] / latency[f'original {kind}']:.3f}× the original's"

        lines.append(
            f"| {arch} | {counts['params_before']:,} → {counts['params_after']:,} "
            f"({counts['params_after'] / counts['params_before']:.3f}×) "
            f"| {counts['macs_before'] / 1e6:.1f}M → {counts['macs_after'] / 1e6:.1f}M "
            f"({counts['macs_after'] / counts['macs_before']:.3f}×) "
            f"| {100 * training['before']['original']:.2f}% → {100 * training['after']:.2f}% "
            f"({100 * training['before']['ghosted_warm_start']:.2f}%) "
            f"| {training['drop_points']:+.2f} points | {figures['verdict'].upper()} "
            f"| {' / '.join(f'{100 * int8[k]:.2f}%' for k in ('original', 'ghosted')) if int8 else '–'} "
            f"| {ratio('fp32')} | {ratio('int8')} |"
        )
    return "\n".join(lines) + "\n"


def arm64_quality_table(report: dict) -> str:
    """README's ARM64 table: each artifact's figures on this machine's x86 kernels and on ARM's (emulated)."""
    first = next(iter(report["artifacts"].values()))
    device = first["device"]
    lines = [
        f"`python benchmarks/arm64_quality.py`: the digits GhostNet (0.5×, 64²) on {report['samples']} held-out "
        f"images, checked here and on ONNX Runtime {device['onnxruntime']}'s ARM kernels "
        f"({device['machine']}, {'emulated' if device['emulated'] else device['cpu']}):",
        "",
        "| target: artifact | x86: max \\|Δ\\| or SQNR, agreement | ARM64: max \\|Δ\\| or SQNR, agreement | verdict on ARM64 |",
        "|---|---|---|---|",
    ]

    def figures(measured: dict) -> str:
        first_figure = (
            f"SQNR {measured['sqnr_db']:.2f} dB" if measured["sqnr_db"] < 80 else f"max |Δ| {measured['max_abs']:.1e}"
        )
        return f"{first_figure}, {measured['top1_agreement']:.4f}".replace("|", "\\|")

    for label, row in report["artifacts"].items():
        lines.append(
            f"| {label} | {figures(row['x86'])} | {figures(row['arm64'])} | {row['arm64']['verdict'].upper()} |"
        )
    lines += ["", "Latency: measure with `bench --on` on the device itself; emulated timings mean nothing."]
    return "\n".join(lines) + "\n"


#: block name -> how its saved result becomes markdown
def x86_runtimes_table(report: dict) -> str:
    """The x86 runtimes, quiet and loaded: each artifact's fastest median as ratios, and the recommendation."""
    quiet = {row["artifact"]: row for row in report["quiet"]["rows"]}
    loaded = {row["artifact"]: row for row in report["loaded"]["rows"]}
    lines = [
        f"`benchmarks/x86_runtimes.py` on {report['cpu']} ({report['cores']} cores; OpenVINO {report['openvino']} "
        f"computes in {report['openvino_default_precision']} by default here): {report['model']} "
        f"({100 * report['held_out_accuracy']:.2f}% held out); every int8 on the same calibration images. Median latency at batch 1 ÷ the naive export's on ONNX Runtime, each at its "
        f"fastest settings; loaded: {report['load_processes']} busy process(es) beside it.",
        "",
        "| artifact | runtime | quiet | loaded | settings (quiet) |",
        "|---|---|---|---|---|",
    ]
    for label, row in quiet.items():
        lines.append(f"| {label} | {row['runtime']} | {_quiet_and_loaded(row, loaded)} | {row['settings']} |")
    lines.append("")
    for condition in ("quiet", "loaded"):
        found = report[condition]
        chosen = found["recommended"]
        verdict = "met" if found["goal_met"] else "**not met**"
        lines.append(
            f"- {condition}: recommended **{chosen['artifact']}** ({chosen['settings']}), "
            f"{chosen['to_naive']}× the naive export, {chosen['to_openvino_defaults']}× OpenVINO's defaults on it "
            f"(goal ≤ 1.0×: {verdict})."
        )
    choices = [f"{rerun['artifact']} ({rerun['settings']})" for rerun in report["reruns"]]
    distinct = len({(rerun["artifact"], rerun["threads"]) for rerun in report["reruns"]})
    lines.append(
        f"- `bench --select` {len(choices)} times under the same load: "
        + (
            f"the same choice each time, {choices[0]}."
            if distinct == 1
            else f"{distinct} different choices (each record says why): " + "; ".join(choices) + "."
        )
    )
    return "\n".join(lines) + "\n"


def _quiet_and_loaded(row: dict, loaded: dict[str, dict]) -> str:
    """Two table cells: the artifact's ratio to the naive export quiet, and loaded (– where not timed loaded)."""
    other = loaded.get(row["artifact"])
    return f"{row['to_naive']:.2f} | " + (f"{other['to_naive']:.2f}" if other else "–")


def x86_summary_table(report: dict) -> str:
    """README's short form: the fastest artifact of each runtime and the references, quiet and loaded."""
    quiet = report["quiet"]["rows"]
    loaded = {row["artifact"]: row for row in report["loaded"]["rows"]}
    references = ("naive export", "naive export on OpenVINO defaults")
    fastest: dict[str, dict] = {}
    for row in quiet:  # ordered fastest first
        if row["artifact"] in references:
            fastest[row["artifact"]] = row
        elif not row["artifact"].startswith("naive export"):
            fastest.setdefault(row["runtime"], row)
    lines = [
        f"{report['model']} on {report['cpu']} ({report['cores']} cores): median latency at batch 1 ÷ the naive "
        f"export's on ONNX Runtime; loaded: {report['load_processes']} busy process(es) beside it.",
        "",
        "| fastest of its runtime (quiet) | runtime | quiet | loaded |",
        "|---|---|---|---|",
    ]
    for row in fastest.values():
        lines.append(f"| {row['artifact']} | {row['runtime']} | {_quiet_and_loaded(row, loaded)} |")
    lines.append("")
    for condition in ("quiet", "loaded"):
        chosen = report[condition]["recommended"]
        lines.append(
            f"- {condition}: `bench --select` chose **{chosen['artifact']}** ({chosen['settings']}), "
            f"{chosen['to_openvino_defaults']}× the latency of OpenVINO's defaults on the naive export."
        )
    return "\n".join(lines) + "\n"


def x86_precision_table(report: dict) -> str:
    """The fp32 IR computed in f32 and in bf16, against PyTorch on the held-out images."""
    lines = [
        "| OpenVINO computing in | max abs Δ | SQNR dB | mean cosine | top-1 agreement | accuracy |",
        "|---|---|---|---|---|---|",
    ]
    for precision, found in report["precision"].items():
        lines.append(
            f"| {precision} | {found['max_abs']:.2e} | {found['sqnr_db']:.1f} | {found['mean_cosine']:.6f} | "
            f"{found['top1_agreement']:.4f} | {100 * found['accuracy']:.2f}% |"
        )
    return "\n".join(lines) + "\n"


RENDERERS: dict[str, Callable[[dict], str]] = {
    "targets": targets_table,
    "ghostify_digits": ghostify_digits_table,
    "arm64_quality": arm64_quality_table,
    "x86_runtimes": x86_runtimes_table,
    "x86_precision": x86_precision_table,
    "x86_summary": x86_summary_table,
}
#: blocks rendered from another benchmark's saved results (default: the file of the block's own name)
SOURCES = {"x86_precision": "x86_runtimes", "x86_summary": "x86_runtimes"}


def save(name: str, result: dict) -> Path:
    """Keep a benchmark's whole output where the docs are rendered from."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    try:
        text = json.dumps(result, indent=2, sort_keys=True, default=str)
    except TypeError:  # keys of mixed types cannot be sorted: keep the run's own order
        text = json.dumps(result, indent=2, default=str)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def rendered(name: str) -> str:
    path = RESULTS / f"{SOURCES.get(name, name)}.json"
    if not path.is_file():
        return f"Not measured yet: run the benchmark with `--save` to write {path.relative_to(ROOT)}.\n"
    return RENDERERS[name](json.loads(path.read_text(encoding="utf-8")))


def refresh(document: Path) -> tuple[str, str]:
    """(current text, text with every block re-rendered) of one document."""
    text = document.read_text(encoding="utf-8")

    def replace(match: re.Match) -> str:
        name = match.group("name")
        if name not in RENDERERS:
            raise SystemExit(f"{document.relative_to(ROOT)}: no renderer for benchmark block '{name}'")
        return match.group(1) + rendered(name) + match.group(4)

    return text, BLOCK.sub(replace, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a block differs from its saved result")
    args = parser.parse_args(argv)
    stale = []
    for document in DOCUMENTS:
        old, new = refresh(document)
        if old != new:
            stale.append(str(document.relative_to(ROOT)))
            if not args.check:
                document.write_text(new, encoding="utf-8")
    if args.check and stale:
        print(f"measured tables differ from benchmarks/results/ in: {', '.join(stale)}", file=sys.stderr)
        return 1
    print(("checked" if args.check else "rendered") + f" {', '.join(d.name for d in DOCUMENTS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

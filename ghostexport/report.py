"""Human-readable output: one progress line per stage, one summary table per command."""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.console import Console
from rich.table import Table


def stage_printer(console: Console) -> Callable[[str, str], None]:
    """A progress callback printing ``  +elapsed  stage  detail`` lines as stages finish."""
    started = time.perf_counter()

    def report(stage: str, detail: str) -> None:
        console.print(f"[dim]{time.perf_counter() - started:6.1f}s[/] [bold]{stage:<9}[/] {detail}")

    return report


def _verdict(text: str) -> str:
    return "[bold green]PASS[/]" if text == "pass" else "[bold red]FAIL[/]"


def build_summary(result) -> Table:
    """Params, MACs, nodes, parity figures and verdict, file, size and time of one build."""
    manifest = result.manifest
    model = manifest["model"]
    artifact = manifest["artifacts"]["model.onnx"]
    parity = artifact["parity"]
    table = Table(title=f"ghostexport build: {result.folder}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row(
        "model",
        f"{model['variant']} {model['width']:g}×, {model['num_classes']} classes, "
        f"{model['resolution']}², batch {model['batch']}",
    )
    table.add_row(
        "weights", model["checkpoint"]["path"] if model["checkpoint"] else f"random init (seed {model['seed']})"
    )
    table.add_row("params / MACs", f"{model['params']:,} / {model['macs'] / 1e6:.2f}M")
    export = artifact["export"]
    table.add_row(
        "nodes",
        f"{export['nodes_exported']} exported -> {artifact['nodes']} after {export['simplifier']}"
        + (f" (unclean: {export['unclean_ops']})" if export["unclean_ops"] else ""),
    )
    tolerance = parity["tolerance"]
    for stage in ("export", "simplified"):
        figures = parity[stage]
        shown = (
            f"max |Δ| {figures['max_abs']:.2e}, min cosine {figures['min_cosine']:.7f}"
            if figures["max_abs"] is not None
            else "; ".join(figures["reasons"])
        )
        table.add_row(f"parity ({stage})", f"{shown}  {_verdict(figures['verdict'])}")
    table.add_row(
        "tolerance",
        f"atol {tolerance['atol']:g} + rtol {tolerance['rtol']:g}·|ref|, "
        f"cosine ≥ {tolerance['min_cosine']}, batches {','.join(map(str, parity['simplified']['batches']))}",
    )
    table.add_row("verdict", _verdict(parity["verdict"]))
    if parity["verdict"] == "pass":
        table.add_row("file", f"{result.model_path} ({artifact['bytes'] / 1e6:.1f} MB, opset {artifact['opset']})")
    table.add_row("time", f"{result.seconds.get('total', 0):.1f} s")
    return table

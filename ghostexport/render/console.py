"""The terminal: one progress line per stage, one summary table per command, the progress bars."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.markup import escape
from rich.table import Table

from ghostexport.folder.records import model_name
from ghostexport.runtime.edge import EDGE_RUNTIMES
from ghostexport.runtime.providers import provider_label

if TYPE_CHECKING:
    from ghostexport.folder.schema import CheckResult, DeviceRecord, Parity, Quality, Selection, Target
    from ghostexport.quantization.recipe import Recipe


def stage_printer(console: Console) -> Callable[[str, str], None]:
    """A progress callback printing ``  +elapsed  stage  detail`` lines as stages finish."""
    started = time.perf_counter()

    def progress(stage: str, detail: str) -> None:
        console.print(
            f"[dim]{time.perf_counter() - started:6.1f}s[/] [bold]{stage:<9}[/] {escape(detail)}", soft_wrap=True
        )

    return progress


def count_line(counts: dict, resolution: int) -> str:
    deploy = f" ({counts['deploy_params']:,} re-parameterised)" if counts.get("deploy_params") else ""
    return f"{counts['params']:,} params{deploy}, {counts['macs'] / 1e6:.2f}M MACs at {resolution}²"


def parity_line(stage: str, result: Parity) -> str:
    """One parity comparison's figures and verdict, as the build and convert log them."""
    if result["max_abs"] is None:
        figures = "no figures"
    else:
        figures = f"max |Δ| {result['max_abs']:.2e}, min cosine {result['min_cosine']:.7f}"
        if result.get("centred_cosine") is not None:
            figures += f", centred cosine {result['centred_cosine']:.7f}"
    batches = ",".join(map(str, result["batches"]))
    return f"{stage} vs PyTorch at batch {batches}: {figures} -> {result['verdict'].upper()}"


def quality_line(quality: Quality) -> str:
    """A reduced-precision artifact's quality figures and verdict, as quantize logs them."""
    parts = [
        f"SQNR {quality['sqnr_db']} dB",
        f"centred SQNR {quality.get('centred_sqnr_db')} dB",
        f"top-1 agreement {quality['top1_agreement']:.4f}",
    ]
    if quality.get("mean_cosine") is not None:
        parts.append(f"mean cosine {quality['mean_cosine']:.6f}")
    if "accuracy" in quality:
        parts.append(f"accuracy {quality['accuracy_reference']:.4f} -> {quality['accuracy']:.4f}")
    return ", ".join(parts) + f" -> {quality['verdict'].upper()}"


def recipe_line(recipe: Recipe) -> str:
    kept = len(recipe.kept_float)
    granularity = "per-channel" if recipe.per_channel else "per-tensor"
    return (
        f"{recipe.method}, {recipe.activation_type}/{recipe.weight_type}, {granularity}, "
        f"{kept} node{'' if kept == 1 else 's'} kept float"
    )


def check_line(entry: CheckResult) -> str:
    """One checked artifact: its figures against its reference, where it ran, and the verdict."""
    figures = f"max |Δ| {entry['max_abs']:.3g}" if entry.get("max_abs") is not None else "no figures"
    if entry.get("sqnr_db") is not None:
        figures += f", SQNR {entry['sqnr_db']} dB"
    if entry.get("centred_cosine") is not None:
        figures += f", centred cosine {entry['centred_cosine']:.6f}"
    if entry.get("top1_agreement") is not None:
        figures += f", top-1 agreement {entry['top1_agreement']:.4f}"
    where = provider_label(entry["provider"], True) if entry["fallback"] else entry["providers_used"][0]
    if entry.get("device"):
        device = entry["device"]
        where += f" on {device_label(device)} via {device['command']}"
    text = f"{entry['artifact']} ({entry['precision']}) vs {entry['reference']} on {where}: {figures}"
    text += f" -> {entry['verdict'].upper()}"
    if entry.get("localize") and entry["localize"]["first_divergence"]:
        text += f"; first divergence at {entry['localize']['first_divergence']['node']}"
    return text


def settings_words(row: dict) -> str:
    """A run's settings in words: ``2 threads, spinning on, all`` (ORT), ``1 thread`` (XNNPACK),
    ``2 threads, latency hint, 1 stream, bf16`` (OpenVINO), ``default threads`` for a runtime's own count."""
    threads = row["threads"]
    text = f"{threads} thread{'s' if threads > 1 else ''}" if threads else "default threads"
    if row.get("hint") is not None:
        streams = row.get("streams")
        streams = f", {streams} stream{'s' if streams != 1 else ''}" if streams else ""
        unpinned = ", unpinned" if threads else ""  # runtime.openvino.compile_ir: a thread count comes unpinned
        return f"{text}, {row['hint']} hint{streams}, {row.get('precision') or 'default precision'}{unpinned}"
    if row.get("spinning") is None:
        return text
    return f"{text}, spinning {'on' if row['spinning'] else 'off'}, {row['optimization']}"


def recommendation_line(selection: Selection) -> str:
    chosen = selection["recommended"]
    ratios = ", ".join(
        f"{value}× the latency of {key.removeprefix('to ')}"
        for key, value in chosen["ratios"].items()
        if key != f"to {chosen['artifact']}"
    )
    runtime = chosen.get("runtime", "onnxruntime")
    runtime = EDGE_RUNTIMES[runtime]["label"] if runtime in EDGE_RUNTIMES else "ONNX Runtime"
    interval = chosen.get("p50_interval_ms")
    figure = f"{chosen['p50_ms']:.2f} ms" + (f" [95% {interval[0]:.2f}–{interval[1]:.2f}]" if interval else "")
    text = f"recommended: {chosen['artifact']} ({runtime}, {settings_words(chosen)}) {figure} at batch 1; {ratios}"
    tie, changed, load = selection.get("tie"), selection.get("changed_from"), selection.get("load")
    if tie:
        others = len(tie["not_told_apart"])
        text += (
            f"; not told apart from {others} other row{'s' if others > 1 else ''} (95% intervals overlap), "
            f"{len(tie['competing'])} within {tie['margin']:.0%} of the fastest: the simplest of them chosen "
            f"({tie['rule']})"
        )
    if load:
        second = load["second_pass"]
        text += (
            f"; load average {second['load_average_before']} on {load['cpus']} CPUs, "
            f"rounds spread {100 * (second['round_spread'] or 0):.0f}%"
        )
    if changed:
        text += f"; was {changed['artifact']} ({changed['settings']}, {changed['created']}): {changed['why']}"
    return text + (f"; {selection['note']}" if selection["note"] else "")


def device_label(device: DeviceRecord) -> str:
    """``aarch64 (emulated)``: a device as every table and line names it."""
    return device["machine"] + (" (emulated)" if device["emulated"] else "")


def device_line(record: dict) -> str:
    """``model.int8.onnx, 1 thread, 2.10 ms [95% 2.05–2.20]`` for a device's recorded choice."""
    chosen = record["recommended"]
    low, high = chosen["p50_interval_ms"]
    threads = "1 thread" if chosen["threads"] == 1 else "the default threads"
    return f"{chosen['artifact']}, {threads}, {chosen['p50_ms']:.2f} ms [95% {low:.2f}–{high:.2f}] at batch 1"


def _verdict(text: str) -> str:
    """PASS and FAIL for the gates' two answers; anything else (unmeasured, reported) shown as itself, never as PASS."""
    if text == "pass":
        return "[bold green]PASS[/]"
    return "[bold red]FAIL[/]" if text == "fail" else f"[bold yellow]{escape(text.upper())}[/]"


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
        f"{model_name(model)}, {model['num_classes']} classes, {model['resolution']}², batch {model['batch']}",
    )
    table.add_row(
        "weights", model["checkpoint"]["path"] if model["checkpoint"] else f"random init (seed {model['seed']})"
    )
    table.add_row("params / MACs", f"{model['params']:,} / {model['macs'] / 1e6:.2f}M")
    table.add_row("target", target_text(model.get("target")))
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
            f"max |Δ| {figures['max_abs']:.2e}, min cosine {figures['min_cosine']:.7f}, "
            f"centred cosine {fmt(figures.get('centred_cosine'), '.7f')}"
            if figures["max_abs"] is not None
            else "; ".join(figures["reasons"])
        )
        table.add_row(f"parity ({stage})", f"{shown}  {_verdict(figures['verdict'])}")
    table.add_row(
        "tolerance",
        f"atol {tolerance['atol']:g} + rtol {tolerance['rtol']:g}·|ref|, "
        f"cosine ≥ {tolerance['min_cosine']}, centred cosine ≥ {tolerance.get('min_centred_cosine', '–')}, "
        f"batches {','.join(map(str, parity['simplified']['batches']))}",
    )
    table.add_row("verdict", _verdict(parity["verdict"]))
    for warning in parity.get("warnings", []):
        table.add_row("[yellow]warning[/]", escape(warning))
    if parity["verdict"] == "pass":
        table.add_row("file", f"{result.model_path} ({artifact['bytes'] / 1e6:.1f} MB, opset {artifact['opset']})")
    table.add_row("time", f"{result.seconds.get('total', 0):.1f} s")
    return table


@contextmanager
def calibration_bar(console: Console) -> Iterator[Callable[[int, int], None]]:
    """A progress bar over calibration batches; yields the callback that advances it."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("[bold]calibrate[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    task = None

    def advance(done: int, total: int) -> None:
        nonlocal task
        if task is None or done == 1:
            if task is not None:
                progress.remove_task(task)
            task = progress.add_task("calibrate", total=total)
        progress.update(task, completed=done)

    with progress:
        yield advance


def quantize_summary(result) -> Table:
    """Recipe, data, quality figures against the gate, baseline, size and time of one artifact."""
    record = result.record
    quality = record["quality"]
    table = Table(title=f"ghostexport quantize: {result.path}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    recipe = record["recipe"]
    if record["mode"] == "int8":
        kept = recipe["kept_float"]
        table.add_row(
            "recipe",
            f"int8 QDQ, {recipe['method']}, {recipe['activation_type']} activations / "
            f"{recipe['weight_type']} weights, {'per-channel' if recipe['per_channel'] else 'per-tensor'}, "
            f"reduce_range {recipe['reduce_range']}",
        )
        table.add_row(
            "kept float",
            f"{len(kept)} node{'' if len(kept) == 1 else 's'}"
            + (f": {', '.join(kept[:4])}{', …' if len(kept) > 4 else ''}" if kept else "")
            + (" (the logits stay float)" if record.get("graph_forms", {}).get("float_logits") else ""),
        )
        forms = record.get("graph_forms")
        if forms and (forms["stem"] != "as built" or forms["split_convs_merged"]):
            table.add_row(
                "int8 graph form",
                ", ".join(
                    part
                    for part in (
                        "stem as SpaceToDepth + 2×2 conv" if forms["stem"] != "as built" else "",
                        f"{forms['split_convs_merged']} split convs merged back" if forms["split_convs_merged"] else "",
                    )
                    if part
                ),
            )
        table.add_row("why these types", recipe["types_reason"])
    else:
        table.add_row("recipe", f"{record['mode']}: " + ", ".join(f"{k} {v}" for k, v in recipe.items()))
    if record.get("calibration"):
        calibration = record["calibration"]
        table.add_row(
            "calibration",
            f"{calibration['source']} ({calibration['samples']} samples)"
            + (" [bold red]SYNTHETIC[/]" if calibration["synthetic"] else ""),
        )
    evaluation = record["evaluation"]
    table.add_row(
        "evaluation",
        f"{evaluation['source']} ({evaluation['samples']} samples" + (", labelled)" if evaluation["labelled"] else ")"),
    )
    figures = [
        f"SQNR {quality['sqnr_db']} dB",
        f"centred SQNR {quality.get('centred_sqnr_db')} dB",
        f"top-1 agreement {quality['top1_agreement']:.4f}",
        f"top-5 agreement {quality['top5_agreement']:.4f}",
    ]
    if quality.get("mean_cosine") is not None:
        figures += [f"mean cosine {quality['mean_cosine']:.6f}", f"max |Δ| {quality['max_abs']:.3g}"]
    table.add_row("quality", ", ".join(figures))
    if "accuracy" in quality:
        table.add_row(
            "accuracy",
            f"fp32 {quality['accuracy_reference']:.4f} -> {quality['accuracy']:.4f} "
            f"(drop {quality['accuracy_drop_points']:.2f} points)",
        )
    if "baseline" in record:
        base = record["baseline"]
        gain = (quality["sqnr_db"] or 0) - (base["sqnr_db"] or 0)
        table.add_row(
            "ORT stock recipe",
            f"same types ({base.get('types', 'u8/s8')}): SQNR {base['sqnr_db']} dB, agreement "
            f"{base['top1_agreement']:.4f} (this recipe: {gain:+.2f} dB)",
        )
    if "latency" in record:
        latency = record["latency"]
        rows = [
            f"{label} {stats['p50_ms']:.2f} ms ({stats['ratio_to_fp32']:.2f}×)"
            for label, stats in latency["runs"].items()
        ]
        table.add_row("latency (b1, 1 thread)", "; ".join(rows))
    gate = {k: v for k, v in quality["gate"].items() if v is not None}
    table.add_row("gate", ", ".join(f"{k} {v}" for k, v in gate.items()))
    verdict = quality["verdict"]
    shown = {
        "pass": "[bold green]PASS[/]",
        "fail": "[bold red]FAIL[/]",
        "reported": "[bold yellow]NOT ENFORCED[/] (synthetic data)",
    }[verdict]
    table.add_row("verdict", shown + (f": {escape('; '.join(quality['reasons']))}" if quality["reasons"] else ""))
    table.add_row("file", f"{result.path} ({record['bytes'] / 1e6:.1f} MB, {record['nodes']} nodes)")
    table.add_row("time", f"{record['seconds']:.1f} s")
    return table


def _where(entry: CheckResult) -> str:
    """The provider an entry ran on; on a device (``--on``), that device's architecture and whether it was emulated."""
    if entry.get("device"):
        device = entry["device"]
        return f"{device_label(device)} (--on)"
    if entry["fallback"]:
        return f"[red]CPU (fallback from {entry['provider']})[/]"
    return entry["providers_used"][0].replace("ExecutionProvider", "")


def check_summary(result) -> Table | Group:
    """One table per place the artifacts ran (this machine, then each ``--on`` device)."""
    places: dict[str | None, list] = {}
    for entry in result.results:
        places.setdefault((entry.get("device") or {}).get("command"), []).append(entry)
    tables = [_check_table(result, entries, command) for command, entries in places.items()]
    return tables[0] if len(tables) == 1 else Group(*tables)


def _check_table(result, entries: list, command: str | None) -> Table:
    """One row per artifact: what was compared, where, the figures, the verdict and why."""
    title = "ghostexport check" + (f": {result.folder}" if result.folder else "")
    if command is not None:
        device = entries[0]["device"]
        title += f", on {device_label(device)}: {command}"
    table = Table(title=escape(title), title_justify="left")
    columns = (
        "artifact",
        "vs",
        "provider",
        "max |Δ|",
        "min cosine",
        "centred cos.",
        "SQNR dB",
        "top-1 agr.",
        "verdict",
    )
    for column in columns:
        table.add_column(column)
    shown = {"pass": "[bold green]PASS[/]", "fail": "[bold red]FAIL[/]", "reported": "[yellow]reported[/]"}
    captions: list[str] = []
    for entry in entries:
        notes = [entry["reasons"][0]] if entry["reasons"] else []
        if entry["verdict"] == "reported" and notes:
            notes = [f"not enforced (random inputs): {notes[0]}"]
        if entry.get("localize"):
            first = entry["localize"]["first_divergence"]
            notes.append(
                f"first divergence: {first['node']} ({first['op']}, SQNR {first['sqnr_db']} dB)"
                if first
                else f"no node leaves tolerance ({entry['localize']['compared']} compared)"
            )
        why = "; ".join(notes)
        table.add_row(
            f"{entry['artifact']} ({entry['precision']})",
            "torch" if entry["reference"].startswith("torch") else Path(entry["reference"]).name,
            _where(entry),
            fmt(entry.get("max_abs"), ".2e"),
            fmt(entry.get("min_cosine"), ".7f"),
            fmt(entry.get("centred_cosine"), ".6f"),
            fmt(entry.get("sqnr_db"), ".1f"),
            fmt(entry.get("top1_agreement"), ".4f"),
            shown[entry["verdict"]],
        )
        if why:
            captions.append(f"{entry['artifact']}: {escape(why)}")
    if command is None:
        captions += [f"[yellow]warning:[/] {escape(warning)}" for warning in result.warnings]
    else:
        device = entries[0]["device"]
        captions.append(f"{escape(device['cpu'])}, {escape(device['system'])}, onnxruntime {device['onnxruntime']}")
    if captions:
        table.caption = "\n".join(captions)
        table.caption_justify = "left"
    return table


def fmt(value, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def bench_summary(result) -> Table | Group:
    """This machine's table, then one per ``--on`` device (rows timed there, ratios among themselves)."""
    here = _bench_table(result, [row for row in result.rows if not row.get("device")])
    devices: dict[str, list] = {}
    for row in result.rows:
        if row.get("device"):
            devices.setdefault(row["device"], []).append(row)
    if not devices:
        return here
    tables = [here]
    for command, rows in devices.items():
        table = Table(title=escape(f"ghostexport bench on {command}"), title_justify="left")
        _bench_rows(table, rows)
        described = result.environment.get("devices", {}).get(command, {})
        emulated = " — emulated: these timings say nothing about the device's speed" if rows[0]["emulated"] else ""
        table.caption = escape(
            f"{described.get('cpu', '?')}, onnxruntime {described.get('onnxruntime', '?')}{emulated}"
        )
        table.caption_justify = "left"
        tables.append(table)
    return Group(*tables)


def _bench_table(result, rows: list) -> Table:
    """Medians, tails, throughput and the ratio to the first model, per batch size."""
    env = result.environment
    table = Table(
        title=f"ghostexport bench: {env.get('provider', env['provider_requested'])}, threads {env['threads']}, "
        + (f"{env['streams']} concurrent streams (p50 = one round of all), " if env.get("streams", 1) > 1 else "")
        + f"ORT {env['onnxruntime']}, {env['cpu']}",
        title_justify="left",
    )
    _bench_rows(table, rows)
    captions = [
        f"providers in use: {', '.join(sorted(set(env['providers_in_use'].values())) or ['torch'])}; "
        f"spinning {'on' if env['thread_spinning'] else 'off'}; {env['graph_optimization_level']}"
    ]
    if "cuda_device" in env:
        captions.append(f"GPU: {env['cuda_device']}; cuDNN algo search {env['cudnn_conv_algo_search']}; IO binding")
    captions += [f"[yellow]warning:[/] {escape(w)}" for w in result.warnings]
    table.caption = "\n".join(captions)
    table.caption_justify = "left"
    return table


def _bench_rows(table: Table, rows: list) -> None:
    for column in ("model", "batch", "p50 ms", "p90 ms", "p99 ms", "mean ± std", "images/s", "latency ÷ first"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for row in rows:
        table.add_row(
            row["model"],
            str(row["batch"]),
            f"{row['p50_ms']:.2f}",
            f"{row['p90_ms']:.2f}",
            f"{row['p99_ms']:.2f}",
            f"{row['mean_ms']:.2f} ± {row['std_ms']:.2f}",
            f"{row['throughput_ips']:.1f}",
            f"{row['ratio_to_first']:.2f}",
        )


def predict_tables(result) -> list[Table]:
    """One table per image: rank, class index, label, probability."""
    tables = []
    for prediction in result.predictions:
        table = Table(title=Path(prediction.image).name, title_justify="left")
        for column in ("#", "class", "label", "probability"):
            table.add_column(column)
        for rank, entry in enumerate(prediction.top, 1):
            table.add_row(str(rank), str(entry["index"]), escape(entry["label"]), f"{entry['probability']:.4f}")
        tables.append(table)
    return tables


def target_text(target: Target | None) -> str:
    """A build's target in words: its name, where it runs, and the layout it got."""
    if not target:
        return "host (recorded before targets existed)"
    applied = target["applied"]
    layout = f"channels aligned to {applied['align_channels'] or 'none'}, Concat split {'on' if applied['split_concat_convs'] else 'off'}"
    if applied.get("op_forms") == "mobile":
        layout += f", batch {applied['static_batch']}, mobile op forms"
    return f"{target['name']}: {target['runs_on']}; {layout}"


def info_summary(described: dict) -> Table:
    table = Table(title=f"ghostexport info: {described['path']}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    manifest = described["manifest"]
    if manifest:
        model = manifest["model"]
        table.add_row(
            "model",
            f"{model_name(model)}, {model['num_classes']} classes, {model['resolution']}², batch {model['batch']}",
        )
        params = f"{model['params']:,}" + (
            f" ({model['deploy_params']:,} re-parameterised)" if model.get("deploy_params") else ""
        )
        table.add_row("params / MACs", f"{params} / {model['macs'] / 1e6:.2f}M")
        table.add_row(
            "weights", model["checkpoint"]["path"] if model["checkpoint"] else f"random init (seed {model['seed']})"
        )
        table.add_row("target", target_text(model.get("target")))
    else:
        table.add_row("model", "no manifest: described from the ONNX graph alone")
        table.add_row("parameters", f"{described['initializer_elements']:,} initializer elements")
    table.add_row(
        "file",
        f"{described['bytes'] / 1e6:.1f} MB, sha256 {described['sha256'][:16]}…, opset {described['opset']}, "
        f"{described['nodes']} nodes",
    )
    for label in ("inputs", "outputs"):
        table.add_row(label, "; ".join(f"{io['name']} {io['dtype']} {io['shape']}" for io in described[label]))
    table.add_row(
        "ops", ", ".join(f"{op} {count}" for op, count in sorted(described["ops"].items(), key=lambda kv: -kv[1]))
    )
    if described["metadata"]:
        table.add_row(
            "metadata",
            escape(", ".join(f"{k.removeprefix('ghostexport.')}={v}" for k, v in described["metadata"].items())),
        )
    if manifest:
        table.add_row(
            "artifacts",
            "\n".join(
                f"{name}: {a['bytes'] / 1e6:.1f} MB, {str(a['verdict']).upper()}"
                + (f" (gated computing in {a['runs_in']})" if a.get("runs_in") else "")
                for name, a in manifest["artifacts"].items()
            ),
        )
        table.add_row(
            "history",
            f"built {manifest['created']} by ghostexport {manifest['ghostexport']}; "
            f"{manifest['checks']} checks, {manifest['benchmarks']} benchmarks recorded",
        )
        for command, seen in manifest.get("devices", {}).items():
            device = seen["device"]
            verdicts = ", ".join(f"{name} {verdict.upper()}" for name, verdict in seen["verdicts"].items())
            table.add_row(
                "checked on",
                escape(f"{device_label(device)}, {device['cpu']} via {command}: {verdicts} ({seen['checked']})"),
            )
        for command, chosen in manifest.get("recommended_on", {}).items():
            text = device_line(chosen) if chosen["recommended"] else chosen["note"]
            table.add_row("recommended on", escape(f"{command}: {text} ({chosen['created']})"))
        if manifest.get("recommended"):
            selection = manifest["recommended"]
            where = selection["environment"]["cpu"]
            table.add_row(
                "recommended",
                escape(
                    f"{recommendation_line(selection).removeprefix('recommended: ')} (on {where}, {selection['created']})"
                ),
            )
    return table


@contextmanager
def training_bar(console: Console) -> Iterator[Callable[[int, int, float], None]]:
    """A progress bar over one epoch's steps with the running loss; yields the callback that advances it."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("[bold]train[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    task = None

    def advance(step: int, total: int, loss: float) -> None:
        nonlocal task
        if task is None or step == 1:
            if task is not None:
                progress.remove_task(task)
            task = progress.add_task("train", total=total, loss=loss)
        progress.update(task, completed=step, loss=loss)

    with progress:
        yield advance


def ghostify_summary(result) -> Table:
    """Layers replaced, params and MACs before/after, the fine-tuning, the two build folders."""
    if not hasattr(result, "counts"):  # a failed build inside ghostify carries the build's own result
        return build_summary(result)
    counts = result.counts
    table = Table(title=f"ghostexport ghostify: {result.work}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("replaced", f"{counts['layers_replaced']} of {counts['layers_considered']} convolutions")
    for name, before, after in (
        ("params", counts["params_before"], counts["params_after"]),
        ("MACs", counts["macs_before"], counts["macs_after"]),
    ):
        table.add_row(
            name, f"{before / 1e6:,.2f}M -> {after / 1e6:,.2f}M ({after / before:.3f}×) at {counts['resolution']}²"
        )
    kept = [row for row in result.rows if not row["replaced"]]
    if kept:
        table.add_row(
            "kept",
            escape("; ".join(f"{row['name']} ({row['why']})" for row in kept[:4]))
            + (f"; … {len(kept) - 4} more" if len(kept) > 4 else ""),
        )
    training = result.training
    if training:
        before, after = training["before"], training["after"]
        if after is not None:
            table.add_row(
                training["measure"],
                f"original {100 * before['original']:.2f}%, ghosted {100 * before['ghosted_warm_start']:.2f}% before "
                f"fine-tuning, {100 * after:.2f}% after (drop {training['drop_points']:+.2f} points)",
            )
        table.add_row(
            "training", f"{len(training['epochs'])} epochs, {training['seconds']:.1f} s; stopped: {training['stopped']}"
        )
        gate = training.get("gate", {})
        table.add_row("accuracy gate", f"{escape(gate.get('message', ''))}  {_verdict(result.accuracy_verdict)}")
    else:
        table.add_row("accuracy gate", f"not measured: give --train and --eval  {_verdict(result.accuracy_verdict)}")
    if result.ghosted is not None:
        table.add_row("builds", f"{result.original.folder}  {result.ghosted.folder}")
        table.add_row("compare", escape(f"ghostexport bench {result.original.folder} {result.ghosted.folder}"))
    table.add_row("verdict", _verdict(result.verdict))
    return table

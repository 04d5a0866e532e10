"""The pipeline's markdown report: verdicts first, then each artifact's evidence, latency and environment.

A file a reviewer reads in a pull request, so it states every gate's figure beside its tolerance.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ghostexport.folder.records import artifact_verdict, model_name
from ghostexport.render.console import device_label, fmt, recommendation_line

if TYPE_CHECKING:
    from ghostexport.folder.schema import Artifact


def pipeline_markdown(payload: dict, plotted: bool = False) -> str:
    """A human report: verdicts first, then each artifact's evidence, latency, environment."""
    lines = ["# ghostexport pipeline report", ""]
    failed = payload["failed"]
    verdict = {
        "fail": f"FAIL at {failed['stage']}" if failed else "FAIL",
        "pass": "PASS",
        "reported": "PASS (some gates REPORTED, not enforced: synthetic data)",
    }[payload.get("verdict", "fail" if failed else "pass")]
    lines.append(f"**Verdict: {verdict}** — `{payload['command']}` ({payload['seconds']:.1f} s)")
    if failed:
        lines += ["", f"> {failed['reason']}"]
    for warning in payload.get("warnings", []):
        lines += ["", f"> **WARNING:** {warning}"]
    lines += ["", "| stage | verdict | seconds |", "|---|---|---|"]
    lines += [f"| {s['stage']} | {s['verdict'].upper()} | {s.get('seconds', '')} |" for s in payload["stages"]]
    manifest = payload["manifest"]
    if manifest:
        model = manifest["model"]
        lines += [
            "",
            "## Model",
            "",
            f"{model_name(model)}, {model['num_classes']} classes, {model['resolution']}², "
            f"batch {model['batch']}; {model['params']:,} params, {model['macs'] / 1e6:.2f}M MACs; weights: "
            + (
                f"`{model['checkpoint']['path']}` (sha256 {model['checkpoint']['sha256'][:16]}…)"
                if model["checkpoint"]
                else f"random init, seed {model['seed']}"
            ),
            "",
            "## Artifacts",
            "",
            "| file | bytes | sha256 | parent | evidence | verdict |",
            "|---|---|---|---|---|---|",
        ]
        for name, record in manifest["artifacts"].items():
            lines.append(
                f"| {name} | {record['bytes']:,} | `{record['sha256'][:16]}…` | "
                f"{('`' + record['parent'][:12] + '…`') if record.get('parent') else '–'} | "
                f"{_evidence(record)} | {_record_verdict(record)} |"
            )
        for entry in manifest.get("checks", [])[-1:]:
            lines += [
                "",
                f"## Check ({entry['provider']})",
                "",
                "| artifact | vs | where | max abs | min cosine | SQNR dB | top-1 agreement | tolerance | verdict |",
                "|---|---|---|---|---|---|---|---|---|",
            ]
            for r in entry["results"]:
                tolerance = ", ".join(f"{k} {v}" for k, v in r["tolerance"].items() if v is not None)
                lines.append(
                    f"| {r['artifact']} | {r['reference']} | {_where(r)} | {fmt(r.get('max_abs'), '.2e')} | "
                    f"{fmt(r.get('min_cosine'), '.6f')} | {fmt(r.get('sqnr_db'), '.1f')} | "
                    f"{fmt(r.get('top1_agreement'), '.4f')} | {tolerance} | {r['verdict'].upper()} |"
                )
    if payload["bench"]:
        env = payload["bench"]["environment"]
        lines += [
            "",
            f"## Latency ({env.get('provider', env['provider_requested'])}, threads {env['threads']})",
            "",
            "| model | batch | p50 ms | p90 ms | p99 ms | images/s | × first |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['model']} | {r['batch']} | {r['p50_ms']:.2f} | {r['p90_ms']:.2f} | {r['p99_ms']:.2f} | "
            f"{r['throughput_ips']:.1f} | {r['ratio_to_first']:.2f} |"
            for r in payload["bench"]["results"]
        ]
        if plotted:
            lines += ["", "![latency and throughput](bench.png)"]
    if (manifest or {}).get("recommended"):
        selection = manifest["recommended"]
        lines += ["", "## Recommended here", "", recommendation_line(selection)]
        lines += (
            [f"(left out: {', '.join(selection['left_out'])}: gates not enforced)"] if selection["left_out"] else []
        )
    if manifest:
        env = manifest["environment"]
        lines += [
            "",
            "## Environment",
            "",
            ", ".join(f"{k} {v}" for k, v in env.items() if k != "cpu_flags"),
            "",
            f"CPU flags: {' '.join(env['cpu_flags'])}",
        ]
    return "\n".join(lines) + "\n"


def _evidence(record: Artifact) -> str:
    text = ""
    if "parity" in record and "quality" not in record:
        parity = record["parity"]
        text = f"parity max abs {fmt(parity.get('max_abs') or parity.get('simplified', {}).get('max_abs'), '.2e')}"
    elif "quality" in record:
        q = record["quality"]
        text = f"SQNR {q['sqnr_db']} dB, agreement {q['top1_agreement']:.4f}"
        text += " (synthetic data: not enforced)" if q["verdict"] == "reported" else ""
        if "parity" in record:  # an IR that computes in bf16: its f32 parity proves the conversion
            text = f"parity (f32) max abs {fmt(record['parity'].get('max_abs'), '.2e')}; " + text
    if "inference" in record:
        text += f"; computes in {record['inference']['precision']} ({record['inference']['setting']})"
    if record.get("mobile_usability"):
        eps = record["mobile_usability"]["eps"]
        text += "; ORT Mobile: " + ", ".join(
            f"{ep} {r['supported_nodes']}/{r['nodes']} nodes, {r['partitions']} partition{'s' if r['partitions'] != 1 else ''}"
            for ep, r in eps.items()
        )
    return text


def _where(result: dict) -> str:
    """This machine, or the device a result was measured on (``--on``), emulated or not."""
    device = result.get("device")
    if not device:
        return "here"
    return f"{device_label(device)}: `{device['command']}`"


def _record_verdict(record: Artifact) -> str:
    return str(artifact_verdict(record) or "").upper()

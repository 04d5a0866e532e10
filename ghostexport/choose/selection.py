"""``bench --select``: the fastest artifact of a folder that passed its gates, with its session settings.

Candidates are the folder's artifacts whose gates passed (fp32 parity; int8/fp16 quality
enforced on real data — an artifact whose figures were only reported is timed and named,
but not recommended): the ONNX artifacts on ORT, and the LiteRT/ExecuTorch/OpenVINO
artifacts on their own runtime where it is installed (a missing one is named, not timed; an
OpenVINO IR at the inference precision it was gated at). The plain ``torch.onnx.export`` of
the same PyTorch model (rebuilt from the manifest, not simplified, nothing folded by
ghostexport) is timed alongside as the naive reference, never recommended — on ORT, and,
where OpenVINO is installed, on OpenVINO at its defaults (what two lines of OpenVINO give a
user with no ghostexport). The result goes into the manifest's ``recommended`` (the latest
selection replaces the previous one) with the machine, the load it ran under, any tie it
settled, and — where it differs from the selection it replaces — what changed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ghostexport.base.errors import UsageError
from ghostexport.base.progress import Progress
from ghostexport.choose.trials import Runs, SessionSettings, recommend, settings_label
from ghostexport.folder.artifacts import MODEL_FILE, ModelRef, edge_artifacts, select_artifacts
from ghostexport.folder.commit import scratch_folder, update_manifest
from ghostexport.folder.records import artifact_verdict, now
from ghostexport.render.console import recommendation_line
from ghostexport.runtime.edge import EDGE_ARTIFACTS, EDGE_RUNTIMES, runtime_installed
from ghostexport.targets.host import cpu_description

if TYPE_CHECKING:
    from ghostexport.folder.schema import Artifact, TimedSettings

NAIVE = "naive export"
NAIVE_OPENVINO = "naive export on OpenVINO defaults"


def select(
    ref: ModelRef, budget_s: float, command: str | None, say: Progress, also: tuple[SessionSettings, ...] = ()
) -> tuple[dict, dict]:
    """Time, choose and record; (the selection as recorded, the raw samples per (artifact, settings)).

    ``also``: settings timed besides the grid (bench's own, whose batch-1 rows then reuse
    these samples: one measurement per artifact and settings).
    """
    if ref.folder is None or ref.manifest is None:
        raise UsageError(
            f"--select needs a build folder (its manifest says which artifacts passed); {ref.path} has none"
        )
    candidates, left_out, skipped = {}, {}, []
    edge = [
        (name, Runs(ref.folder / name, runtime, _gated_precision(ref.manifest["artifacts"][name])))
        for name, runtime in edge_artifacts(ref, "cpu", skipped)
    ]
    for name, how in [(name, path) for name, path, _ in select_artifacts(_whole(ref))] + edge:
        (candidates if passed_gates(ref.manifest["artifacts"].get(name)) else left_out)[name] = how
    resolution = ref.manifest["model"]["resolution"]
    previous = ref.manifest.get("recommended")
    with scratch_folder(ref.folder) as scratch:  # the artifacts left out are timed too, for the record
        naive = _naive_export(ref, scratch / "naive.onnx")
        references = {NAIVE: naive}
        if runtime_installed("openvino"):
            references[NAIVE_OPENVINO] = Runs(naive, "openvino", defaults=True)
        found = recommend(candidates, {**references, **left_out}, budget_s, say, resolution, also)
    cpu, flags = cpu_description()
    chosen = found["recommended"]
    selection = {
        "created": now(),
        "command": command or "ghostexport.stages.bench(select=True)",
        "recommended": chosen,
        "best_per_artifact": found["best"],
        "left_out": {name: "its gates were reported, not enforced (synthetic data)" for name in left_out},
        "not_timed": skipped,
        "not_built": _unbuilt_runtimes(ref),
        "budget_seconds": budget_s,
        "environment": {"cpu": cpu, "cpu_flags": flags},
        "note": _note(found["best"], chosen, left_out),
        "ratio_meaning": "the recommendation's median latency divided by each artifact's fastest: below 1, it is faster",
        "rows": found["rows"],
        "finalists": found["finalists"],
        "load": found["load"],
        "tie": found["tie"],
        "changed_from": _changed_from(previous, chosen, found),
    }
    update_manifest(ref.folder, lambda manifest: manifest.__setitem__("recommended", selection))
    say("select", recommendation_line(selection))
    if selection["not_built"]:
        runtimes = ",".join(selection["not_built"])
        say(
            "select", f"{runtimes} installed here: convert --to (or pipeline --edge {runtimes}) adds them to the choice"
        )
    return selection, found["samples"]


def _whole(ref: ModelRef) -> ModelRef:
    ref.whole_folder = True  # a folder means all its artifacts here
    return ref


def passed_gates(record: Artifact | None) -> bool:
    """Whether every gate of an artifact passed (enforced, on real data): the only artifacts a selection may recommend."""
    return artifact_verdict(record) == "pass"


def _gated_precision(record: Artifact) -> str | None:
    """The inference precision an OpenVINO IR was gated at (and so is timed at); None for the other runtimes."""
    return (record.get("inference") or {}).get("precision")


def _changed_from(previous, chosen: TimedSettings, found: dict) -> dict | None:
    """Where this choice differs from the one it replaces (artifact or threads): what was chosen then, and why not now.

    The previous choice's row in this run says whether it is now measurably slower (intervals
    apart) or only not chosen (a tie the rule settled otherwise, or not told apart), and the load
    of both runs is set side by side.
    """
    if not previous:
        return None
    before = previous["recommended"]
    if (before["artifact"], before["threads"]) == (chosen["artifact"], chosen["threads"]):
        return None
    same = [
        row
        for row in found["rows"]
        if (row["artifact"], row["threads"]) == (before["artifact"], before["threads"])
        and settings_label(row) == settings_label(before)
    ]
    if not same:
        why = f"{before['artifact']} was not timed with those settings here (not built, left out or not installed)"
    elif same[0]["p50_interval_ms"][0] > chosen["p50_interval_ms"][1]:
        why = (
            f"it is measurably slower now: {same[0]['p50_ms']:.3f} ms [95% {same[0]['p50_interval_ms'][0]:.3f}–"
            f"{same[0]['p50_interval_ms'][1]:.3f}] vs {chosen['p50_ms']:.3f} ms"
        )
    else:
        why = (
            f"not told apart from this choice ({same[0]['p50_ms']:.3f} ms vs {chosen['p50_ms']:.3f} ms, intervals "
            "overlap): the medians moved with the machine's load"
        )
    load_then = ((previous.get("load") or {}).get("second_pass") or {}).get("load_average_before")
    load_now = found["load"]["second_pass"]["load_average_before"]
    return {
        "artifact": before["artifact"],
        "settings": settings_label(before),
        "created": previous["created"],
        "why": why,
        "load_average_then": load_then,
        "load_average_now": load_now,
    }


def _naive_export(ref: ModelRef, path):
    """``torch.onnx.export`` of the model as a user would write it: unfolded, unsimplified, dynamic batch."""
    import onnx

    from ghostexport.folder.reference import rebuild_from_manifest
    from ghostexport.graph.export import export_onnx

    model = rebuild_from_manifest(ref.manifest)
    onnx.save(export_onnx(model, ref.manifest["model"]["resolution"], None), str(path))
    return path


def _note(best: dict[str, TimedSettings], chosen: TimedSettings, left_out: dict[str, str]) -> str | None:
    """One line when int8 is measurably slower than fp32 here, or when an unverified artifact would have been faster.

    "Slower" only where the two medians' 95% intervals do not overlap; where they do, the
    line says the two are not told apart.
    """
    fp32, int8 = best.get(MODEL_FILE), best.get("model.int8.onnx")
    if fp32 and int8:
        (int8_low, int8_high), (fp32_low, fp32_high) = int8["p50_interval_ms"], fp32["p50_interval_ms"]
        figures = f"int8 {_figure(int8)} vs fp32 {_figure(fp32)}, each at its fastest settings"
        if int8_low > fp32_high:
            return f"int8 is slower than fp32 on this machine ({figures}): ship fp32 or fp16 here"
        if fp32_low <= int8_high:  # and int8_low <= fp32_high: the intervals overlap
            return f"int8 and fp32 are within measurement noise of each other here ({figures})"
    faster = [name for name in left_out if name in best and best[name]["p50_ms"] < chosen["p50_ms"]]
    if faster:
        return (
            f"{', '.join(faster)} would be faster here but {'their' if len(faster) > 1 else 'its'} gates were only "
            "reported: quantize (or convert --precision int8) with --calib on real images to make it eligible"
        )
    return None


def _figure(row: TimedSettings) -> str:
    low, high = row["p50_interval_ms"]
    return f"{row['p50_ms']:.2f} ms [95% {low:.2f}–{high:.2f}] ({settings_label(row)})"


def _unbuilt_runtimes(ref: ModelRef) -> list[str]:
    """Edge runtimes installed here whose artifacts the folder lacks: they could be in the choice too."""
    built = {owner for name, owner in EDGE_ARTIFACTS.items() if name in ref.manifest["artifacts"]}
    return [runtime for runtime in EDGE_RUNTIMES if runtime not in built and runtime_installed(runtime)]

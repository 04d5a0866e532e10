"""``bench --select --on CMD``: the fastest verified ONNX artifact of a folder, chosen on another device.

The artifacts whose gates passed are timed on the device itself (the device's worker
interleaves them call by call) at one thread and at ONNX Runtime's default (one per core of
the device), each row with a 95% interval for its median. The choice is recorded per device in
the manifest's ``recommended_on``, beside this machine's ``recommended``. A device that is
emulated records its rows but no recommendation: emulated timings say nothing about speed.
"""

from __future__ import annotations

from dataclasses import replace
from statistics import median

from ghostexport.base.progress import Progress
from ghostexport.choose.selection import passed_gates
from ghostexport.choose.trials import median_interval
from ghostexport.folder.artifacts import ModelRef, select_artifacts
from ghostexport.folder.commit import update_manifest
from ghostexport.folder.records import now
from ghostexport.render.console import device_line
from ghostexport.runtime.device import Device

#: the thread counts timed on a device: one, and ONNX Runtime's default there (None: one per core)
DEVICE_THREADS = (1, None)
EMULATED_NOTE = "emulated: its timings say nothing about the device's speed, so none is recommended"


def select_on_device(
    ref: ModelRef, device: Device, rounds: int, warmup: int, say: Progress
) -> dict[tuple[str, int | None], list[float]]:
    """Time the folder's verified ONNX artifacts on ``device`` and record the choice there.

    Returns the batch-1 samples per (artifact, threads; None for the default), for bench to reuse.
    """
    whole = replace(ref, whole_folder=True)  # a folder means all its artifacts here
    candidates = {name: path.read_bytes() for name, path, record in select_artifacts(whole) if passed_gates(record)}
    side = ref.manifest["model"]["resolution"]
    rows, samples = [], {}
    for threads in DEVICE_THREADS:
        timed = device.latency_ms(candidates, (1, 3, side, side), rounds, warmup, threads)
        for name, values in timed.items():
            samples[(name, threads)] = values
            low, high = median_interval(values)
            rows.append(
                {
                    "artifact": name,
                    "threads": threads or "default",
                    "p50_ms": round(median(values), 4),
                    "p50_interval_ms": [round(low, 4), round(high, 4)],
                    "samples": len(values),
                }
            )
    rows.sort(key=lambda row: row["p50_ms"])
    chosen = None if device.emulated or not rows else rows[0]
    record = {
        "created": now(),
        "device": device.record,
        "rows": rows,
        "recommended": chosen,
        "note": EMULATED_NOTE if device.emulated else None,
    }
    update_manifest(
        ref.folder, lambda manifest: manifest.setdefault("recommended_on", {}).update({device.name: record})
    )
    say("select", f"on {device.name}: " + (device_line(record) if chosen else EMULATED_NOTE))
    return samples

"""Parity and int8 quality on ONNX Runtime's ARM kernels (emulated ARM64) against this machine's x86 kernels.

The trained digits GhostNet (0.5×, 64², ``tests/data``) is built for ``--target arm64`` (s8/s8
int8) and for this machine's class (``host``: u8/s8), each quantized on 200 real calibration
digits, plus the ``--target mobile`` fp32 build; then every artifact is checked on the 360
held-out digits here and ``--on`` an emulated aarch64 Python (``scripts/arm64_python.sh``).
Emulated timings mean nothing, so none are taken; the figures are outputs of the ARM kernels.

    python benchmarks/arm64_quality.py [--save]

``--save`` keeps the run in ``benchmarks/results/arm64_quality.json`` and renders README.md's
ARM64 table from it (``benchmarks/docs_tables.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts"), str(ROOT / "benchmarks")]
import digits  # noqa: E402
import docs_tables  # noqa: E402

from ghostexport import build, check, quantize  # noqa: E402

CHECKPOINT = ROOT / "tests" / "data" / "ghostnet_050-digits-r64.safetensors"
#: what a check entry carries for each artifact (accuracy is in its per-batch figures, not kept here)
FIGURES = ("max_abs", "sqnr_db", "centred_sqnr_db", "top1_agreement", "verdict")


def arm64_command() -> str:
    script = str(ROOT / "scripts" / "arm64_python.sh")
    done = subprocess.run(["bash", script], capture_output=True, text=True, check=True, env=_with_python())
    return done.stdout.strip().splitlines()[-1]


def _with_python() -> dict:
    return {**os.environ, "PYTHON": sys.executable}


def run() -> dict:
    device = arm64_command()
    report: dict = {"device_command": "scripts/arm64_python.sh", "artifacts": {}, "check_seconds": {}}
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        calib, held_out = digits.write_folder("calib", work / "calib"), digits.write_folder("test", work / "test")
        for target in ("host", "arm64", "mobile"):
            folder = build(
                width=0.5, resolution=64, num_classes=10, checkpoint=CHECKPOINT, target=target, out=work / target
            ).folder
            if target != "mobile":
                quantize(folder, calib=str(calib), eval=str(held_out), baseline=False)
            start = time.perf_counter()
            result = check(folder, data=str(held_out), batches=(8,), on=(device,))
            seconds = time.perf_counter() - start
            for entry in result.results:
                where = "arm64" if entry.get("device") else "x86"
                row = report["artifacts"].setdefault(f"{target}: {entry['artifact']}", {})
                row[where] = {key: entry.get(key) for key in FIGURES}
                if where == "arm64":
                    row["device"] = {k: entry["device"][k] for k in ("machine", "cpu", "onnxruntime", "emulated")}
            report["check_seconds"][target] = round(seconds, 1)
            report["samples"] = result.results[0]["samples"]
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--save", action="store_true", help="keep the run in benchmarks/results/ and render the docs")
    args = parser.parse_args()
    report = run()
    print(json.dumps(report, indent=2))
    print(docs_tables.arm64_quality_table(report))
    if args.save:
        print(f"saved {docs_tables.save('arm64_quality', report)}")
        docs_tables.main([])


if __name__ == "__main__":
    main()

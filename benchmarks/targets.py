"""Per-target artifacts of GhostNet 1.0× on this machine, and what ``bench --select`` would pick.

Builds, with the same random weights, the naive path (official-style GhostNet, plain
``torch.onnx.export``) and ghostexport's fp32 artifact for every CPU ``--target`` (host —
the layout measured fastest on this CPU's class —, the graph as built, x86-avx2,
x86-vnni/avx512 layouts, arm64, mobile), plus int8 (synthetic calibration: its quality is
not the question here, latency is) of the host build (stem float, the default, and stem
int8), of the as-built graph and of the build of this machine's class. Every artifact is then timed at batch 1 under every session setting
``bench --select`` tries (``tuning.recommend``), in interleaved blocks; the table gives each
artifact's best median and settings, as a ratio to the naive path's best. A second,
independent interleaved run of the three fastest and the naive path checks that the first
choice is within 3% of the best there too.

    python benchmarks/targets.py [--seconds 60] [--json targets.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from perf import naive_export

from ghostexport import build
from ghostexport.host import cpu_description
from ghostexport.quantize import quantize
from ghostexport.targets import host_class
from ghostexport.tuning import recommend

SEED = 0


def artifacts(work: Path) -> dict[str, Path]:
    here = host_class(cpu_description()[1], platform.machine())
    found = {}
    as_built = build(target="host", align_channels=0, split_concat_convs=False, seed=SEED, out=work / "as-built").folder
    found["fp32 as built"] = as_built / "model.onnx"
    quantize(as_built, baseline=False)
    found["int8 as built"] = as_built / "model.int8.onnx"
    for target in dict.fromkeys(["host", here, "x86-avx2", "arm64", "mobile"]):
        folder = build(target=target, seed=SEED, out=work / target).folder
        found[f"fp32 {target}"] = folder / "model.onnx"
        if target in ("host", here):
            quantize(folder, baseline=False, float_ends="none")
            found[f"int8 {target} (stem int8)"] = folder / "model.int8.onnx"
        if target == "host":
            stem = shutil.copytree(folder, work / "host-stem-float")
            quantize(stem, baseline=False)
            found["int8 host"] = stem / "model.int8.onnx"
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    cpu, flags = cpu_description()
    print(f"{cpu} ({', '.join(flags)}), class {host_class(flags, platform.machine())}")
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        candidates = artifacts(work)
        naive = naive_export(work / "naive.onnx", SEED)
        first = recommend(candidates, {"naive": naive}, args.seconds)
        naive_ms = first["best"]["naive"]["p50_ms"]
        print(f"\n{'artifact':<22} {'best p50 ms':>11} {'× naive':>8}  settings")
        for label, row in sorted(first["best"].items(), key=lambda item: item[1]["p50_ms"]):
            settings = f"{row['threads']} threads, spinning {'on' if row['spinning'] else 'off'}, {row['optimization']}"
            print(f"{label:<22} {row['p50_ms']:>11.3f} {row['p50_ms'] / naive_ms:>8.3f}  {settings}")
        chosen = first["recommended"]["artifact"]
        top = [
            label for label, _ in sorted(first["best"].items(), key=lambda item: item[1]["p50_ms"]) if label != "naive"
        ][:3]
        second = recommend({label: candidates[label] for label in top}, {"naive": naive}, args.seconds / 2)
        best_again = min(second["best"][label]["p50_ms"] for label in top)
        within = second["best"][chosen]["p50_ms"] / best_again
        print(
            f"\nrecommended: {chosen}; in an independent re-run it is {within:.3f}× the best of the top three (≤ 1.03 wanted)"
        )
        print(f"recommended vs naive: {first['recommended']['ratios']['to naive']}×")
        if args.json:
            args.json.write_text(json.dumps({"cpu": cpu, "flags": flags, "first": first, "second": second}, indent=2))


if __name__ == "__main__":
    main()

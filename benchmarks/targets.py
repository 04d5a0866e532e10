"""Per-target artifacts of GhostNet 1.0× on this machine, and what ``bench --select`` would pick.

Builds, with the same random weights, the naive path (official-style GhostNet, plain
``torch.onnx.export``) and ghostexport's fp32 artifact for every CPU ``--target`` (host —
the layout measured fastest on this CPU's class —, the graph as built, x86-avx2,
x86-vnni/avx512 layouts, arm64, mobile), plus int8 (synthetic calibration: its quality is
not the question here, latency is) of the host build (stem float, the default, and stem
int8), of the as-built graph and of the build of this machine's class, and — for each edge
runtime installed (``[litert]``, ``[executorch]``; ``--edge none`` leaves them out) — the
host build's fp32 and int8 ``.tflite``/``.pte``. Every artifact is then timed at batch 1
under every setting ``bench --select`` tries (``tuning.recommend``: its two passes), in
interleaved blocks; the table gives each artifact's best median and settings, as a ratio to
the naive path's best. A second, independent ``recommend`` over the three fastest and the
naive path checks that the first choice is within 3% of the best there too, and the
recommendation is held against the floor for this CPU class (≤ 0.75× of the naive path on
AVX2 without VNNI, ≤ 0.62× on AVX-512/VNNI).

    python benchmarks/targets.py [--seconds 60] [--edge litert,executorch|none] [--save]

``--save`` keeps the run in ``benchmarks/results/targets.json`` and renders README.md's speed
table from it (``benchmarks/docs_tables.py``).
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import docs_tables
from perf import naive_export

from ghostexport import __version__, build, quantize
from ghostexport.choose.trials import recommend
from ghostexport.runtime.edge import EDGE_RUNTIMES, edge_file, runtime_installed
from ghostexport.runtime.ort import physical_cores
from ghostexport.stages.convert import convert
from ghostexport.targets.host import cpu_description
from ghostexport.targets.profiles import host_class

SEED = 0
RESOLUTION = 224
#: the recommendation's ceiling, as a ratio to the naive path, per CPU class (none set for the others)
FLOORS = {"x86-avx2": 0.75, "x86-avx512": 0.62, "x86-vnni": 0.62}


def installed_edge_runtimes() -> list[str]:
    return [r for r in EDGE_RUNTIMES if runtime_installed(r, "converter") and runtime_installed(r, "runtime")]


def artifacts(work: Path, edge: list[str]) -> dict[str, Path]:
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
            for runtime, precision in ((r, p) for r in edge for p in ("fp32", "int8")):
                convert(stem, to=runtime, precision=precision)
                found[f"{precision} {runtime}"] = stem / edge_file(runtime, precision)
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--edge", default=None, help="edge runtimes to convert to (default: those installed)")
    parser.add_argument("--save", action="store_true", help="keep the run in benchmarks/results/ and render the docs")
    args = parser.parse_args()
    edge = installed_edge_runtimes() if args.edge is None else [r for r in args.edge.split(",") if r != "none"]
    cpu, flags = cpu_description()
    here = host_class(flags, platform.machine())
    print(f"{cpu} ({', '.join(flags)}), class {here}; edge runtimes: {', '.join(edge) or 'none'}")
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        candidates = artifacts(work, edge)
        naive = naive_export(work / "naive.onnx", SEED)
        first = recommend(candidates, {"naive": naive}, args.seconds, resolution=RESOLUTION)
        naive_ms = first["best"]["naive"]["p50_ms"]
        print(f"\n{'artifact':<26} {'best p50 ms':>11} {'× naive':>8}  settings")
        for label, row in sorted(first["best"].items(), key=lambda item: item[1]["p50_ms"]):
            settings = f"{row['runtime']}, {row['threads']} threads"
            if row["spinning"] is not None:
                settings += f", spinning {'on' if row['spinning'] else 'off'}, {row['optimization']}"
            print(f"{label:<26} {row['p50_ms']:>11.3f} {row['p50_ms'] / naive_ms:>8.3f}  {settings}")
        chosen = first["recommended"]
        top = [label for label, _ in sorted(first["best"].items(), key=lambda item: item[1]["p50_ms"])]
        top = [label for label in top if label != "naive"][:3]
        second = recommend(
            {label: candidates[label] for label in top}, {"naive": naive}, args.seconds / 2, resolution=RESOLUTION
        )
        # the re-run judged as select judges: one table, each pair over all its samples
        again = {label: second["best"][label]["p50_ms"] for label in top}
        within = again[chosen["artifact"]] / min(again.values())
        to_naive = chosen["ratios"]["to naive"]
        print(
            f"\nrecommended: {chosen['artifact']} ({chosen['runtime']}, {chosen['threads']} threads), "
            f"{to_naive}× the latency of the naive path; in an independent re-run it is {within:.3f}× "
            f"the latency of the best of the top three ({'MET' if within <= 1.03 else 'NOT MET'}: ≤ 1.03 wanted)"
        )
        onnx_only = min(
            row["p50_ms"]
            for label, row in first["best"].items()
            if row["runtime"] == "onnxruntime" and label != "naive"
        )
        print(f"best ONNX Runtime artifact alone: {onnx_only / naive_ms:.3f}× the naive path (first pass)")
        if here in FLOORS:
            floor = FLOORS[here]
            print(f"floor for {here}: ≤ {floor}× the naive path: {'MET' if to_naive <= floor else 'NOT MET'}")
        if args.save:
            import onnxruntime

            versions = {"onnxruntime": onnxruntime.__version__, "ghostexport": __version__}
            result = {"cpu": cpu, "flags": flags, "cpu_class": here, "cores": physical_cores(), "versions": versions}
            # the raw samples are keyed by settings objects: the tables need the rows, not the samples
            first, second = ({k: v for k, v in run.items() if k != "samples"} for run in (first, second))
            result |= {"seconds": args.seconds, "first": first, "second": second, "reran_within": round(within, 3)}
            print(f"saved {docs_tables.save('targets', result)}")
            docs_tables.main([])


if __name__ == "__main__":
    main()

"""The x86 runtimes side by side: ghostexport's artifacts against a naive export on ORT and on OpenVINO's defaults.

One trained model and real images: GhostNet 0.5× at 112², trained for ``--epochs`` on
scikit-learn's digits (1,400 training images; 397 held out), built and run through
``pipeline`` with the same calibration images (200 training digits) for every runtime's int8
(ONNX, and each of LiteRT, ExecuTorch and OpenVINO that is installed) and the held-out digits
for every gate. Then, in one interleaved selection run (``choose.trials.recommend``, the
timing ``bench --select`` does) on the same checkpoint:

- the naive path: the plain ``torch.onnx.export`` of the trained model on ONNX Runtime fp32;
- OpenVINO on that same naive export, as two lines of OpenVINO would run it: its defaults
  (on a CPU with bf16 instructions it computes in bf16; the export's dynamic batch kept),
  forced f32, and NNCF int8 with NNCF's defaults, calibrated on the same 200 images;
- every ghostexport artifact whose gates passed, under every setting the selection tries.

Each artifact's fastest median is printed as a ratio to the naive path's fastest and to
OpenVINO's defaults, with the recommendation. The goal on x86: the recommendation at most
1.0× the latency of OpenVINO's defaults on the naive export, every gate passed.

This runs twice: on the machine as it is, and under a competing load (a busy process per
``--load`` core). Under the same load, ``bench --select`` then runs ``--reruns`` times on the
folder: the same artifact and thread count each time, or the selection's record says why not
(``changed_from``). The precision figures compare the fp32 IR in f32 and in bf16 with PyTorch
on the held-out digits.

    python benchmarks/x86_runtimes.py [--seconds 60] [--epochs 8] [--reruns 3] [--load 1] [--work DIR] [--save]

``--save`` keeps the run in ``benchmarks/results/x86_runtimes.json`` and renders the tables in
README.md and docs/performance.md from it (``benchmarks/docs_tables.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts"), str(ROOT / "benchmarks")]

import digits  # noqa: E402
import docs_tables  # noqa: E402
import torch  # noqa: E402
from ghostify_digits import write_splits  # noqa: E402

from ghostexport import __version__, bench, pipeline  # noqa: E402
from ghostexport.choose.selection import NAIVE, NAIVE_OPENVINO, _naive_export, passed_gates  # noqa: E402
from ghostexport.choose.trials import Runs, recommend, settings_label  # noqa: E402
from ghostexport.evidence.data import load_dataset  # noqa: E402
from ghostexport.evidence.quality import measure  # noqa: E402
from ghostexport.folder.artifacts import resolve_model  # noqa: E402
from ghostexport.folder.manifest import read_manifest  # noqa: E402
from ghostexport.folder.records import preprocess_config  # noqa: E402
from ghostexport.model.arch import create_model  # noqa: E402
from ghostexport.runtime.edge import EDGE_RUNTIMES, runner, runtime_installed, runtime_of  # noqa: E402
from ghostexport.runtime.openvino import default_precision, version  # noqa: E402
from ghostexport.stages.specs import BuildSpec  # noqa: E402
from ghostexport.targets.host import cpu_description  # noqa: E402

SEED, WIDTH, RESOLUTION = 0, 0.5, 112
NAIVE_OPENVINO_F32 = "naive export on OpenVINO, forced f32"
NAIVE_OPENVINO_INT8 = "naive export on OpenVINO, NNCF int8"
#: the goal: the recommendation's latency over OpenVINO's defaults on the naive export
GOAL = 1.0


def train_checkpoint(folders: dict[str, Path], epochs: int, path: Path) -> float:
    """GhostNet 0.5× trained on the training digits; its held-out accuracy. Saved as safetensors."""
    from safetensors.torch import save_file

    shape = (3, RESOLUTION, RESOLUTION)
    data = load_dataset(str(folders["train"]), preprocess_config(RESOLUTION), shape)
    held = load_dataset(str(folders["test"]), preprocess_config(RESOLUTION), shape)
    model = digits.train(create_model("ghostnet", WIDTH, 10, SEED), data.inputs, data.labels, epochs, seed=SEED)
    with torch.no_grad():
        logits = torch.cat([model(torch.from_numpy(held.inputs[i : i + 128])) for i in range(0, len(held), 128)])
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return float((logits.argmax(1).numpy() == held.labels).mean())


def installed_runtimes() -> tuple[str, ...]:
    return tuple(r for r in EDGE_RUNTIMES if runtime_installed(r) and runtime_installed(r, "converter"))


def build_folder(work: Path, folders: dict[str, Path], checkpoint: Path) -> Path:
    """``pipeline``: every artifact, every runtime's int8 calibrated on the same images, gated on the held-out ones."""
    spec = BuildSpec(
        width=WIDTH, num_classes=10, resolution=RESOLUTION, checkpoint=str(checkpoint), out=work / "models", seed=SEED
    )
    calib, held = str(folders["calib"]), str(folders["test"])
    return pipeline(build=spec, calib=calib, eval=held, edge=installed_runtimes(), select=False, progress=print).folder


def references(folder: Path, work: Path, calib: Path) -> dict[str, Runs]:
    """The naive export on ORT and on OpenVINO (defaults, forced f32, NNCF int8 on the same calibration images)."""
    import nncf
    import openvino as ov

    naive = _naive_export(resolve_model(folder), work / "naive.onnx")
    images = load_dataset(str(calib), read_manifest(folder)["model"]["preprocess"], (3, RESOLUTION, RESOLUTION)).inputs
    # NNCF as its documentation shows it: the model and a dataset, every other setting its default
    quantized = nncf.quantize(ov.convert_model(str(naive)), nncf.Dataset([image[None] for image in images]))
    ov.save_model(quantized, str(work / "naive.int8.xml"))
    return {
        NAIVE: Runs(naive, "onnxruntime"),
        NAIVE_OPENVINO: Runs(naive, "openvino", defaults=True),
        NAIVE_OPENVINO_F32: Runs(naive, "openvino", "f32", defaults=True),
        NAIVE_OPENVINO_INT8: Runs(work / "naive.int8.xml", "openvino", defaults=True),
    }


def candidates(folder: Path) -> dict[str, Runs]:
    """The folder's artifacts whose gates passed, each on its runtime (an IR at its gated precision)."""
    found = {}
    for name, record in read_manifest(folder)["artifacts"].items():
        if passed_gates(record):
            precision = (record.get("inference") or {}).get("precision")
            found[name] = Runs(folder / name, runtime_of(Path(name)), precision)
    return found


def timed(folder: Path, refs: dict[str, Runs], seconds: float) -> dict:
    """One interleaved selection run: every artifact's fastest row as ratios, and the recommendation."""
    found = recommend(candidates(folder), refs, seconds, print, RESOLUTION)
    best, chosen = found["best"], found["recommended"]
    naive, default = best[NAIVE]["p50_ms"], best[NAIVE_OPENVINO]["p50_ms"]
    rows = [
        {
            "artifact": label,
            "runtime": row["runtime"],
            "settings": settings_label(row),
            "p50_ms": row["p50_ms"],
            "interval_ms": row["p50_interval_ms"],
            "to_naive": round(row["p50_ms"] / naive, 3),
            "to_openvino_defaults": round(row["p50_ms"] / default, 3),
        }
        for label, row in sorted(best.items(), key=lambda item: item[1]["p50_ms"])
    ]
    return {
        "rows": rows,
        "recommended": {
            "artifact": chosen["artifact"],
            "settings": settings_label(chosen),
            "p50_ms": chosen["p50_ms"],
            "to_naive": round(chosen["p50_ms"] / naive, 3),
            "to_openvino_defaults": round(chosen["p50_ms"] / default, 3),
        },
        "goal_met": chosen["p50_ms"] / default <= GOAL,
        "tie": found["tie"],
        "load": found["load"],
    }


def precision_figures(folder: Path, held: Path) -> dict:
    """The fp32 IR in f32 and in bf16 against PyTorch on the held-out digits: the gate's reason for existing."""
    from ghostexport.folder.reference import rebuild_from_manifest

    manifest = read_manifest(folder)
    data = load_dataset(str(held), manifest["model"]["preprocess"], (3, RESOLUTION, RESOLUTION))
    with torch.no_grad():
        reference = rebuild_from_manifest(manifest)(torch.from_numpy(data.inputs)).numpy()
    figures = {}
    for precision in ("f32", "bf16"):
        logits = runner("openvino", folder / "model.xml", precision=precision)(data.inputs)
        found = measure(reference, logits, data.labels)
        figures[precision] = {
            key: found[key] for key in ("max_abs", "sqnr_db", "mean_cosine", "top1_agreement", "accuracy")
        }
    return figures


def quiet_down(limit_s: float = 120.0) -> None:
    """Wait (at most ``limit_s``) for the 1-minute load average to fall below 0.5 after the pipeline's work."""
    started = time.perf_counter()
    while os.getloadavg()[0] >= 0.5 and time.perf_counter() - started < limit_s:
        time.sleep(5)
    print(f"quiet run: load average {os.getloadavg()[0]:.2f}")


def _busy() -> None:
    while True:
        sum(i * i for i in range(10_000))


@contextlib.contextmanager
def competing_load(processes: int):
    """``processes`` busy processes (pure Python, one core each) for the duration."""
    workers = [multiprocessing.Process(target=_busy, daemon=True) for _ in range(processes)]
    for worker in workers:
        worker.start()
    time.sleep(3)  # let the load average see them
    try:
        yield
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.join()


def reruns(folder: Path, count: int, seconds: float) -> list[dict]:
    """``bench --select`` ``count`` times on the same folder: the choice each time, and what its record says."""
    found = []
    for _ in range(count):
        bench([folder], select=True, select_seconds=seconds, iterations=3, progress=print)
        selection = read_manifest(folder)["recommended"]
        chosen = selection["recommended"]
        found.append(
            {
                "artifact": chosen["artifact"],
                "threads": chosen["threads"],
                "settings": settings_label(chosen),
                "p50_ms": chosen["p50_ms"],
                "tie": bool(selection.get("tie")),
                "changed_from": selection.get("changed_from"),
                "load_average": selection["load"]["second_pass"]["load_average_before"],
            }
        )
    return found


def gates(folder: Path) -> dict[str, str]:
    """Every artifact's verdict (all its gates)."""
    verdicts = {}
    for name, record in read_manifest(folder)["artifacts"].items():
        blocks = [record[block]["verdict"] for block in ("parity", "quality") if record.get(block)]
        verdicts[name] = "fail" if "fail" in blocks else "reported" if "reported" in blocks else "pass"
    return verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="each selection run's budget")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--reruns", type=int, default=3)
    parser.add_argument("--load", type=int, default=1, help="busy processes for the loaded runs")
    parser.add_argument("--save", action="store_true", help="keep the run in benchmarks/results/ and render the docs")
    parser.add_argument("--work", type=Path, default=None, help="keep the images, checkpoint and folder here")
    args = parser.parse_args()
    if not runtime_installed("openvino") or not runtime_installed("openvino", "converter"):
        sys.exit("this benchmark compares against OpenVINO: pip install 'ghostexport[openvino]'")
    cpu, flags = cpu_description()
    precision, why = default_precision()
    with tempfile.TemporaryDirectory() if args.work is None else contextlib.nullcontext(args.work) as tmp:
        work = Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        folders = write_splits(work / "digits")
        accuracy = train_checkpoint(folders, args.epochs, work / "ghostnet-digits.safetensors")
        print(f"trained GhostNet {WIDTH}× at {RESOLUTION}²: held-out accuracy {100 * accuracy:.2f}%")
        folder = build_folder(work, folders, work / "ghostnet-digits.safetensors")
        refs = references(folder, work, folders["calib"])
        quiet_down()
        quiet = timed(folder, refs, args.seconds)
        with competing_load(args.load):
            loaded = timed(folder, refs, args.seconds)
            again = reruns(folder, args.reruns, args.seconds / 2)
        report = {
            "ghostexport": __version__,
            "openvino": version(),
            "cpu": cpu,
            "cpu_flags": [flag for flag in flags if flag.startswith(("avx512", "amx", "avx_vnni", "avx2"))],
            "cores": os.cpu_count(),
            "openvino_default_precision": precision,
            "openvino_default_precision_why": why,
            "model": f"GhostNet {WIDTH}× at {RESOLUTION}², 10 classes, trained {args.epochs} epochs on digits",
            "held_out_accuracy": round(accuracy, 4),
            "runtimes": list(installed_runtimes()),
            "gates": gates(folder),
            "seconds": args.seconds,
            "load_processes": args.load,
            "quiet": quiet,
            "loaded": loaded,
            "reruns": again,
            "precision": precision_figures(folder, folders["test"]),
        }
    print("\n" + docs_tables.x86_runtimes_table(report))
    print("\n" + docs_tables.x86_precision_table(report))
    for condition in ("quiet", "loaded"):
        found = report[condition]
        verdict = "met" if found["goal_met"] else "NOT met"
        print(
            f"{condition}: recommended {found['recommended']['artifact']} ({found['recommended']['settings']}), "
            f"{found['recommended']['to_openvino_defaults']}× OpenVINO's defaults: goal ≤ {GOAL}× {verdict}"
        )
    choices = {(rerun["artifact"], rerun["threads"]) for rerun in again}
    print(f"reruns under load: {len(choices)} distinct choice(s): {sorted(choices)}")
    if args.save:
        print(f"saved {docs_tables.save('x86_runtimes', report)}")
        docs_tables.main([])


if __name__ == "__main__":
    main()

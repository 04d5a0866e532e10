"""ORT, LiteRT and ExecuTorch on the same GhostNet, through ghostexport's own artifacts.

Latency: GhostNet 1.0× at 224², random weights (seed 0), batch 1, at 1 and 2 threads, every
artifact timed interleaved in one run, as ratios to ORT running the plain ``torch.onnx.export``
of the same model (the naive path). Artifacts: ghostexport's ``model.onnx`` and
``model.int8.onnx`` (the host default), and ``convert --to litert|executorch`` fp32 and int8
(calibrated on synthetic images: quality is not the question in this half).

Quality: the trained digits GhostNet (tests/data, 0.5×, 64², 10 classes), int8 per runtime,
calibrated on 200 digits and measured on 360 others against PyTorch fp32: accuracy drop
(the gate asked: ≤ 0.5 points) and SQNR, from each artifact's own record.

    python benchmarks/edge_runtimes.py [--rounds 200] [--json edge.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path[:0] = [str(ROOT), str(ROOT.parent / "scripts")]

import digits  # noqa: E402
import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
from perf import naive_export  # noqa: E402

from ghostexport import build, quantize  # noqa: E402
from ghostexport.runtime.edge import runner  # noqa: E402
from ghostexport.runtime.latency import interleaved_samples, summarize  # noqa: E402
from ghostexport.stages.convert import convert  # noqa: E402
from ghostexport.targets.host import cpu_description  # noqa: E402

CHECKPOINT = ROOT.parent / "tests" / "data" / "ghostnet_050-digits-r64.safetensors"
RUNTIMES = ("executorch", "litert")


def ort_runner(path: Path, threads: int):
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: np.random.default_rng(1).standard_normal((1, 3, 224, 224), dtype=np.float32)}
    return lambda: session.run(None, feed)


def edge_runner(path: Path, threads: int):
    data = path.read_bytes()
    run = runner("litert" if path.suffix == ".tflite" else "executorch", data, threads)
    feed = np.random.default_rng(1).standard_normal((1, 3, 224, 224), dtype=np.float32)
    return lambda: run(feed)


def latency(work: Path, rounds: int) -> dict:
    folder = build(width=1.0, seed=0, out=work / "models").folder
    quantize(folder, baseline=False)
    seconds = {}
    for runtime in RUNTIMES:
        for precision in ("fp32", "int8"):
            tick = time.perf_counter()
            result = convert(
                folder, to=runtime, precision=precision, calib="synthetic:32" if precision == "int8" else None
            )
            seconds[result.path.name] = (round(time.perf_counter() - tick, 1), result.record["bytes"])
    naive = naive_export(work / "naive.onnx", 0)
    paths = {"ORT, plain export": naive, "ORT, ghostexport fp32": folder / "model.onnx"}
    paths["ORT, ghostexport int8"] = folder / "model.int8.onnx"
    for name in ("model.tflite", "model.int8.tflite", "model.pte", "model.int8.pte"):
        paths[f"{'LiteRT' if name.endswith('tflite') else 'ExecuTorch'} {'int8' if 'int8' in name else 'fp32'}"] = (
            folder / name
        )
    table = {}
    for threads in (1, 2):
        runners = {
            label: (ort_runner if path.suffix == ".onnx" else edge_runner)(path, threads)
            for label, path in paths.items()
        }
        timed = interleaved_samples(runners, rounds, None, 10)
        base = summarize(timed["ORT, plain export"])["p50_ms"]
        table[threads] = {
            label: (summarize(values)["p50_ms"], summarize(values)["p50_ms"] / base) for label, values in timed.items()
        }
    return {"table": table, "conversion": seconds}


def quality(work: Path) -> dict:
    root = work / "digits"
    calib, test = digits.write_folder("calib", root / "calib"), digits.write_folder("test", root / "test")
    folder = build(
        width=0.5, resolution=64, checkpoint=CHECKPOINT, align_channels=0, split_concat_convs=False, out=root / "models"
    ).folder
    found = {"ORT int8": quantize(folder, calib=str(calib), eval=str(test), baseline=False).record["quality"]}
    for runtime in RUNTIMES:
        record = convert(folder, to=runtime, precision="int8", calib=str(calib), eval=str(test)).record
        found[f"{runtime} int8"] = record["quality"]
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    cpu, flags = cpu_description()
    print(f"{cpu} ({', '.join(flags)})")
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        timed = latency(work, args.rounds)
        print(f"\n{'runtime / artifact':<24} {'1 thread':>16} {'2 threads':>16}")
        for label in timed["table"][1]:
            cells = [f"{timed['table'][t][label][0]:6.2f} ms {timed['table'][t][label][1]:5.2f}" for t in (1, 2)]
            print(f"{label:<24} {cells[0]:>16} {cells[1]:>16}")
        print("\nconversion (s, bytes):", timed["conversion"])
        measured = quality(work)
        print("\ndigits GhostNet int8 vs PyTorch fp32 (360 held-out digits):")
        for label, figures in measured.items():
            print(
                f"{label:<18} accuracy {100 * figures['accuracy']:.2f}% (drop {figures['accuracy_drop_points']:+.2f} pt), "
                f"SQNR {figures['sqnr_db']} dB, {figures['verdict']}"
            )
        if args.json:
            args.json.write_text(json.dumps({"cpu": cpu, "latency": timed, "quality": measured}, indent=2, default=str))


if __name__ == "__main__":
    main()

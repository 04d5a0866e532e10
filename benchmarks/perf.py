"""GhostNet 1.0× on ONNX Runtime's CPU provider: the naive path against ghostexport's artifacts.

Builds, in one run: the naive path (official-style PyTorch GhostNet -> plain
``torch.onnx.export`` with its defaults -> ORT with default session options), ghostexport's
default fp32, int8, int8 (--method auto) and fp16 artifacts, the fastest build options
("fast": --align-channels 16 --split-concat-convs, int8 with --float-ends none), and PyTorch
eager — all with the same weights — then times them interleaved at batch 1/8/32 and 1/2
threads (spinning off), at batch 1 / 2 threads with ORT's default spinning pool, and at
batch 32 in throughput mode (2 concurrent requests of 1 thread each); prints medians and
ratios to the naive path, profiles per op type, and writes JSON.

    python benchmarks/perf.py [--rounds 100] [--json perf.json]

Targets set for this release: best artifact ≤ 0.45× naive at batch 1 / 2 threads and ≤ 0.5× at 1
thread; ghostexport fp32 ≤ 0.85×; int8 throughput at batch 32 ≥ 2× naive.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from official_style import official_style

from ghostexport import build, quantize
from ghostexport.model.arch import create_model
from ghostexport.runtime.latency import concurrent, interleaved_samples, summarize

BATCHES = (1, 8, 32)
THREADS = (1, 2)


def naive_export(path: Path, seed: int) -> Path:
    model = official_style(create_model("ghostnet", 1.0, 1000, seed)).eval()
    # the defaults plus the dynamic batch every tutorial adds (without it torch 2.13's default
    # dynamo exporter specialises the batch to 1)
    torch.onnx.export(
        model, (torch.randn(1, 3, 224, 224),), str(path), input_names=["input"], dynamic_axes={"input": {0: "batch"}}
    )
    return path


def session(path: Path, threads: int, naive: bool, spinning: bool = False) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    # spinning off when sessions are interleaved call by call: a spinning pool would steal the
    # cores from the next session (``measure_spinning`` covers ORT's default, spinning on)
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    if not naive:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def openvino_models(paths: dict[str, Path], threads: int) -> dict:
    """OpenVINO reference rows when it is installed (optional: ``pip install openvino``).

    The naive fp32 ONNX at f32 precision (the reference every ratio is taken against), the same at OpenVINO's
    default precision (bf16 where the CPU has AMX — not fp32 parity), and ghostexport's fastest
    int8 (OpenVINO runs QDQ graphs as int8).
    """
    try:
        import openvino
    except ImportError:
        return {}
    core = openvino.Core()
    config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
    models = {
        "openvino fp32": core.compile_model(
            str(paths["naive fp32"]), "CPU", {**config, "INFERENCE_PRECISION_HINT": "f32"}
        ),
        "openvino default": core.compile_model(str(paths["naive fp32"]), "CPU", config),
        "openvino fast int8": core.compile_model(str(paths["fast int8"]), "CPU", config),
    }
    return {name: model.create_infer_request() for name, model in models.items()}


def measure(paths: dict[str, Path], rounds: int) -> dict:
    results: dict = {}
    torch_model = create_model("ghostnet", 1.0, 1000, 0).eval()
    for threads in THREADS:
        torch.set_num_threads(threads)
        sessions = {name: session(path, threads, name == "naive fp32") for name, path in paths.items()}
        requests = openvino_models(paths, threads)
        for batch in BATCHES:
            x = np.random.default_rng(batch).standard_normal((batch, 3, 224, 224), dtype=np.float32)
            xt = torch.from_numpy(x)
            runners = {
                name: (lambda s=s, x=x: s.run(None, {s.get_inputs()[0].name: x})) for name, s in sessions.items()
            }
            runners.update({name: (lambda r=r, x=x: r.infer({0: x})) for name, r in requests.items()})

            def eager(xt=xt):
                with torch.inference_mode():
                    torch_model(xt)

            runners["torch eager"] = eager
            n = max(5, rounds // batch * 2) if batch > 1 else rounds
            stats = {name: summarize(values) for name, values in interleaved_samples(runners, n).items()}
            base = stats["naive fp32"]["p50_ms"]
            for s in stats.values():
                s["ratio_to_naive"] = round(s["p50_ms"] / base, 3)
                s["images_per_s"] = round(batch * 1000 / s["p50_ms"], 1)
            results[f"threads={threads} batch={batch}"] = stats
            print(f"\nthreads {threads}, batch {batch} ({n} interleaved rounds)")
            for name, s in stats.items():
                print(
                    f"  {name:<22} p50 {s['p50_ms']:8.2f} ms  p90 {s['p90_ms']:8.2f}  {s['images_per_s']:8.1f} img/s"
                    f"  × naive {s['ratio_to_naive']:.3f}"
                )
    return results


def measure_spinning(paths: dict[str, Path], rounds: int, threads: int = 2, block: int = 20) -> dict:
    """Batch 1 with ORT's default spinning thread pool, for the naive path and every artifact.

    Interleaved by blocks of ``block`` calls with a pause between blocks, so that one
    session's spinning workers have gone idle before the next session runs.
    """
    sessions = {name: session(path, threads, name == "naive fp32", spinning=True) for name, path in paths.items()}
    x = np.random.default_rng(1).standard_normal((1, 3, 224, 224), dtype=np.float32)
    runners = {name: (lambda s=s: s.run(None, {s.get_inputs()[0].name: x})) for name, s in sessions.items()}
    runners.update({name: (lambda r=r: r.infer({0: x})) for name, r in openvino_models(paths, threads).items()})
    medians: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(max(5, rounds // block)):
        for name, run in runners.items():
            run()
            times = []
            for _ in range(block):
                start = time.perf_counter()
                run()
                times.append((time.perf_counter() - start) * 1000.0)
            medians[name].append(float(np.median(times)))
            time.sleep(0.03)
    base = float(np.median(medians["naive fp32"]))
    stats = {
        name: {
            "p50_ms": round(float(np.median(values)), 3),
            "ratio_to_naive": round(float(np.median(values)) / base, 3),
        }
        for name, values in medians.items()
    }
    print(f"\nthreads {threads}, batch 1, ORT default spinning (blocks of {block} calls, median of block medians)")
    for name, s in stats.items():
        print(f"  {name:<22} p50 {s['p50_ms']:8.2f} ms  × naive {s['ratio_to_naive']:.3f}")
    return stats


def measure_streams(paths: dict[str, Path], rounds: int, streams: int = 2, batch: int = 32) -> dict:
    """Throughput mode at batch 32: ``streams`` concurrent requests, one thread each, every model alike."""
    sessions = {name: session(path, 1, name == "naive fp32") for name, path in paths.items()}
    x = np.random.default_rng(batch).standard_normal((batch, 3, 224, 224), dtype=np.float32)
    with ThreadPoolExecutor(max_workers=streams) as pool:
        runners = {
            name: concurrent(lambda s=s: s.run(None, {s.get_inputs()[0].name: x}), streams, pool)
            for name, s in sessions.items()
        }
        timed = interleaved_samples(runners, max(5, rounds // batch * 2))
    stats = {name: summarize(values) for name, values in timed.items()}
    base = stats["naive fp32"]["p50_ms"]
    print(f"\n{streams} streams x 1 thread, batch {batch} (throughput mode)")
    for name, s in stats.items():
        s["images_per_s"] = round(streams * batch * 1000 / s["p50_ms"], 1)
        s["throughput_vs_naive"] = round(base / s["p50_ms"], 3)
        print(f"  {name:<22} {s['images_per_s']:8.1f} img/s  × naive throughput {s['throughput_vs_naive']:.2f}")
    return stats


def profile(path: Path, runs: int = 60) -> dict[str, float]:
    """Share of kernel time per op type, batch 1, 1 thread (ORT's profiler)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.enable_profiling = True
    options.profile_file_prefix = str(path.with_suffix(""))
    s = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224), dtype=np.float32)
    for _ in range(runs):
        s.run(None, {s.get_inputs()[0].name: x})
    events = json.loads(Path(s.end_profiling()).read_text())
    totals: dict[str, float] = defaultdict(float)
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            totals[event["args"]["op_name"]] += event["dur"]
    whole = sum(totals.values()) or 1.0
    return {op: round(100 * t / whole, 1) for op, t in sorted(totals.items(), key=lambda kv: -kv[1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        # the defaults: build, quantize (stem kept float), fp16
        folder = build(width=1.0, out=work / "models").folder
        auto = Path(shutil.copytree(folder, work / "auto" / folder.name))
        quantize(folder, mode="int8", baseline=False)
        quantize(folder, mode="fp16")
        # --method auto: best calibration method (synthetic data here: timing only, figures not gated)
        quantize(auto, mode="int8", method="auto", baseline=False)
        # the fastest: NCHWc-aligned channels, Concat->1x1 conv split (fp32), nothing float but the logits
        fast = build(width=1.0, out=work / "fast", align_channels=16, split_concat_convs=True).folder
        quantize(fast, mode="int8", baseline=False, float_ends="none")
        paths = {
            "naive fp32": naive_export(work / "naive.onnx", seed=0),
            "ghostexport fp32": folder / "model.onnx",
            "fast fp32": fast / "model.onnx",
            "ghostexport int8": folder / "model.int8.onnx",
            "fast int8": fast / "model.int8.onnx",
            "ghostexport int8-auto": auto / "model.int8.onnx",
            "ghostexport fp16": folder / "model.fp16.onnx",
        }
        results = measure(paths, args.rounds)
        spinning = measure_spinning(paths, args.rounds)
        streams = measure_streams(paths, args.rounds)
        profiles = {
            name: profile(paths[name])
            for name in ("naive fp32", "ghostexport fp32", "fast fp32", "ghostexport int8", "fast int8")
        }
    print("\nprofile (batch 1, 1 thread): share of kernel time per op type")
    for name, shares in profiles.items():
        print(f"  {name:<16} " + ", ".join(f"{op} {share}%" for op, share in list(shares.items())[:8]))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "results": results,
                    "spinning_threads2_batch1": spinning,
                    "streams2_batch32": streams,
                    "profiles": profiles,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()

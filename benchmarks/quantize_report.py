"""Quantization quality and latency, measured in one run (the README's quantize tables).

Quality: the digits GhostNet 0.5× (64², trained by scripts/train_digits.py), calibrated on
200 real digits and evaluated on 360 others, for each calibration method, auto, the
per-tensor variant and ORT's stock recipe. Latency: GhostNet 1.0× at 224² (random weights:
latency does not depend on them), fp32 vs int8 vs fp16 vs int8-dynamic, interleaved, batch 1
and 8, as ratios to fp32.

    python benchmarks/quantize_report.py [--rounds 200] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import digits  # noqa: E402

from ghostexport import build, quantize  # noqa: E402
from ghostexport.runtime.latency import interleaved  # noqa: E402
from ghostexport.runtime.providers import cpu_session  # noqa: E402

CHECKPOINT = ROOT / "tests" / "data" / "ghostnet_050-digits-r64.safetensors"


def quality_rows(work: Path) -> list[dict]:
    folder = build(width=0.5, resolution=64, checkpoint=CHECKPOINT, out=work / "models").folder
    calib = digits.write_folder("calib", work / "calib")
    test = digits.write_folder("test", work / "test")
    runs = [
        ("minmax (default: stem kept float)", {"method": "minmax"}),
        ("entropy", {"method": "entropy"}),
        ("percentile", {"method": "percentile"}),
        ("minmax, --float-ends both", {"method": "minmax", "float_ends": "both"}),
        ("minmax, --float-ends classifier", {"method": "minmax", "float_ends": "classifier"}),
        ("minmax, --float-ends none (the fastest)", {"method": "minmax", "float_ends": "none"}),
        ("minmax, --per-tensor", {"method": "minmax", "per_channel": False}),
        ("minmax, --no-share-concat-scales", {"method": "minmax", "shared_concat_scales": False}),
        (
            "minmax, --float-ends none --no-share-concat-scales",
            {"method": "minmax", "float_ends": "none", "shared_concat_scales": False},
        ),
        ("auto, --target-sqnr 38.5", {"method": "auto", "target_sqnr": 38.5, "max_accuracy_drop": 0.5}),
    ]
    rows = []
    stock = None
    for label, options in runs:
        record = quantize(folder, calib=str(calib), eval=str(test), baseline=stock is None, **options).record
        stock = stock or record["baseline"]
        q = record["quality"]
        rows.append(
            {
                "recipe": label,
                "sqnr_db": q["sqnr_db"],
                "top1_agreement": q["top1_agreement"],
                "accuracy": q["accuracy"],
                "accuracy_drop_points": q["accuracy_drop_points"],
                "kept_float": len(record["recipe"]["kept_float"]),
                "bytes": record["bytes"],
            }
        )
    rows.insert(
        0,
        {
            "recipe": "ORT stock: quantize_static per-channel MinMax u8/s8",
            **{k: stock[k] for k in ("sqnr_db", "top1_agreement", "accuracy", "accuracy_drop_points")},
            "kept_float": 0,
            "bytes": None,
        },
    )
    rows[0]["accuracy_reference"] = q["accuracy_reference"]
    return rows


def latency_rows(work: Path, rounds: int) -> dict:
    folder = build(width=1.0, out=work / "models224").folder
    quantize(folder, mode="int8", baseline=False)  # synthetic calibration: fine for timing
    quantize(folder, mode="fp16")
    quantize(folder, mode="int8-dynamic")
    results = {}
    for batch in (1, 8):
        feed = np.random.default_rng(0).standard_normal((batch, 3, 224, 224), dtype=np.float32)
        runners = {}
        for name in ("model.onnx", "model.int8.onnx", "model.fp16.onnx", "model.int8-dynamic.onnx"):
            session = cpu_session(str(folder / name), threads=2, spinning=False)
            runners[name] = lambda s=session, f=feed: s.run(None, {"input": f})
        stats = interleaved(runners, rounds if batch == 1 else max(20, rounds // 8))
        base = stats["model.onnx"]["p50_ms"]
        results[str(batch)] = {name: {**s, "ratio_to_fp32": round(s["p50_ms"] / base, 3)} for name, s in stats.items()}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        quality = quality_rows(work)
        latency = latency_rows(work, args.rounds)
    print("\n| recipe | logits SQNR (dB) | top-1 agreement | accuracy | drop (points) | nodes kept float |")
    print("|---|---|---|---|---|---|")
    for row in quality:
        print(
            f"| {row['recipe']} | {row['sqnr_db']:.2f} | {row['top1_agreement']:.4f} | {row['accuracy']:.4f} | "
            f"{row['accuracy_drop_points']:.2f} | {row['kept_float']} |"
        )
    print("\n| artifact | batch | p50 ms | p90 ms | × fp32 |")
    print("|---|---|---|---|---|")
    for batch, stats in latency.items():
        for name, s in stats.items():
            print(f"| {name} | {batch} | {s['p50_ms']:.2f} | {s['p90_ms']:.2f} | {s['ratio_to_fp32']:.2f} |")
    if args.json:
        args.json.write_text(json.dumps({"quality": quality, "latency": latency}, indent=2))


if __name__ == "__main__":
    main()

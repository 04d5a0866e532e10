"""Ghostify a trained ResNet-18 on real data: accuracy kept, MACs halved, latency measured.

scikit-learn's digits (offline; train / calibration / test splits as in the tests) at 32².
1. Train the original ResNet-18 (torchvision's layout, ``tests/torchvision_like.py``,
   reached through the factory path as a user's model would be) with cross-entropy.
2. ``ghostify`` it at s=2, d=3 (the paper's defaults) and fine-tune by distillation from the
   original on the training split; held-out accuracy before and after, with the time taken.
3. Build both (parity gates), quantize both to int8 on the calibration split with the
   quality gates enforced on the test split, and time fp32 and int8 of both, interleaved,
   at batch 1: fewer MACs is not the same as faster (depthwise convolutions are memory-bound).

    python benchmarks/ghostify_digits.py [--epochs 8] [--teacher-epochs 10] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import digits  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from ghostexport.bench import bench  # noqa: E402
from ghostexport.data import load_dataset  # noqa: E402
from ghostexport.ghostify import ghostify  # noqa: E402
from ghostexport.host import cpu_description  # noqa: E402
from ghostexport.quantize import quantize  # noqa: E402
from ghostexport.records import preprocess_config  # noqa: E402

FACTORY = "tests.torchvision_like:resnet18"
RESOLUTION, SEED = 32, 0


def train_original(train: Path, test: Path, epochs: int, checkpoint: Path) -> tuple[float, float]:
    """Cross-entropy training of the original ResNet-18; (held-out accuracy, seconds)."""
    from safetensors.torch import save_file

    from tests.torchvision_like import resnet18

    shape = (3, RESOLUTION, RESOLUTION)
    data = load_dataset(str(train), preprocess_config(RESOLUTION), shape)
    held = load_dataset(str(test), preprocess_config(RESOLUTION), shape)
    torch.manual_seed(SEED)
    model = resnet18(num_classes=10)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    x, y = torch.from_numpy(data.inputs), torch.from_numpy(data.labels).long()
    started = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(epoch))
        for start in range(0, len(x), 64):
            index = order[start : start + 64]
            loss = F.cross_entropy(model(x[index]), y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    seconds = time.perf_counter() - started
    model.eval()
    with torch.no_grad():
        accuracy = float((model(torch.from_numpy(held.inputs)).argmax(1).numpy() == held.labels).mean())
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(checkpoint))
    return accuracy, seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=8, help="distillation epochs")
    parser.add_argument("--teacher-epochs", type=int, default=10)
    parser.add_argument("--bench-seconds", type=float, default=20.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    cpu, flags = cpu_description()
    print(f"{cpu} ({', '.join(flags)}), {torch.get_num_threads()} torch threads")
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        folders = {name: digits.write_folder(name, work / name) for name in ("train", "calib", "test")}
        checkpoint = work / "resnet18-digits.safetensors"
        teacher_accuracy, teacher_seconds = train_original(
            folders["train"], folders["test"], args.teacher_epochs, checkpoint
        )
        print(f"original ResNet-18: held-out accuracy {100 * teacher_accuracy:.2f}% ({teacher_seconds:.0f} s to train)")
        result = ghostify(
            model=FACTORY,
            checkpoint=checkpoint,
            num_classes=10,
            resolution=RESOLUTION,
            train=str(folders["train"]),
            eval=str(folders["test"]),
            epochs=args.epochs,
            seed=SEED,
            out=work / "models",
        )
        counts, training = result.counts, result.training
        print(
            f"ghosted (s=2, d=3): {counts['layers_replaced']} convolutions replaced; params {counts['params_before']:,} -> "
            f"{counts['params_after']:,} ({counts['params_after'] / counts['params_before']:.3f}×), MACs "
            f"{counts['macs_before']:,} -> {counts['macs_after']:,} ({counts['macs_after'] / counts['macs_before']:.3f}×)"
        )
        print(
            f"held-out accuracy: original {100 * training['before']['original']:.2f}%, ghosted warm start "
            f"{100 * training['before']['ghosted_warm_start']:.2f}%, after {len(training['epochs'])} epochs of distillation "
            f"{100 * training['after']:.2f}% (drop {training['drop_points']:+.2f} points) in {training['seconds']:.0f} s"
        )
        paths = {}
        for label, folder in (("original", result.original.folder), ("ghosted", result.ghosted.folder)):
            quantized = quantize(folder, calib=str(folders["calib"]), eval=str(folders["test"]))
            quality = quantized.record["quality"]
            print(
                f"{label} int8: accuracy {100 * quality['accuracy']:.2f}% (drop {quality['accuracy_drop_points']:+.2f} "
                f"points), SQNR {quality['sqnr_db']} dB, verdict {quality['verdict']}"
            )
            paths[f"{label} fp32"], paths[f"{label} int8"] = folder / "model.onnx", folder / "model.int8.onnx"
        timed = bench(tuple(paths.values()), seconds=args.bench_seconds)
        # rows come in the order the models were given
        by_label = dict(zip(paths, [row["p50_ms"] for row in timed.rows if row["batch"] == 1], strict=True))
        print(f"\n{'model':<16} {'p50 ms':>8}  (batch 1, interleaved, {args.bench_seconds:g} s)")
        for label, value in by_label.items():
            print(f"{label:<16} {value:>8.3f}")
        for kind in ("fp32", "int8"):
            print(f"ghosted / original, {kind}: {by_label[f'ghosted {kind}'] / by_label[f'original {kind}']:.3f}×")
        if args.json:
            args.json.write_text(
                json.dumps(
                    {"cpu": cpu, "counts": counts, "training": training, "latency_ms": by_label}, indent=2, default=str
                )
            )


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()

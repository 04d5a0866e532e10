"""Ghostify CNNs trained on real data: held-out accuracy kept, MACs cut, int8 and latency measured.

scikit-learn's digits (offline), 1,400 training / 397 held-out images (the fixed shuffle
of ``scripts/digits.py``), at 112² by default. For each architecture (torchvision's layouts
from ``tests/torchvision_like.py``, reached through the factory path as a user's model
would be; ResNet-18 and MobileNetV2, whose non-depthwise convolutions are replaced):

1. Train the original with cross-entropy.
2. ``ghostify`` it at s=2, d=3 (the paper's defaults), fine-tuned by distillation on the
   training images for ``--epochs`` (5 by default); held-out accuracy before and after, and
   ghostify's own verdict (FAIL past ``--max-drop``, 1 point). The goal: within 1 point
   of the original after at most 5 epochs.
3. Build both (parity gates), quantize both to int8 (calibrated on 200 training images, the
   quality gates enforced on the held-out ones) and time fp32 and int8 of both, interleaved,
   at batch 1: fewer MACs is not the same as faster (depthwise convolutions are memory-bound).

    python benchmarks/ghostify_digits.py [--archs resnet18,mobilenet_v2] [--resolution 112] [--epochs 5] [--save]

``--save`` keeps the run in ``benchmarks/results/ghostify_digits.json`` and renders the table
in docs/performance.md from it (``benchmarks/docs_tables.py``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts"), str(ROOT / "benchmarks")]

import digits  # noqa: E402
import docs_tables  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from ghostexport import quantize  # noqa: E402
from ghostexport.evidence.data import load_dataset  # noqa: E402
from ghostexport.folder.records import preprocess_config  # noqa: E402
from ghostexport.stages.bench import bench  # noqa: E402
from ghostexport.stages.ghostify import ghostify  # noqa: E402
from ghostexport.targets.host import cpu_description  # noqa: E402

SEED = 0
TRAIN, HELD_OUT, CALIBRATION = 1400, 397, 200


def write_splits(root: Path) -> dict[str, Path]:
    """1,400 training and 397 held-out digits in class sub-folders; calibration = 200 of the training images."""
    images, labels = digits.digits_images()
    parts = {"train": (0, TRAIN), "test": (TRAIN, TRAIN + HELD_OUT), "calib": (0, CALIBRATION)}
    for name, (start, stop) in parts.items():
        for index in range(start, stop):
            folder = root / name / str(labels[index])
            folder.mkdir(parents=True, exist_ok=True)
            images[index].save(folder / f"{index:04d}.png")
    return {name: root / name for name in parts}


def train_original(
    train: Path, test: Path, epochs: int, checkpoint: Path, arch: str = "resnet18", resolution: int = 32
) -> tuple[float, float]:
    """Cross-entropy training of the original ``arch``; (held-out accuracy, seconds)."""
    from safetensors.torch import save_file

    import tests.torchvision_like as zoo

    shape = (3, resolution, resolution)
    data = load_dataset(str(train), preprocess_config(resolution), shape)
    held = load_dataset(str(test), preprocess_config(resolution), shape)
    started = time.perf_counter()
    model = digits.train(getattr(zoo, arch)(num_classes=10), data.inputs, data.labels, epochs, seed=SEED)
    seconds = time.perf_counter() - started
    with torch.no_grad():
        logits = torch.cat([model(torch.from_numpy(held.inputs[i : i + 128])) for i in range(0, len(held), 128)])
    accuracy = float((logits.argmax(1).numpy() == held.labels).mean())
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(checkpoint))
    return accuracy, seconds


def one_architecture(arch: str, folders: dict[str, Path], work: Path, args) -> dict:
    """Train, ghostify, quantize and time one architecture; its figures."""
    from ghostexport.base.errors import GateFailed

    checkpoint = work / f"{arch}-digits.safetensors"
    teacher_accuracy, teacher_seconds = train_original(
        folders["train"], folders["test"], args.teacher_epochs, checkpoint, arch, args.resolution
    )
    print(f"\n== {arch}: original held-out accuracy {100 * teacher_accuracy:.2f}% ({teacher_seconds:.0f} s to train)")
    try:
        result = ghostify(
            model=f"tests.torchvision_like:{arch}",
            checkpoint=checkpoint,
            num_classes=10,
            resolution=args.resolution,
            train=str(folders["train"]),
            eval=str(folders["test"]),
            epochs=args.epochs,
            seed=SEED,
            out=work / "models",
        )
    except GateFailed as failure:
        result = failure.result
        print(f"ghostify FAILED its gate: {failure}")
    counts, training = result.counts, result.training
    print(
        f"ghosted (s=2, d=3): {counts['layers_replaced']} convolutions replaced; params {counts['params_before']:,} -> "
        f"{counts['params_after']:,} ({counts['params_after'] / counts['params_before']:.3f}×), MACs "
        f"{counts['macs_before']:,} -> {counts['macs_after']:,} ({counts['macs_after'] / counts['macs_before']:.3f}×)"
    )
    drop = training["drop_points"]
    print(
        f"held-out accuracy: original {100 * training['before']['original']:.2f}%, ghosted warm start "
        f"{100 * training['before']['ghosted_warm_start']:.2f}%, after {len(training['epochs'])} epochs of distillation "
        f"{100 * training['after']:.2f}% (drop {drop:+.2f} points) in {training['seconds']:.0f} s; "
        f"{'MET' if drop <= 1.0 else 'NOT MET'} (within 1 point wanted); ghostify's verdict {result.verdict.upper()}"
    )
    figures = {"teacher_seconds": teacher_seconds, "counts": counts, "training": training, "verdict": result.verdict}
    if result.ghosted is None:
        return figures
    paths, int8_accuracy = {}, {}
    for label, folder in (("original", result.original.folder), ("ghosted", result.ghosted.folder)):
        quantized = quantize(folder, calib=str(folders["calib"]), eval=str(folders["test"]))
        quality = quantized.record["quality"]
        int8_accuracy[label] = quality["accuracy"]
        print(
            f"{label} int8: accuracy {100 * quality['accuracy']:.2f}% (drop {quality['accuracy_drop_points']:+.2f} "
            f"points), SQNR {quality['sqnr_db']} dB, verdict {quality['verdict']}"
        )
        paths[f"{label} fp32"], paths[f"{label} int8"] = folder / "model.onnx", folder / "model.int8.onnx"
    timed = bench(tuple(paths.values()), seconds=args.bench_seconds)
    # rows come in the order the models were given
    by_label = dict(zip(paths, [row["p50_ms"] for row in timed.rows if row["batch"] == 1], strict=True))
    print(f"{'model':<16} {'p50 ms':>8}  (batch 1, interleaved, {args.bench_seconds:g} s)")
    for label, value in by_label.items():
        print(f"{label:<16} {value:>8.3f}")
    for kind in ("fp32", "int8"):
        ratio = by_label[f"ghosted {kind}"] / by_label[f"original {kind}"]
        print(f"ghosted {kind}: {ratio:.3f}× the latency of the original {kind}")
    return {**figures, "latency_ms": by_label, "int8_accuracy": int8_accuracy}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--archs", default="resnet18,mobilenet_v2", help="comma-separated, from tests/torchvision_like")
    parser.add_argument("--resolution", type=int, default=112)
    parser.add_argument("--epochs", type=int, default=5, help="distillation epochs")
    parser.add_argument("--teacher-epochs", type=int, default=6)
    parser.add_argument("--bench-seconds", type=float, default=10.0)
    parser.add_argument("--save", action="store_true", help="keep the run in benchmarks/results/ and render the docs")
    args = parser.parse_args()
    report = run(args)
    print("\n" + docs_tables.ghostify_digits_table(report))
    if args.save:
        print(f"saved {docs_tables.save('ghostify_digits', report)}")
        docs_tables.main([])


def run(args) -> dict:
    cpu, flags = cpu_description()
    print(f"{cpu} ({', '.join(flags)}), {torch.get_num_threads()} torch threads")
    print(f"digits at {args.resolution}²: {TRAIN} training / {HELD_OUT} held-out images")
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        folders = write_splits(work)
        for arch in args.archs.split(","):
            results[arch] = one_architecture(arch, folders, work, args)
    report = {"cpu": cpu, "resolution": args.resolution, "epochs": args.epochs, "archs": results}
    report |= {"train_images": TRAIN, "held_out_images": HELD_OUT}
    return report


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()

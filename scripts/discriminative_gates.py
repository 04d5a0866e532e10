"""Can the gates fail for the right reason? One table per run, on this machine.

For GhostNet v1, v2 and v3 at random init (0.5×, 64² by default), it measures how much the
logits depend on the input with and without the BatchNorm statistics pass, then runs
``ghostexport check WRONG.onnx --reference model.onnx`` (the real CLI) on copies that compute
on a negated, BGR or one-pixel-shifted input, and on the model itself. Expected: exit 1 for
every wrong input, exit 0 for the model.

    python scripts/discriminative_gates.py [--width 0.5] [--resolution 64]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from wrong_input import KINDS, wrong_input

from ghostexport.evidence.comparison import input_dependence
from ghostexport.folder.reference import prepare_model
from ghostexport.stages.build import build

VARIANTS = ("ghostnet", "ghostnetv2", "ghostnetv3")


def check_exit(candidate: Path, reference: Path) -> tuple[int, float | None]:
    completed = subprocess.run(
        [sys.executable, "-m", "ghostexport", "check", str(candidate), "--reference", str(reference), "--json", "-"],
        capture_output=True,
        text=True,
    )
    payload = json.loads(completed.stdout or "{}")
    results = payload.get("results") or [{}]
    return completed.returncode, results[0].get("centred_cosine")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--resolution", type=int, default=64)
    args = parser.parse_args()
    inputs = torch.from_numpy(
        np.random.default_rng(0).standard_normal((8, 3, args.resolution, args.resolution), dtype=np.float32)
    )
    print("| variant | input dependence without / with the BN pass | " + " | ".join(KINDS) + " | the model itself |")
    print("|---|---|" + "---|" * (len(KINDS) + 1))
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        for variant in VARIANTS:
            with torch.no_grad():
                plain = prepare_model(variant, args.width, 1000, 0)(inputs).numpy()
                calibrated = prepare_model(variant, args.width, 1000, 0, resolution=args.resolution)(inputs).numpy()
            folder = build(variant=variant, width=args.width, resolution=args.resolution, out=root / variant).folder
            cells = []
            for kind in KINDS:
                code, centred = check_exit(
                    wrong_input(folder / "model.onnx", root / f"{variant}-{kind}.onnx", kind), folder / "model.onnx"
                )
                cells.append(f"exit {code} (centred cosine {centred:.3f})")
            code, centred = check_exit(folder / "model.onnx", folder / "model.onnx")
            cells.append(f"exit {code} (centred cosine {centred:.6f})")
            print(
                f"| {variant} | {input_dependence(plain):.4f} / {input_dependence(calibrated):.4f} | "
                + " | ".join(cells)
                + " |"
            )


if __name__ == "__main__":
    main()

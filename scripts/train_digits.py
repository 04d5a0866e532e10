"""Train GhostNet 0.5× on scikit-learn's digits: the real model that quantization is judged on.

Random weights make quantization figures meaningless (every image gets the same answer),
so ghostexport's quality tests and README figures use this checkpoint instead. It trains
in a few minutes on 2 CPU cores and writes a safetensors state dict in the official/timm
layout, loaded by ``ghostexport build --checkpoint`` like any other.

    python scripts/train_digits.py --out tests/data/ghostnet_050-digits-r64.safetensors
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from digits import split

from ghostexport.evidence.preprocess import preprocess_image
from ghostexport.folder.records import preprocess_config
from ghostexport.model.arch import GhostNet, GhostNetConfig


def tensors(name: str, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = split(name)
    pre = preprocess_config(resolution)
    return torch.from_numpy(np.stack([preprocess_image(i, pre, resolution) for i in images])), torch.from_numpy(labels)


def shift(batch: torch.Tensor, generator: torch.Generator, pixels: int) -> torch.Tensor:
    """Random translation by up to ``pixels`` (pad with the background value, crop back)."""
    size = batch.shape[-1]
    padded = F.pad(batch, (pixels,) * 4, mode="replicate")
    dx, dy = torch.randint(0, 2 * pixels + 1, (2,), generator=generator).tolist()
    return padded[..., dy : dy + size, dx : dx + size]


def accuracy(model: torch.nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        predictions = torch.cat([model(inputs[i : i + 128]).argmax(1) for i in range(0, len(inputs), 128)])
    return float((predictions == labels).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("tests/data/ghostnet_050-digits-r64.safetensors"))
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    train_x, train_y = tensors("train", args.resolution)
    test_x, test_y = tensors("test", args.resolution)
    model = GhostNet(GhostNetConfig(args.width, num_classes=10))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    steps_per_epoch = (len(train_x) + 63) // 64
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 3e-3, total_steps=args.epochs * steps_per_epoch)
    started = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(train_x), generator=generator)
        for start in range(0, len(order), 64):
            index = order[start : start + 64]
            loss = F.cross_entropy(model(shift(train_x[index], generator, 6)), train_y[index], label_smoothing=0.1)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        if epoch % 5 == 4 or epoch == args.epochs - 1:
            print(
                f"epoch {epoch + 1:3d}  loss {loss.item():.3f}  test accuracy {accuracy(model, test_x, test_y):.4f}"
                f"  ({time.perf_counter() - started:.0f} s)",
                flush=True,
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(args.out))
    print(f"wrote {args.out}: test accuracy {accuracy(model, test_x, test_y):.4f} on {len(test_x)} held-out digits")


if __name__ == "__main__":
    main()

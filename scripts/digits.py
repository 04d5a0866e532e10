"""scikit-learn's digits as a small real image-classification set for ghostexport.

The 1,797 8×8 greyscale digits become RGB PIL images; a fixed shuffle splits them into
train / calibration / test so that quantization is calibrated and measured on images the
model never trained on, and measured on images it was not calibrated on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

SPLITS = {"train": (0, 1237), "calib": (1237, 1437), "test": (1437, 1797)}


def digits_images() -> tuple[list[Image.Image], np.ndarray]:
    """All images (fixed shuffled order) and their labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(0).permutation(len(digits.images))
    images = [
        Image.fromarray((digits.images[i] * (255.0 / 16.0)).round().astype(np.uint8), mode="L").convert("RGB")
        for i in order
    ]
    return images, digits.target[order].astype(np.int64)


def split(name: str) -> tuple[list[Image.Image], np.ndarray]:
    images, labels = digits_images()
    start, stop = SPLITS[name]
    return images[start:stop], labels[start:stop]


def write_folder(name: str, root: Path, limit: int | None = None) -> Path:
    """Write a split as ``root/<label>/<index>.png`` (class sub-folders carry the labels)."""
    images, labels = split(name)
    for index, (image, label) in enumerate(zip(images[:limit], labels[:limit], strict=False)):
        folder = root / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"{name}-{index:04d}.png")
    return root


def train(model, inputs: np.ndarray, labels: np.ndarray, epochs: int, lr: float = 2e-3, seed: int = 0):
    """Cross-entropy training with AdamW, batches of 64 in a seeded order per epoch; the model, in eval mode."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    x, y = torch.from_numpy(inputs), torch.from_numpy(labels).long()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed * 1000 + epoch))
        for start in range(0, len(x), 64):
            index = order[start : start + 64]
            loss = F.cross_entropy(model(x[index]), y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()

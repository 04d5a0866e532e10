"""The eval transform, from an artifact's recorded preprocessing, with Pillow and NumPy.

It reproduces timm's / torchvision's eval pipeline (resize the shorter side to
``resize`` with the recorded interpolation, centre crop ``resolution``, scale to [0, 1],
normalise), so calibration and evaluation images reach the ONNX model exactly as they
reached the PyTorch model, without importing torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import UsageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
_RESAMPLE = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
}


def preprocess_image(image: Image.Image, preprocess: dict, resolution: int) -> np.ndarray:
    """One PIL image -> a normalised float32 (3, resolution, resolution) array."""
    image = image.convert("RGB")
    width, height = image.size
    shorter = preprocess["resize"]
    size = (shorter, int(shorter * height / width)) if width <= height else (int(shorter * width / height), shorter)
    image = image.resize(size, _RESAMPLE[preprocess["interpolation"]])
    left = round((size[0] - resolution) / 2.0)
    top = round((size[1] - resolution) / 2.0)
    image = image.crop((left, top, left + resolution, top + resolution))
    array = np.asarray(image, dtype=np.float32) / 255.0
    mean = np.asarray(preprocess["mean"], dtype=np.float32)
    std = np.asarray(preprocess["std"], dtype=np.float32)
    return ((array - mean) / std).transpose(2, 0, 1).copy()


def load_image(path: Path, preprocess: dict, resolution: int) -> np.ndarray:
    """Read and preprocess one file; an unreadable image is exit 2 naming the file."""
    try:
        with Image.open(path) as image:
            image.load()
            return preprocess_image(image, preprocess, resolution)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UsageError(f"cannot read image {path} ({type(exc).__name__}): remove or replace the file") from exc


def find_images(folder: Path) -> list[Path]:
    """Image files under ``folder``, recursively, in a stable (sorted) order."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)

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

from ghostexport.base.errors import UsageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
_RESAMPLE = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
}


def to_rgb8(image: Image.Image) -> Image.Image:
    """8-bit RGB by the image's real range: Pillow's own convert("RGB") clips 16-bit and float images.

    16-bit greyscale (``I;16``, or ``I`` within 0–65535) is scaled by 255/65535; float (``F``)
    is read as [0, 1] when it lies there, as [0, 255] when it lies there, and refused
    otherwise (no range can be assumed).
    """
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        values = np.asarray(image, dtype=np.float64)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise ValueError(f"32-bit integer pixels outside 0–65535 ({values.min():g}–{values.max():g})")
        return Image.fromarray(np.round(values * (255.0 / 65535.0)).astype(np.uint8), mode="L").convert("RGB")
    if image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if not np.isfinite(values).all():
            raise ValueError("float pixels with NaN/Inf")
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        if low >= 0 and high <= 1:
            values = values * 255.0
        elif low < 0 or high > 255:
            raise ValueError(f"float pixels in {low:g}–{high:g}, neither [0, 1] nor [0, 255]")
        return Image.fromarray(np.round(values).astype(np.uint8), mode="L").convert("RGB")
    return image.convert("RGB")


def preprocess_image(image: Image.Image, preprocess: dict, resolution: int) -> np.ndarray:
    """One PIL image -> a normalised float32 (3, resolution, resolution) array."""
    image = to_rgb8(image)
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
    except Image.DecompressionBombError as exc:
        raise UsageError(f"{path} is too large to decode safely ({exc}): resize it first") from exc
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UsageError(f"cannot read image {path} ({type(exc).__name__}: {exc}): remove or replace the file") from exc


def find_images(folder: Path) -> list[Path]:
    """Image files under ``folder``, recursively, in a stable (sorted) order."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)

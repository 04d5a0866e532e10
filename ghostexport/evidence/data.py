"""Calibration and evaluation data: image folders, preprocessed ``.npy`` arrays, or synthetic.

Every source becomes the same thing, a float32 (N, 3, H, W) array in the model's
normalised input space plus optional integer labels, so the quantizers and the quality
figures never care where the images came from.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ghostexport.base.errors import UsageError
from ghostexport.evidence.preprocess import find_images, load_image

SYNTHETIC_PREFIX = "synthetic:"
DEFAULT_CALIBRATION = "synthetic:64"
SYNTHETIC_EVAL_SAMPLES = 32
#: Every HOLDOUT_EVERY-th item of a calibration set is held out for evaluation.
HOLDOUT_EVERY = 4
MIN_EVAL_SAMPLES = 8
#: The fewest real samples any source may hold: fewer cannot estimate an activation range
#: (calibration) or give a held-out figure where one image is less than 13 points.
MIN_SAMPLES = 8
#: Files that make a folder a model folder, not data: a build folder holds a plot or two, and
#: calibrating on those was the failure this guards against.
ARTIFACT_MARKERS = ("manifest.json", "*.onnx", "*.ort", "*.tflite", "*.pte", "*.safetensors", "*.pth", "*.pt")


@dataclass
class Dataset:
    inputs: np.ndarray
    labels: np.ndarray | None
    source: str
    synthetic: bool = False
    #: the folder or file it was read from (absolute), so later stages can tell the same data again
    origin: str | None = None

    def __len__(self) -> int:
        return len(self.inputs)

    def subset(self, mask: np.ndarray, source: str) -> Dataset:
        labels = self.labels[mask] if self.labels is not None else None
        return Dataset(self.inputs[mask], labels, source, self.synthetic, self.origin)

    def describe(self) -> dict:
        return {
            "source": self.source,
            "origin": self.origin,
            "samples": len(self),
            "labelled": self.labels is not None,
            "synthetic": self.synthetic,
        }


def load_dataset(
    spec: str,
    preprocess: dict | None,
    input_shape: tuple[int, int, int],
    seed: int = 0,
    on_image: Callable[[int, int], None] | None = None,
) -> Dataset:
    """Load ``DIR``, ``FILE.npy`` or ``synthetic:N`` for a model with ``input_shape`` (C, H, W)."""
    if spec.startswith(SYNTHETIC_PREFIX):
        return _synthetic(spec, preprocess, input_shape, seed)
    path = Path(spec)
    if path.is_dir():
        dataset = _image_folder(path, preprocess, input_shape, on_image)
    elif path.suffix == ".npy":
        dataset = _npy(path, input_shape)
    else:
        dataset = None
    if dataset is not None:
        if len(dataset) < MIN_SAMPLES:
            raise UsageError(
                f"data {spec} holds {len(dataset)} sample{'s' * (len(dataset) != 1)}, fewer than the {MIN_SAMPLES} "
                "needed to calibrate or measure anything: give more images"
            )
        dataset.origin = str(path.resolve())
        return dataset
    if not path.exists():
        raise UsageError(f"data {spec} does not exist: give an image folder, a .npy file or synthetic:N")
    raise UsageError(f"data {spec} is neither a folder, a .npy file nor synthetic:N")


def split_holdout(data: Dataset) -> tuple[Dataset, Dataset]:
    """(calibration, evaluation): every 4th item is held out, so neither sees the other's images."""
    index = np.arange(len(data))
    held = index % HOLDOUT_EVERY == HOLDOUT_EVERY - 1
    if held.sum() < MIN_EVAL_SAMPLES:
        raise UsageError(
            f"{data.source} has {len(data)} samples, too few to hold out {MIN_EVAL_SAMPLES} for evaluation: "
            "add --eval DIR|FILE.npy or more calibration images"
        )
    return data.subset(~held, f"{data.source} (3 of every 4)"), data.subset(
        held, f"{data.source} (every 4th, held out)"
    )


def _synthetic(spec: str, preprocess: dict | None, input_shape, seed: int) -> Dataset:
    try:
        count = int(spec[len(SYNTHETIC_PREFIX) :])
    except ValueError:
        count = 0
    if count < 1:
        raise UsageError(f"'{spec}' needs a positive sample count, e.g. synthetic:64")
    rng = np.random.default_rng(seed)
    # uniform pixels pushed through ImageNet normalisation: image-like ranges, no content
    pixels = rng.random((count, *input_shape), dtype=np.float32)
    pre = preprocess or {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    mean = np.asarray(pre["mean"], dtype=np.float32).reshape(-1, 1, 1)
    std = np.asarray(pre["std"], dtype=np.float32).reshape(-1, 1, 1)
    return Dataset(((pixels - mean) / std).astype(np.float32), None, spec, synthetic=True)


def _image_folder(folder: Path, preprocess, input_shape, on_image) -> Dataset:
    if preprocess is None:
        raise UsageError(
            f"images in {folder} need the model's preprocessing, which this .onnx does not record: "
            "use a ghostexport build folder, or pass preprocessed data as FILE.npy"
        )
    marker = _artifact_marker(folder)
    if marker is not None:
        raise UsageError(
            f"{folder} holds model artifacts ({marker}), not data: give a folder of images "
            "(class sub-folders for labels) or a .npy"
        )
    files = find_images(folder)
    if not files:
        raise UsageError(f"no images found in {folder} (looked for .jpg, .png, .bmp, .webp, … recursively)")
    resolution = input_shape[-1]
    arrays = []
    for index, file in enumerate(files):
        arrays.append(load_image(file, preprocess, resolution))
        if on_image:
            on_image(index + 1, len(files))
    return Dataset(np.stack(arrays), _folder_labels(folder, files), str(folder))


def _artifact_marker(folder: Path) -> str | None:
    """The first build artifact found in ``folder`` (to any depth), as a path relative to it."""
    for path in folder.rglob("*"):
        if any(fnmatch.fnmatchcase(path.name.lower(), pattern) for pattern in ARTIFACT_MARKERS) and path.is_file():
            return str(path.relative_to(folder))
    return None


def _folder_labels(folder: Path, files: list[Path]) -> np.ndarray | None:
    """Labels from class sub-folders: integer names as given, others by sorted order."""
    classes = [file.relative_to(folder).parts[0] if len(file.relative_to(folder).parts) > 1 else None for file in files]
    if any(name is None for name in classes):
        return None
    names = sorted(set(classes))
    if all(name.isdigit() for name in names):
        return np.asarray([int(name) for name in classes], dtype=np.int64)
    index = {name: i for i, name in enumerate(names)}
    return np.asarray([index[name] for name in classes], dtype=np.int64)


def read_npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from a ``.npy`` header, checked against the file's real size before any read.

    A header can claim terabytes; nothing is allocated until the bytes are known to be there.
    """
    try:
        with open(path, "rb", opener=lambda name, flags: os.open(name, flags | os.O_NONBLOCK)) as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise UsageError(f"{path} is not a regular file: give a .npy file saved with numpy.save")
            version = np.lib.format.read_magic(handle)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _fortran, dtype = read(handle, max_header_size=10_000)
            offset = handle.tell()
            size = os.fstat(handle.fileno()).st_size
    except UsageError:
        raise
    except (OSError, ValueError, EOFError, SyntaxError) as exc:
        raise UsageError(f"cannot read {path} as a NumPy array ({exc}): save it with numpy.save") from exc
    if dtype.hasobject:
        raise UsageError(f"{path} holds Python objects; only numeric arrays are read (allow_pickle is off)")
    expected = int(np.prod(shape, dtype=np.float64) * dtype.itemsize)
    if size - offset != expected:
        raise UsageError(
            f"{path} claims shape {list(shape)} {dtype} ({expected:,} bytes) but holds {size - offset:,}: "
            "it is truncated or not a .npy file"
        )
    return tuple(shape), dtype


def _npy(path: Path, input_shape) -> Dataset:
    shape, _dtype = read_npy_header(path)
    if len(shape) == 4 and shape[0] == 0:
        raise UsageError(f"{path} holds no images (shape {list(shape)}): save at least one")
    try:
        inputs = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise UsageError(f"cannot read {path} as a NumPy array ({exc}): save it with numpy.save") from exc
    if inputs.ndim != 4 or tuple(inputs.shape[1:]) != tuple(input_shape):
        raise UsageError(
            f"{path} has shape {list(inputs.shape)}; the model takes N×{'×'.join(map(str, input_shape))} "
            "preprocessed images (float32, normalised)"
        )
    if not np.issubdtype(inputs.dtype, np.floating) or not np.isfinite(inputs).all():
        raise UsageError(f"{path} must hold finite floating-point values (it has {inputs.dtype} or NaN/Inf)")
    labels = None
    for candidate in (path.with_name(path.stem + ".labels.npy"), path.with_name(path.stem + "_labels.npy")):
        if candidate.is_file():
            read_npy_header(candidate)
            labels = np.load(candidate, allow_pickle=False)
            if labels.shape != (len(inputs),) or not np.issubdtype(labels.dtype, np.integer):
                raise UsageError(
                    f"{candidate} must hold {len(inputs)} integer labels, it has {labels.dtype} {list(labels.shape)}"
                )
            break
    return Dataset(inputs.astype(np.float32), labels, str(path))

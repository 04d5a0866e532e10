"""Where a build lives: the folder's name from its model, the output root, and ``<out>/LATEST``.

Names are a function of what was built (variant, width, classes, resolution, batch; or a
user's model and its ghosting), so the same build always lands in the same folder and two
different builds never share one.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ghostexport.base.errors import UsageError
from ghostexport.base.files import atomic_write_text, read_bounded

LATEST_NAME = "LATEST"


MAX_LATEST_BYTES = 4096


def folder_name(variant: str, width: float, num_classes: int, resolution: int, batch: int | None) -> str:
    """``<variant>_<width*100:03d>`` plus ``-c<N>``, ``-r<R>``, ``-b<N>`` for non-defaults.

    A width that is not a multiple of 0.01 keeps its further digits after a ``p``
    (0.504 -> ``050p4``), so two different widths never share a folder.
    """
    hundredths = width * 100
    name = f"{variant}_{round(hundredths):03d}"
    if abs(hundredths - round(hundredths)) > 1e-9:
        digits = f"{hundredths:.6f}".rstrip("0").split(".")[1]
        name = f"{variant}_{int(hundredths):03d}p{digits}"
    return name + _suffixes(num_classes if num_classes != 1000 else None, resolution, batch)


def _suffixes(num_classes: int | None, resolution: int, batch: int | None) -> str:
    """``-c<N>``, ``-r<R>``, ``-b<N>`` for a class count, resolution and static batch that are not the defaults."""
    return (
        (f"-c{num_classes}" if num_classes is not None else "")
        + (f"-r{resolution}" if resolution != 224 else "")
        + (f"-b{batch}" if batch is not None else "")
    )


#: the manifest's variant for a user's model (``--model``), rebuilt from its recorded source
CUSTOM_VARIANT = "custom"


def model_slug(model: str) -> str:
    """The part of a model name that names its folders: the factory's function, or the registry name."""

    return re.sub(r"[^A-Za-z0-9_.-]+", "_", model.rpartition(":")[2] or model).strip("._-") or "model"


def custom_folder_name(model: str, ghostify: dict | None, num_classes: int | None, resolution: int, batch) -> str:
    """``<model>[-ghost-s<S>d<D>]`` plus the same suffixes as GhostNet's folders (a given class count always)."""
    ghosted = f"-ghost-s{ghostify['ratio']}d{ghostify['dw_size']}" if ghostify is not None else ""
    return model_slug(model) + ghosted + _suffixes(num_classes, resolution, batch)


@contextmanager
def output_root(out: Path) -> Iterator[Path]:
    """Create ``out`` if needed and prove it writable before any expensive work.

    If the block fails and this call created ``out``, the (empty) folder is removed again,
    so a failed command leaves no trace at all.
    """
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = tempfile.mkdtemp(dir=out, prefix=".ghostexport-probe-")
        os.rmdir(probe)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise UsageError(f"cannot write to --out {out} ({reason}): choose a writable folder with --out") from exc
    try:
        yield out
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                out.rmdir()  # only succeeds when empty
        raise


def write_latest(out: Path, name: str) -> None:
    from ghostexport.folder.commit import clean_dead_scratch

    clean_dead_scratch(out, f".{LATEST_NAME}.")  # temporaries of killed writers
    atomic_write_text(out / LATEST_NAME, name + "\n")


def read_latest(out: Path = Path("models")) -> Path:
    """The folder named by ``out/LATEST``; later commands use it when given no MODEL."""
    latest = out / LATEST_NAME
    try:
        name = read_bounded(latest, MAX_LATEST_BYTES, "LATEST file").decode("utf-8", errors="replace").strip()
    except FileNotFoundError as exc:
        raise UsageError(
            f"no MODEL given and {latest} does not exist: run ghostexport build first, or name a MODEL"
        ) from exc
    folder = out / name
    if not name or "/" in name or name in (".", "..") or not folder.is_dir():
        raise UsageError(f"{latest} names '{name}', which is not a folder: rebuild with ghostexport build")
    return folder

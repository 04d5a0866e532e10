"""The artifact folder: its name, its all-or-nothing creation, and ``<out>/LATEST``."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import UsageError
from .files import atomic_write_text

LATEST_NAME = "LATEST"


def folder_name(variant: str, width: float, num_classes: int, resolution: int, batch: int | None) -> str:
    """``<variant>_<width*100:03d>`` plus ``-c<N>``, ``-r<R>``, ``-b<N>`` for non-defaults."""
    name = f"{variant}_{round(width * 100):03d}"
    if num_classes != 1000:
        name += f"-c{num_classes}"
    if resolution != 224:
        name += f"-r{resolution}"
    if batch is not None:
        name += f"-b{batch}"
    return name


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


@contextmanager
def staged_folder(out: Path, name: str) -> Iterator[Path]:
    """Yield an empty hidden folder in ``out``; on success it replaces ``out/name`` whole.

    On any exception the staging folder is deleted and ``out/name`` (a previous good
    build, if any) is left untouched, so a failed build never leaves a file that looks good.
    """
    staging = Path(tempfile.mkdtemp(dir=out, prefix=f".{name}.staging-"))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    final = out / name
    retired = None
    if final.exists():
        retired = Path(tempfile.mkdtemp(dir=out, prefix=f".{name}.old-"))
        os.replace(final, retired / name)
    os.replace(staging, final)
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)


def write_latest(out: Path, name: str) -> None:
    atomic_write_text(out / LATEST_NAME, name + "\n")


def read_latest(out: Path = Path("models")) -> Path:
    """The folder named by ``out/LATEST``; later commands use it when given no MODEL."""
    latest = out / LATEST_NAME
    try:
        name = latest.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise UsageError(
            f"no MODEL given and {latest} does not exist: run ghostexport build first, or name a MODEL"
        ) from exc
    folder = out / name
    if not name or not folder.is_dir():
        raise UsageError(f"{latest} names '{name}', which is not a folder: rebuild with ghostexport build")
    return folder

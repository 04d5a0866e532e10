"""Crash-safe changes to an artifact folder: one lock, one atomic step, nothing left behind.

Every command that changes a folder goes through here, so that a kill at any system call
leaves either the old folder or the new one, both complete and consistent with their
manifest:

- ``replace_folder`` (build): the new folder is written into a hidden staging folder beside
  it and *exchanged* with the old one by a single ``renameat2(RENAME_EXCHANGE)``; the old
  contents, now in the staging path, are deleted afterwards.
- ``commit_files`` (quantize, convert): a staging copy of the folder (hard links to the
  unchanged files, never written through) receives the new artifact and the new manifest,
  and is exchanged with the folder in the same way, so an artifact and its record can
  never be seen apart.
- ``update_manifest`` (check, bench): the manifest alone, by an atomic rename.

All three run under an exclusive ``flock`` on ``<parent>/.<name>.lock``, so concurrent
commands on one folder serialise and never lose a record. Whoever holds the lock knows that
any staging folder or temporary file of that folder is a dead run's, and removes it. Where
the exchange is not available (not Linux, or a filesystem without it) the swap falls back
to two renames, and the note in ``docs`` says so.

``GHOSTEXPORT_FAULT_AT=N`` kills the process with SIGKILL at the N-th commit step (a rename,
an exchange, or a file written into staging): the hook the crash-safety tests use.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ghostexport.base.errors import UsageError
from ghostexport.base.files import atomic_write_bytes, current_umask, fault_point, follow_umask, write_error
from ghostexport.folder.manifest import MANIFEST_NAME, read_manifest, write_manifest

LOCK_WAIT_SECONDS = 600
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def lock_path(folder: Path) -> Path:
    return folder.parent / f".{folder.name}.lock"


@contextmanager
def folder_lock(folder: Path, say: Callable[[str, str], None] | None = None) -> Iterator[None]:
    """Hold the folder's exclusive lock; wait (saying for whom) while another command holds it."""
    path = lock_path(folder)
    try:
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~current_umask())
    except OSError as exc:
        raise UsageError(f"cannot lock {folder} ({exc.strerror}): is {folder.parent} writable?") from exc
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(handle, 64, 0).decode(errors="replace").strip() or "another process"
            if say:
                say("lock", f"{folder} is being changed by {holder}: waiting")
            _wait_for_lock(handle, folder, holder)
        os.ftruncate(handle, 0)
        os.pwrite(handle, f"ghostexport pid {os.getpid()}".encode(), 0)
        clean_stale(folder)
        yield
    finally:
        os.close(handle)  # releases the lock


def _wait_for_lock(handle: int, folder: Path, holder: str) -> None:
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while time.monotonic() < deadline:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            time.sleep(0.05)
    raise UsageError(f"{folder} has been locked by {holder} for {LOCK_WAIT_SECONDS} s: wait for it, or stop it")


def clean_stale(folder: Path) -> list[str]:
    """Remove what killed runs left for ``folder`` (call only while holding its lock)."""
    removed = []
    parent = folder.parent
    prefixes = (f".{folder.name}.staging-", f".{folder.name}.old-")
    candidates = [entry for entry in parent.iterdir() if entry.name.startswith(prefixes)]
    if folder.is_dir():
        candidates += [entry for entry in folder.iterdir() if entry.name.startswith(".") and entry.suffix == ".tmp"]
    for entry in candidates:
        _remove(entry)
        removed.append(entry.name)
    removed += clean_dead_scratch(parent, f".{folder.name}.scratch-")
    return removed


def clean_dead_scratch(parent: Path, prefix: str) -> list[str]:
    """Scratch folders are made outside the lock: remove only those whose process is gone."""
    removed = []
    for entry in parent.glob(prefix + "*"):
        try:
            pid = int(entry.name[len(prefix) :].split("-")[0])
        except ValueError:
            continue
        if not _alive(pid):
            _remove(entry)
            removed.append(entry.name)
    return removed


def _remove(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            entry.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def scratch_folder(beside: Path) -> Iterator[Path]:
    """A private working folder next to ``beside`` (same disk), removed on every exit path.

    Named with the pid, so the next run on the folder removes it if this process is killed.
    """
    try:
        scratch = Path(tempfile.mkdtemp(dir=beside.parent, prefix=f".{beside.name}.scratch-{os.getpid()}-"))
    except OSError as exc:
        raise write_error(beside.parent, exc) from exc
    try:
        yield scratch
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):  # the disk, not a bug
            raise write_error(scratch, exc) from exc
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def replace_folder(root: Path, name: str, write: Callable[[Path], None]) -> None:
    """Create or replace ``root/name`` whole with what ``write(staging)`` puts in a staging folder."""
    final = root / name
    with folder_lock(final):
        staging = _staging(final)
        try:
            write(staging)
            _swap(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        shutil.rmtree(staging, ignore_errors=True)  # the old contents, when there were any


def commit_files(
    folder: Path, files: dict[str, bytes], change: Callable[[dict], None], say: Callable[[str, str], None] | None = None
) -> dict:
    """Add or replace ``files`` in ``folder`` and apply ``change`` to its manifest, as one step.

    ``say`` hears that the lock is held by another command, while this one waits for it.
    """
    with folder_lock(folder, say):
        manifest = read_manifest(folder)
        change(manifest)
        staging = _staging(folder)
        try:
            for entry in folder.iterdir():
                if entry.name in files or entry.name == MANIFEST_NAME or entry.name.startswith("."):
                    continue
                if entry.is_file() and not entry.is_symlink():
                    _link_or_copy(entry, staging / entry.name)
            for name, data in files.items():
                atomic_write_bytes(staging / name, data)
            write_manifest(staging, manifest)
            _swap(staging, folder)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def update_manifest(folder: Path, change: Callable[[dict], None]) -> dict:
    """Read the manifest, apply ``change(manifest)``, write it back atomically — under the lock."""
    with folder_lock(folder):
        manifest = read_manifest(folder)
        change(manifest)
        write_manifest(folder, manifest)
    return manifest


def _staging(final: Path) -> Path:
    try:
        staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.staging-"))
    except OSError as exc:
        raise write_error(final, exc) from exc
    follow_umask(staging, directory=True)
    return staging


def _link_or_copy(source: Path, target: Path) -> None:
    """A hard link (instant, no space); a copy where the filesystem has none. Never written through."""
    try:
        os.link(source, target)
    except OSError:
        try:
            shutil.copy2(source, target)
        except OSError as exc:
            raise write_error(target, exc) from exc


def _swap(staging: Path, final: Path) -> None:
    """Make ``staging`` become ``final`` in one step; the old ``final`` (if any) ends up at ``staging``."""
    try:
        _swap_steps(staging, final)
    except OSError as exc:
        raise write_error(final, exc) from exc


def _swap_steps(staging: Path, final: Path) -> None:
    fault_point()
    if not final.exists():
        os.replace(staging, final)
        return
    if _exchange(staging, final):
        return
    # no atomic exchange here: two renames (a kill between them leaves the old folder at .old-*)
    retired = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.old-"))
    os.replace(final, retired / final.name)
    try:
        fault_point()
        os.replace(staging, final)
    except OSError:
        os.replace(retired / final.name, final)  # put the old folder back before reporting
        raise
    shutil.rmtree(retired, ignore_errors=True)
    staging.mkdir()  # callers remove the staging path afterwards


def _exchange(a: Path, b: Path) -> bool:
    """``renameat2(a, b, RENAME_EXCHANGE)``: True if done, False where the system cannot."""
    renameat2 = getattr(_libc(), "renameat2", None)
    if renameat2 is None:
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


_LIBC = None


def _libc():
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None, use_errno=True)
    return _LIBC


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is so that it unwinds like Ctrl-C."""


def install_termination_handler() -> None:
    """SIGTERM unwinds like Ctrl-C, so every ``finally`` (staging, scratch) runs before exit."""

    def terminate(signum, frame):
        raise Terminated(f"signal {signum}")

    signal.signal(signal.SIGTERM, terminate)


__all__ = [
    "clean_stale",
    "commit_files",
    "folder_lock",
    "install_termination_handler",
    "replace_folder",
    "scratch_folder",
    "update_manifest",
]

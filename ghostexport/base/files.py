"""File helpers shared by every stage: content hashes, atomic writes, the umask, bounded reads."""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import stat
import tempfile
from pathlib import Path

from ghostexport.base.errors import UsageError

_UMASK: int | None = None
_FAULT_STEPS = 0


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def current_umask() -> int:
    """The process umask (read once: reading it means setting it)."""
    global _UMASK
    if _UMASK is None:
        _UMASK = os.umask(0o022)
        os.umask(_UMASK)
    return _UMASK


def follow_umask(path: str | Path, directory: bool = False) -> None:
    """mkstemp/mkdtemp create 0600/0700: give the file the mode a plain open() or mkdir() would."""
    os.chmod(path, (0o777 if directory else 0o666) & ~current_umask())


def fault_point() -> None:
    """Fault injection for the crash-safety tests, at the N-th commit step.

    ``GHOSTEXPORT_FAULT_AT=N`` SIGKILLs this process there; ``GHOSTEXPORT_FAULT_AT=N:enospc``
    fails the step as a full disk would.
    """
    global _FAULT_STEPS
    wanted = os.environ.get("GHOSTEXPORT_FAULT_AT")
    if not wanted:
        return
    step, _, kind = wanted.partition(":")
    _FAULT_STEPS += 1
    if int(step) != _FAULT_STEPS:
        return
    if kind == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    os.kill(os.getpid(), signal.SIGKILL)


def write_error(path: str | Path, exc: OSError) -> UsageError:
    """A failed write (full disk, read-only or vanished folder) as a usage error naming the fix."""
    reason = exc.strerror or str(exc)
    return UsageError(f"cannot write {path} ({reason}): nothing was changed; free space there or choose another folder")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write via a temporary file in the same folder and rename: readers never see half a file.

    The temporary name (``.NAME.PID-*.tmp``) carries the writer's pid, so a later run can
    remove it once that process is gone (killed before the rename).
    """
    path = Path(path)
    try:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp")
    except OSError as exc:
        raise write_error(path, exc) from exc
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        follow_umask(temporary)
        fault_point()
        os.replace(temporary, path)
    except OSError as exc:
        raise write_error(path, exc) from exc
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def read_bounded(path: str | Path, limit: int, what: str) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; anything else is a usage error.

    A device, FIFO or socket (e.g. a manifest symlinked to /dev/zero) would hang or grow
    without end, so only regular files are read, and never past the limit.
    """
    path = Path(path)
    try:
        with open(path, "rb", opener=lambda name, flags: os.open(name, flags | os.O_NONBLOCK)) as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise UsageError(f"{path} is not a regular file ({what}): replace it with the real file")
            if info.st_size > limit:
                raise UsageError(
                    f"{path} is {info.st_size:,} bytes, more than a {what} can be ({limit:,}): is it the right file?"
                )
            data = handle.read(limit + 1)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise UsageError(f"cannot read {path} ({exc.strerror or exc}): check the path and its permissions") from exc
    if len(data) > limit:
        raise UsageError(f"{path} grew past {limit:,} bytes while being read ({what}): is it the right file?")
    return data

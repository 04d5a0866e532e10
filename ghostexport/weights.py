"""Named pretrained weights and URLs: downloaded once into a cache, then used as a checkpoint.

The download is verified against a known sha256 when one is given (registry entries, or a
``#sha256=<hex>`` suffix on a URL) and written atomically, so an interrupted download
never leaves a file that the next run would trust.
"""

from __future__ import annotations

import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .errors import UsageError
from .files import sha256_file


@dataclass(frozen=True)
class WeightSpec:
    url: str
    variant: str
    width: float
    num_classes: int = 1000
    sha256: str | None = None


#: Published ImageNet-1k checkpoints whose key layout our models load strictly.
REGISTRY: dict[str, WeightSpec] = {
    "ghostnet_100.in1k": WeightSpec(
        url="https://github.com/huggingface/pytorch-image-models/releases/download/"
        "v0.1-weights/ghostnet_1x-f97d70db.pth",
        variant="ghostnet",
        width=1.0,
    ),
}


def cache_dir() -> Path:
    """``$GHOSTEXPORT_CACHE``, else ``$XDG_CACHE_HOME/ghostexport``, else ``~/.cache/ghostexport``."""
    if os.environ.get("GHOSTEXPORT_CACHE"):
        return Path(os.environ["GHOSTEXPORT_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ghostexport"


def weights_source(name_or_url: str) -> tuple[str, str | None, WeightSpec | None]:
    """``(url, expected sha256 or None, registry entry or None)`` for a name or URL; no I/O."""
    spec = REGISTRY.get(name_or_url)
    if spec is not None:
        return spec.url, spec.sha256, spec
    if "://" in name_or_url:
        url, _, fragment = name_or_url.partition("#")
        return url, (fragment.removeprefix("sha256=") if fragment.startswith("sha256=") else None), None
    raise UsageError(
        f"unknown weights '{name_or_url}': use one of {', '.join(sorted(REGISTRY))}, "
        "a URL, or --checkpoint PATH for a local file"
    )


def download(url: str, sha256: str | None = None, timeout: float = 60.0) -> Path:
    """Fetch ``url`` into the cache (once); verify ``sha256`` when given."""
    filename = Path(urlsplit(url).path).name or "weights.pth"
    target = cache_dir() / "weights" / filename
    if target.is_file() and (sha256 is None or sha256_file(target) == sha256):
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"cannot create the weights cache {target.parent} ({exc.strerror}): set GHOSTEXPORT_CACHE to a writable folder"
        ) from exc
    handle, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{filename}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            while block := response.read(1 << 20):
                out.write(block)
        if sha256 is not None and (actual := sha256_file(Path(partial))) != sha256:
            raise UsageError(
                f"download of {url} has sha256 {actual}, expected {sha256}: the file changed or was corrupted in transit"
            )
        os.replace(partial, target)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise UsageError(
            f"could not download {url} ({reason}): download it yourself and pass --checkpoint PATH"
        ) from exc
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return target

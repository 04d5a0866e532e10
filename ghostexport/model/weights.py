"""Named pretrained weights and URLs: downloaded once into a cache, then used as a checkpoint.

The download is verified against a known sha256 when one is given (registry entries, or a
``#sha256=<hex>`` suffix on a URL) and written atomically, so an interrupted download
never leaves a file that the next run would trust.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ghostexport.base.errors import UsageError
from ghostexport.base.files import sha256_file


@dataclass(frozen=True)
class WeightSpec:
    url: str
    variant: str
    width: float
    num_classes: int = 1000
    top1: float | None = None  # ImageNet-1k top-1 (%) as reported by the source
    sha256: str | None = None  # verified after download when known


def _timm_hub(name: str) -> str:
    return f"https://huggingface.co/timm/{name}/resolve/main/model.safetensors"


#: Published ImageNet-1k checkpoints whose key layout our models load strictly. No sha256 is
#: listed: none could be verified from here (no access to the hosts); the downloaded file's
#: sha256 is recorded in the manifest, and a URL given as ``URL#sha256=<hex>`` is verified.
REGISTRY: dict[str, WeightSpec] = {
    "ghostnet_100.in1k": WeightSpec(_timm_hub("ghostnet_100.in1k"), "ghostnet", 1.0, top1=73.97),
    "ghostnetv2_100.in1k": WeightSpec(_timm_hub("ghostnetv2_100.in1k"), "ghostnetv2", 1.0, top1=75.17),
    "ghostnetv2_130.in1k": WeightSpec(_timm_hub("ghostnetv2_130.in1k"), "ghostnetv2", 1.3, top1=76.76),
    "ghostnetv2_160.in1k": WeightSpec(_timm_hub("ghostnetv2_160.in1k"), "ghostnetv2", 1.6, top1=77.83),
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


#: far above any GhostNet checkpoint (1.0×: 21 MB), far below a disk
MAX_DOWNLOAD_BYTES = 2 * 1024**3


def download(url: str, sha256: str | None = None, timeout: float = 60.0) -> Path:
    """Fetch ``url`` into the cache (once); verify ``sha256`` when given."""
    filename = Path(urlsplit(url).path).name or "weights.pth"
    # different URLs may share a file name (every hub model is model.safetensors)
    target = cache_dir() / "weights" / f"{hashlib.sha256(url.encode()).hexdigest()[:12]}-{filename}"
    if target.is_file() and (sha256 is None or sha256_file(target) == sha256):
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"cannot create the weights cache {target.parent} ({exc.strerror}): set GHOSTEXPORT_CACHE to a writable folder"
        ) from exc
    if urlsplit(url).scheme == "file":
        local = Path(urllib.request.url2pathname(urlsplit(url).path))
        if local.exists() and not local.is_file():
            raise UsageError(f"{url} is not a regular file (a device or FIFO would never end): give a file")
    handle, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{filename}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            received = 0
            while block := response.read(1 << 20):
                received += len(block)
                if received > MAX_DOWNLOAD_BYTES:
                    raise UsageError(
                        f"{url} sends more than {MAX_DOWNLOAD_BYTES:,} bytes, more than any GhostNet checkpoint: "
                        "is it the right URL?"
                    )
                out.write(block)
        if sha256 is not None and (actual := sha256_file(Path(partial))) != sha256:
            raise UsageError(
                f"download of {url} has sha256 {actual}, expected {sha256}: the file changed or was corrupted in transit"
            )
        os.replace(partial, target)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise UsageError(
            f"could not download {url} ({reason}): fetch it yourself and put it at {target}, "
            "or pass it with --checkpoint PATH"
        ) from exc
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return target

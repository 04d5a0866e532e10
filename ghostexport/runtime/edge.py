"""One way to run any edge artifact: a batch-1 call with a thread count, for bench and ``bench --select``."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from pathlib import Path

import numpy as np


def batch1_call(runtime: str, path: Path, resolution: int, threads: int | None) -> Callable[[], object]:
    """One inference of the artifact at ``path`` on a fixed seeded image, with ``threads`` threads."""
    run = import_module(f".{runtime}_format", __package__).runner(Path(path).read_bytes(), threads)
    feed = np.random.default_rng(1).standard_normal((1, 3, resolution, resolution), dtype=np.float32)
    return lambda: run(feed)


def thread_counts(runtime: str, cores: int) -> list[int]:
    """The thread counts one process can time a runtime with: LiteRT's are per interpreter,
    ExecuTorch's XNNPACK pool is one per process (resizing it invalidates loaded programs), so all cores only."""
    return [cores] if runtime == "executorch" else sorted({1, cores})

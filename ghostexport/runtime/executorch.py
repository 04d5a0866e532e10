"""Running an ExecuTorch (.pte) artifact, and the one XNNPACK thread pool every program in a process shares."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def runner(data: bytes, threads: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """Logits for N×3×H×W float32 images, one image per call (the program is exported at batch 1).

    ``threads`` sizes ExecuTorch's XNNPACK thread pool, which is one per process and shared
    by every program loaded in it (see ``use_threads``).
    """
    import torch
    from executorch.runtime import Runtime

    if threads:
        use_threads(threads)
    generation = _POOL["generation"]
    program = Runtime.get().load_program(data)  # reads from ``data`` without copying it: keep both alive
    method = program.load_method("forward")

    def run(images: np.ndarray) -> np.ndarray:
        assert program is not None and data is not None  # held by this closure for as long as it runs
        if _POOL["generation"] != generation:
            raise RuntimeError(
                "this ExecuTorch program was loaded before the XNNPACK thread pool was resized; load it again"
            )
        return np.concatenate(
            [method.execute([torch.from_numpy(np.ascontiguousarray(image[None]))])[0].numpy() for image in images]
        )

    return run


#: the process's XNNPACK pool: its size as last set here, and how many times it was replaced
_POOL: dict = {"threads": None, "generation": 0}


def use_threads(threads: int) -> None:
    """Size the process's one XNNPACK thread pool for the programs loaded from now on.

    Resizing replaces the pool, and a program loaded before it may crash the process when it
    runs next (measured: a segfault in ``execute``), so a resize happens only when the size
    changes, and the runners of programs loaded earlier refuse to run afterwards.
    """
    if _POOL["threads"] == threads:
        return
    from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool

    _unsafe_reset_threadpool(threads)
    _POOL.update(threads=threads, generation=_POOL["generation"] + 1)

"""Running an OpenVINO IR (``model.xml`` + ``model.bin``) on the CPU plugin, at a stated inference precision.

OpenVINO's CPU plugin does not run an fp32 IR in fp32 everywhere: its
``INFERENCE_PRECISION_HINT`` defaults to bf16 on CPUs with bf16 instructions (AVX512_BF16,
AMX) and to f32 elsewhere (f16 on some ARM CPUs). The hint is a compile-time setting, not part
of the IR, so every figure ghostexport takes of an IR names the precision it ran at, and the
artifact's record holds the setting it was gated with (``auto``: the CPU's default, or a
forced precision) so that later runs apply the same one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np

#: Why ghostexport's OpenVINO runs leave threads unpinned: the latency hint pins each compiled
#: model's threads to cores, so two models in one process (or a busy neighbour on the pinned core)
#: contend where the OS would have moved them — measured on a 2-core EPYC, one IR at 1 thread
#: beside the same IR at 2 threads: 0.64 / 0.76 ms pinned, 0.40 / 0.49 ms unpinned
UNPINNED = "threads not pinned to cores (ENABLE_CPU_PINNING off)"
#: OpenVINO's element types by the names ghostexport records
_TYPE_NAMES = {"f32": "f32", "float32": "f32", "bf16": "bf16", "bfloat16": "bf16", "f16": "f16", "float16": "f16"}


@functools.lru_cache(maxsize=1)
def core():
    """One OpenVINO Core per process (it loads the plugins once)."""
    import openvino as ov

    return ov.Core()


def version() -> str:
    import openvino as ov

    return ov.__version__.split("-")[0]


def weights_file(xml: Path | str) -> Path:
    """The IR's weights: ``model.int8.xml`` → ``model.int8.bin``."""
    return Path(xml).with_suffix(".bin")


def compile_ir(
    xml,
    threads: int | None = None,
    precision: str = "auto",
    hint: str = "LATENCY",
    streams: int | None = None,
):
    """The compiled model of an IR file or an in-memory ``openvino.Model``.

    ``threads`` None or 0 and ``precision`` auto leave OpenVINO's defaults.

    With a thread count (how ghostexport runs an artifact), the threads are not pinned to cores (``UNPINNED``).
    """
    config: dict[str, object] = {"PERFORMANCE_HINT": hint}
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
        config["ENABLE_CPU_PINNING"] = False
    if streams:
        config["NUM_STREAMS"] = int(streams)
    if precision != "auto":
        config["INFERENCE_PRECISION_HINT"] = precision
    source = str(xml) if isinstance(xml, (str, Path)) else xml
    return core().compile_model(source, "CPU", config)


def resolved_precision(compiled) -> str:
    """f32, bf16 or f16: what the compiled model computes in."""
    hint = compiled.get_property("INFERENCE_PRECISION_HINT")
    name = getattr(hint, "type_name", None) or getattr(hint, "get_type_name", lambda: str(hint))()
    return _TYPE_NAMES.get(str(name).lower(), str(name).lower())


def default_precision() -> tuple[str, str]:
    """(precision, why) for this CPU when nothing is forced: OpenVINO's own default, and the CPU flag behind it."""
    hint = core().get_property("CPU", "INFERENCE_PRECISION_HINT")
    precision = _TYPE_NAMES.get(str(getattr(hint, "type_name", hint)).lower(), str(hint).lower())
    capabilities = set(core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    why = {
        "bf16": "OpenVINO's CPU default here: the CPU has bf16 instructions ("
        + ", ".join(sorted(capabilities & {"BF16", "FP16", "INT8"}))
        + " among its optimisation capabilities)",
        "f16": "OpenVINO's CPU default here: the CPU computes f16 natively",
    }.get(precision, "OpenVINO's CPU default here: no bf16/f16 instructions")
    return precision, why


def settings_record(compiled) -> dict:
    """The settings a compiled model runs with, as OpenVINO reports them (not as requested)."""
    return {
        "inference_precision": resolved_precision(compiled),
        "performance_hint": str(compiled.get_property("PERFORMANCE_HINT")).split(".")[-1],
        "threads": int(compiled.get_property("INFERENCE_NUM_THREADS")),
        "streams": int(compiled.get_property("NUM_STREAMS")),
        "cpu_pinning": bool(compiled.get_property("ENABLE_CPU_PINNING")),
    }


def runner(xml, threads: int | None = None, precision: str = "auto") -> Callable[[np.ndarray], np.ndarray]:
    """Logits (float32) for N×3×H×W float32 images, one image per request as the other runtimes run them.

    ``xml``: an IR file or an in-memory ``openvino.Model`` (as ``compile_ir``).
    """
    compiled = compile_ir(xml, threads, precision)
    request = compiled.create_infer_request()

    def run(images: np.ndarray) -> np.ndarray:
        rows = []
        for image in np.asarray(images, dtype=np.float32):
            request.infer({0: np.ascontiguousarray(image[None])}, share_inputs=True, share_outputs=True)
            rows.append(np.array(request.get_output_tensor(0).data, dtype=np.float32, copy=True))
        return np.concatenate(rows)

    return run


def op_counts(xml: Path | str) -> dict[str, int]:
    """The IR's operations by type: what a user reads to see FakeQuantize (int8) placed, and how many convolutions."""
    counts: dict[str, int] = {}
    for op in core().read_model(str(xml)).get_ordered_ops():
        kind = op.get_type_name()
        if kind in ("Parameter", "Result", "Constant"):
            continue
        counts[kind] = counts.get(kind, 0) + 1
    return dict(sorted(counts.items()))

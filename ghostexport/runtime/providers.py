"""Execution providers: ask for one, get exactly that one, or stop and say what is missing.

ONNX Runtime silently falls back to the CPU when the CUDA or TensorRT provider cannot load
(missing CUDA/cuDNN libraries, no GPU) — a benchmark or parity check would then measure
the wrong device. Every session here is checked with ``get_providers()``; a fallback is
exit 2 unless ``allow_fallback`` is given, and then it is reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ghostexport.base.choices import CUDNN_ALGO_SEARCH, PROVIDERS
from ghostexport.base.errors import UsageError
from ghostexport.runtime.ort import import_onnxruntime, installed_ort_distributions

QDQ_ON_CUDA_WARNING = (
    "int8 QDQ graphs have no int8 conv kernels in the CUDA provider: their quantized nodes run on CPU kernels "
    "with copies between devices, so int8 is not a speed-up there (use fp16, or TensorRT for int8)"
)


@dataclass
class ProviderOptions:
    provider: str = "cpu"
    allow_fallback: bool = False
    threads: int | None = None
    spinning: bool = True
    cudnn_conv_algo_search: str = "HEURISTIC"
    trt_fp16: bool = False
    trt_engine_cache: str | None = None
    device_id: int = 0


@dataclass
class SessionInfo:
    session: Any
    requested: str
    providers: list[str]
    fallback: bool
    notes: list[str] = field(default_factory=list)

    @property
    def device(self) -> str:
        return "cuda" if self.providers[0] in (PROVIDERS["cuda"], PROVIDERS["tensorrt"]) else "cpu"

    @property
    def label(self) -> str:
        """Where it ran, in words: ``cuda``, or ``CPU (fallback from cuda)`` when it fell back."""
        return provider_label(self.requested, self.fallback)


def provider_label(requested: str, fallback: bool) -> str:
    """The name every header and report shows: never the requested provider alone after a fallback."""
    return f"CPU (fallback from {requested})" if fallback else requested


def _missing_provider_message(provider: str, available: list[str]) -> str:
    wheels = installed_ort_distributions()
    if provider == "cpu":
        return f"the CPU provider is missing from this ONNX Runtime ({available}): reinstall with pip install 'ghostexport[cpu]'"
    name = PROVIDERS[provider]
    if "onnxruntime-gpu" not in wheels:
        return (
            f"--provider {provider}: {name} is not in this ONNX Runtime build (installed: {', '.join(wheels) or 'none'}; "
            f"providers: {', '.join(available)}): pip uninstall -y onnxruntime && pip install 'ghostexport[gpu]'"
        )
    return (
        f"--provider {provider}: onnxruntime-gpu is installed but does not offer {name} (providers: {', '.join(available)}): "
        "check that its version matches your CUDA/cuDNN (and TensorRT) libraries"
    )


def provider_chain(options: ProviderOptions) -> list[Any]:
    """The providers list for InferenceSession, the requested one first, with its options."""
    if options.provider == "cpu":
        return ["CPUExecutionProvider"]
    cuda = (
        "CUDAExecutionProvider",
        {"device_id": options.device_id, "cudnn_conv_algo_search": options.cudnn_conv_algo_search},
    )
    if options.provider == "cuda":
        return [cuda, "CPUExecutionProvider"]
    trt: dict[str, Any] = {"device_id": options.device_id, "trt_fp16_enable": options.trt_fp16}
    if options.trt_engine_cache:
        trt.update(trt_engine_cache_enable=True, trt_engine_cache_path=options.trt_engine_cache)
    return [("TensorrtExecutionProvider", trt), cuda, "CPUExecutionProvider"]


def require_provider(provider: str, allow_fallback: bool) -> None:
    """Refuse an unknown or absent provider before any work (a pipeline must not build first)."""
    if provider not in PROVIDERS:
        raise UsageError(f"unknown --provider {provider}: use one of {', '.join(PROVIDERS)}")
    available = list(import_onnxruntime().get_available_providers())
    if PROVIDERS[provider] not in available and not allow_fallback:
        raise UsageError(_missing_provider_message(provider, available))


#: graph optimisation levels a session may be asked for (bench --select tries both)
OPTIMIZATION_LEVELS = {"all": "ORT_ENABLE_ALL", "extended": "ORT_ENABLE_EXTENDED"}


def make_session(model: str | bytes, options: ProviderOptions, optimization: str = "all") -> SessionInfo:
    """An InferenceSession on exactly the requested provider (or an explicit, reported fallback)."""
    if options.provider not in PROVIDERS:
        raise UsageError(f"unknown --provider {options.provider}: use one of {', '.join(PROVIDERS)}")
    if options.cudnn_conv_algo_search not in CUDNN_ALGO_SEARCH:
        raise UsageError(f"--cudnn-algo {options.cudnn_conv_algo_search}: use one of {', '.join(CUDNN_ALGO_SEARCH)}")
    ort = import_onnxruntime()
    wanted = PROVIDERS[options.provider]
    available = list(ort.get_available_providers())
    notes: list[str] = []
    if wanted not in available:
        message = _missing_provider_message(options.provider, available)
        if not options.allow_fallback:
            raise UsageError(message)
        notes.append("FALLBACK to CPU (--allow-fallback): " + message)
        chain: list[Any] = ["CPUExecutionProvider"]
    else:
        chain = provider_chain(options)
    session_options = ort.SessionOptions()
    session_options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, OPTIMIZATION_LEVELS[optimization])
    session_options.log_severity_level = 3
    if options.threads:
        session_options.intra_op_num_threads = options.threads
    if not options.spinning:
        session_options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(model, session_options, providers=chain)
    except Exception as exc:  # ORT raises its own Fail/InvalidGraph/NotImplemented types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        described = model if isinstance(model, str) else "the model"
        raise UsageError(f"ONNX Runtime cannot load {described} ({first[:300]}): re-export or rebuild it") from exc
    used = list(session.get_providers())
    fallback = used[0] != wanted
    if fallback and wanted in available:
        message = (
            f"--provider {options.provider}: ONNX Runtime fell back to {used[0]} — the {wanted} could not start "
            "(CUDA/cuDNN libraries not found, or no GPU visible: check nvidia-smi and LD_LIBRARY_PATH)"
        )
        if not options.allow_fallback:
            raise UsageError(message)
        notes.append("FALLBACK (--allow-fallback): " + message)
    return SessionInfo(session, options.provider, used, fallback, notes)


def cpu_session(model: bytes | str, threads: int | None = None, spinning: bool = True) -> Any:
    """An InferenceSession pinned to the CPU provider, with full graph optimisation.

    Full optimisation is what deployments run, so parity is measured on the graph ORT
    actually executes (fusions included), not on a debug configuration. Turn ``spinning``
    off when several sessions are timed side by side: idle threads of one session
    spinning on the cores would slow down the others.
    """
    return make_session(model, ProviderOptions("cpu", threads=threads, spinning=spinning)).session

"""Deployment targets: what an artifact is built and quantized for, when that is not this machine.

An export toolchain builds on one machine (a laptop, a CI runner) and ships to another. A
target profile fixes the choices that depend on where the model runs, each with its reason
(the table in docs/design.md, "Targets"):

- the int8 types and ``reduce_range`` (``types_for_cpu`` fed the target's CPU class, so
  the rule lives in one place). Types follow ONNX Runtime's own guidance for its CPU
  kernels (quantize_static's docstring) and what was measured on a VNNI machine: u8
  activations / s8 weights run at 0.71–0.81× of fp32 there, s8/s8 at 2.0× (slower than
  fp32), so the activation type is a performance decision. Without VNNI, x86 kernels can
  saturate on u8×s8 products, which ``reduce_range`` (7-bit weights) avoids: a pair of
  u8×s8 products can overflow the 16-bit intermediate sums of the AVX2 kernels,
- the channel alignment (ORT's x86 NCHWc kernels work in blocks of 16 floats on AVX-512
  and 8 on AVX2; ARM and GPU builds gain nothing from padding),
- the Concat split (exact; faster on ORT's x86 NCHWc path, where it was measured),
- per-channel weights and the float ends (the same everywhere today; recorded so that a
  profile can change them without a new flag).

``host`` is this machine: its int8 types come from its CPU, and its layout is the one
measured fastest on its kind of CPU (``HOST_LAYOUTS``): on x86, channels aligned to 8 and
the Concat split — measured at 0.744× of the naive export on an AVX2-only EPYC (0.853× aligned
to 16, 0.84× as built) and 0.840× on an AVX-512/VNNI EPYC (0.923× aligned to 16, 0.989× as
built); on ARM the graph as built. Naming a class applies its whole profile. A flag given
explicitly wins over the profile, and the manifest records both.
"""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass, replace

from ghostexport.base.errors import UsageError


@dataclass(frozen=True)
class TargetProfile:
    name: str
    runs_on: str  # the runtime and hardware, in words
    cpu_flags: tuple[str, ...]  # the CPU class fed to the int8 type rule ("host": this machine's)
    machine: str | None  # platform.machine() of that class; None: this machine
    align_channels: int  # 0: none
    split_concat_convs: bool
    per_channel: bool = True
    float_ends: str = "stem"
    #: why the layout choices (the int8 types carry their own reason from the type rule)
    layout_reason: str = ""
    static_batch: int | None = None  # None: dynamic
    op_forms: str = "as exported"  # or "mobile" (graph.mobile_forms)

    def as_dict(self) -> dict:
        return asdict(self)


TARGETS: dict[str, TargetProfile] = {
    profile.name: profile
    for profile in (
        TargetProfile(
            "host",
            "this machine (ONNX Runtime, CPU)",
            (),
            None,
            0,
            False,
            layout_reason="resolved per CPU class (HOST_LAYOUTS); int8 types from this CPU",
        ),
        TargetProfile(
            "x86-avx2",
            "x86-64 with AVX2, no VNNI (ONNX Runtime, CPU)",
            ("avx2", "fma", "f16c"),
            "x86_64",
            8,
            True,
            layout_reason="NCHWc blocks of 8 floats on AVX2; the split measured 0.744× of the naive export vs 0.84× unsplit on an AVX2 EPYC",
        ),
        TargetProfile(
            "x86-avx512",
            "x86-64 with AVX-512, no VNNI (ONNX Runtime, CPU)",
            ("avx2", "fma", "avx512f", "avx512bw"),
            "x86_64",
            16,
            True,
            layout_reason="NCHWc blocks of 16 floats on AVX-512; the split is exact and faster on NCHWc",
        ),
        TargetProfile(
            "x86-vnni",
            "x86-64 with AVX-512 VNNI or AVX-VNNI (ONNX Runtime, CPU)",
            ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni"),
            "x86_64",
            16,
            True,
            layout_reason="NCHWc blocks of 16 floats; the split is exact and faster on NCHWc",
        ),
        TargetProfile(
            "arm64",
            "64-bit ARM with NEON dot product (ONNX Runtime, CPU; Raspberry Pi 4/5, Graviton, Jetson CPU)",
            ("asimd", "asimddp"),
            "aarch64",
            0,
            False,
            layout_reason="ORT's ARM kernels have no NCHWc path: padding only adds work, the split is unmeasured there",
        ),
        TargetProfile(
            "mobile",
            "phones (ORT Mobile: NNAPI on Android, CoreML on iOS, XNNPACK or the ARM CPU kernels)",
            ("asimd", "asimddp"),
            "aarch64",
            0,
            False,
            layout_reason="NNAPI and CoreML take fixed shapes only and have no HardSigmoid/Flatten: batch 1, "
            "those ops rewritten exactly, so each EP takes the whole graph in one partition",
            static_batch=1,
            op_forms="mobile",
        ),
        TargetProfile(
            "cuda",
            "NVIDIA GPU (ONNX Runtime, CUDA execution provider)",
            (),
            None,
            0,
            False,
            layout_reason="cuDNN picks its own layouts; fp16 is the GPU artifact (int8 QDQ runs on CPU kernels here)",
        ),
        TargetProfile(
            "tensorrt",
            "NVIDIA GPU (ONNX Runtime, TensorRT execution provider)",
            (),
            None,
            0,
            False,
            layout_reason="TensorRT builds its own engine from the graph; symmetric s8/s8 Q/DQ is what it imports",
        ),
    )
}
TARGET_NAMES = tuple(TARGETS)
DEFAULT_TARGET = "host"
GPU_TARGETS = ("cuda", "tensorrt")


#: The host's layout per CPU class: (channel alignment, Concat split, why), from the measurements above.
HOST_LAYOUTS: dict[str, tuple[int, bool, str]] = {
    "x86-avx2": (8, True, "aligned to 8 and split: 0.744× of the naive export on an AVX2 EPYC (0.84× as built)"),
    "x86-avx512": (8, True, "aligned to 8 and split: fastest measured on AVX-512 (0.840× vs 0.923× aligned to 16)"),
    "x86-vnni": (8, True, "aligned to 8 and split: fastest measured on AVX-512 VNNI (0.840× vs 0.923× aligned to 16)"),
    "arm64": (0, False, "as built: ORT's ARM kernels have no NCHWc path, padding only adds work"),
}


def target_profile(name: str) -> TargetProfile:
    """The named profile; ``host`` resolved to this machine's class layout (``HOST_LAYOUTS``)."""
    try:
        profile = TARGETS[name]
    except KeyError:
        raise UsageError(f"unknown --target {name}: use one of {', '.join(TARGETS)}") from None
    if name != "host":
        return profile
    from ghostexport.targets.host import cpu_description

    align, split, why = HOST_LAYOUTS[host_class(cpu_description()[1], platform.machine())]
    return replace(profile, align_channels=align, split_concat_convs=split, layout_reason=why)


def host_class(cpu_flags: list[str], machine: str | None = None) -> str:
    """The CPU class a machine belongs to: the one classification that picks both its layout and its int8 types."""
    flags = set(cpu_flags)
    if (machine or platform.machine()).lower() in ("aarch64", "arm64") or "asimd" in flags:
        return "arm64"
    if flags & {"avx512_vnni", "avx_vnni", "amx_int8"}:
        return "x86-vnni"
    if "avx512f" in flags:
        return "x86-avx512"
    return "x86-avx2"


_X86_WITHOUT_VNNI = (
    "uint8",
    "int8",
    True,
    "x86 without VNNI: u8/s8 with reduce_range, so u8×s8 pairs cannot saturate 16-bit sums",
)
#: (activation type, weight type, reduce_range, why) per CPU class
CLASS_INT8_TYPES: dict[str, tuple[str, str, bool, str]] = {
    "arm64": ("int8", "int8", False, "ARM: symmetric s8 activations suit ORT's ARM kernels (ORT guidance)"),
    "x86-vnni": (
        "uint8",
        "int8",
        False,
        "x86 with VNNI: u8/s8 without saturation (s8/s8 measured 2.0× slower than fp32 here)",
    ),
    "x86-avx512": _X86_WITHOUT_VNNI,
    "x86-avx2": _X86_WITHOUT_VNNI,
}


def types_for_cpu(cpu_flags: list[str], machine: str | None = None) -> tuple[str, str, bool, str]:
    """(activation type, weight type, reduce_range, why) for the CPU that will run the model."""
    return CLASS_INT8_TYPES[host_class(cpu_flags, machine)]


def int8_types(profile: TargetProfile) -> tuple[str, str, bool, str]:
    """(activation type, weight type, reduce_range, why) for the target: the recipe's type rule, fed its CPU class."""
    from ghostexport.targets.host import cpu_description

    if profile.name == "host":
        return types_for_cpu(cpu_description()[1])
    if profile.name in GPU_TARGETS:
        return (
            "int8",
            "int8",
            False,
            f"target {profile.name}: symmetric s8 activations and weights, the int8 form GPU kernels take",
        )
    activation, weight, reduce_range, why = types_for_cpu(list(profile.cpu_flags), profile.machine)
    return activation, weight, reduce_range, f"target {profile.name}: {why}"


def not_measured_here(profile: TargetProfile) -> str | None:
    """A warning when the artifact is for another kind of machine than this one, else None."""
    from ghostexport.targets.host import cpu_description

    if profile.name == "host":
        return None
    here = host_class(cpu_description()[1], platform.machine())
    if profile.name == here:
        return None
    return (
        f"built for --target {profile.name} ({profile.runs_on}) on a {here} machine: its quality is measured here, "
        f"its latency is not — time it on the target"
    )

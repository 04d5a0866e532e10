"""What each stage is asked to do: one spec object per stage, validated once.

A stage is ``spec -> run -> record``: the CLI (or a user's script) fills a spec, the stage
validates it before any work and before anything on disk is touched, runs, and records
its evidence in the manifest. ``PipelineSpec.validated`` validates every later stage's
spec up front, so that a bad ``--bench-iters`` is refused before the build replaces a
folder. Importing this module is cheap (no torch, no onnx): each check that needs a
heavy module imports it when it runs.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ghostexport.base.choices import (
    ALIGNMENTS,
    CUDNN_ALGO_SEARCH,
    DEFAULT_OPSET,
    EDGE_RUNTIME_NAMES,
    EXPORTERS,
    FLOAT_ENDS,
    MAX_BATCH,
    METHODS,
    OPSET_RANGE,
    PROVIDER_NAMES,
    QUANTIZE_MODES,
    SIMPLIFIERS,
    VARIANT_NAMES,
)
from ghostexport.base.errors import UsageError
from ghostexport.targets.profiles import DEFAULT_TARGET, TARGET_NAMES, TargetProfile

#: bounds on the timing options (a typo must not run for hours)
MAX_ITERATIONS, MAX_SECONDS = 1_000_000, 3600.0
DEFAULT_BENCH_ITERATIONS = 100
DEFAULT_SELECT_SECONDS = 20.0
PIPELINE_SELECT_SECONDS = 10.0  # the pipeline's last step: a shorter budget, as it runs on every build
PIPELINE_BENCH_ITERATIONS = 50
#: ghostify's gate, in points: the paper's Ghost-ResNet-50 (s=2) lost 0.3 points of ImageNet top-1,
#: so a loss above 1 point is the module costing accuracy, not noise — one image in 400 is 0.25
#: points. Without labels it bounds the disagreement with the original, which bounds the drop.
MAX_GHOSTIFY_DROP = 1.0
#: ghostify's fine-tuning defaults (AdamW, cosine): batch 32 gives twice the updates per epoch on
#: small sets (MobileNetV2 on 1,400 digits, 5 epochs: 1.26 points lost at 64, 0.50 at 32)
GHOSTIFY_BATCH_SIZE = 32
GHOSTIFY_LR = 3e-3


def one_of(default, choices, flag: str | None = None) -> Any:
    """A spec field whose value is one of ``choices`` (each of them, for a tuple): validated by
    ``check_choices``, and the CLI builds its ``click.Choice`` from them. ``flag``: the option's
    name where it is not ``--field-name``."""
    return field(default=default, metadata={"choices": tuple(choices), "flag": flag})


def flag_of(spec: type, name: str) -> str:
    """The command-line flag of a spec field."""
    found = next(f for f in fields(spec) if f.name == name)
    return found.metadata.get("flag") or f"--{name.replace('_', '-')}"


def choices_of(spec: type, name: str) -> tuple | None:
    """The allowed values of a spec's field (its ``one_of`` choices), or None for a field without them."""
    return next(f for f in fields(spec) if f.name == name).metadata.get("choices")


def default_of(spec: type, name: str) -> Any:
    """A spec field's default: the one place each default is written."""
    found = next(f for f in fields(spec) if f.name == name)
    return found.default_factory() if found.default is MISSING else found.default


def check_choices(spec, skip: tuple[str, ...] = ()) -> None:
    """Every ``one_of`` field of ``spec`` holds one of its choices (None only where that is the default)."""
    for found in fields(spec):
        choices = found.metadata.get("choices")
        if choices is None or found.name in skip:
            continue
        value = getattr(spec, found.name)
        for item in value if isinstance(value, tuple) else (value,):
            if not (item is None and found.default is None):
                _one_of(flag_of(type(spec), found.name), item, choices)


def _devices(on) -> tuple[str, ...]:
    """The ``--on`` commands, refused when one is empty."""
    if any(not command.strip() for command in on):
        raise UsageError("--on needs a command that starts Python on the device, e.g. --on 'ssh pi@board python3'")
    return tuple(on)


def _one_of(flag: str, value, allowed) -> None:
    if value not in allowed:
        raise UsageError(f"unknown {flag} {value}: use one of {', '.join(map(str, allowed))}")


def _batches(flag: str, values) -> tuple[int, ...]:
    values = tuple(values)
    if not values or any(isinstance(b, bool) or not isinstance(b, int) or not 1 <= b <= MAX_BATCH for b in values):
        raise UsageError(f"{flag} values must be integers from 1 to {MAX_BATCH}, got {','.join(map(str, values))}")
    return values


@dataclass(frozen=True)
class BuildSpec:
    """One GhostNet to build, export, simplify and gate.

    ``variant``/``width`` default to the ``weights`` registry entry's, else ghostnet 1.0;
    ``batch=None`` exports a dynamic batch; ``align_channels`` 16 (AVX-512) or 8 (AVX2)
    zero-pads the Ghost halves for ORT's NCHWc kernels (v1 only). ``target`` names the
    machine class the artifact is for (``targets.TARGETS``); its profile fills
    ``align_channels`` and ``split_concat_convs`` where they are None (its alignment only
    for v1, the one variant that can be aligned).
    """

    variant: str | None = one_of(None, VARIANT_NAMES)
    width: float | None = None
    num_classes: int | None = None
    checkpoint: str | Path | None = None
    weights: str | None = None
    reset_head: bool = False
    seed: int = 0
    resolution: int = 224
    opset: int = DEFAULT_OPSET
    batch: int | None = None
    simplifier: str = one_of("onnxsim", SIMPLIFIERS)
    out: str | Path = "models"
    exporter: str = one_of("torchscript", EXPORTERS)
    align_channels: int | None = one_of(None, ALIGNMENTS)  # None: the target's
    split_concat_convs: bool | None = None  # None: the target's
    target: str = one_of(DEFAULT_TARGET, TARGET_NAMES)
    #: any nn.Module instead of GhostNet: a factory ``package.module:function`` or a torchvision/timm name
    model: str | None = None
    #: the Ghost-module rule applied to ``model`` (``ghostify.GhostRule.as_dict`` plus its record)
    ghostify: dict | None = None
    tolerance: object = None  # parity.Tolerance; None means FP32_TOLERANCE
    command: str | None = None
    #: ``target`` resolved once, by ``validated`` (``host`` to this machine's class): what every later step reads
    profile: TargetProfile | None = None

    def validated(self) -> BuildSpec:
        """This spec with the registry's variant/width and the defaults filled in; UsageError if unusable."""
        from ghostexport.folder.reference import validate_model_spec
        from ghostexport.model.weights import weights_source

        if self.checkpoint is not None and self.weights is not None:
            raise UsageError(
                "--checkpoint and --weights are exclusive: give a local file or a registry name/URL, not both"
            )
        if self.model is not None or self.ghostify is not None:
            return self._validated_custom()
        variant, width = self.variant, self.width
        registry = weights_source(self.weights)[2] if self.weights else None
        if registry is not None:
            variant, width = _agree("variant", variant, registry.variant), _agree("width", width, registry.width)
        spec = replace(self, variant=variant or "ghostnet", width=1.0 if width is None else width)
        spec = spec._with_target_layout()
        validate_model_spec(spec.variant, spec.width, spec.num_classes, spec.resolution, spec.seed)
        if spec.batch is not None and not 1 <= spec.batch <= MAX_BATCH:
            raise UsageError(f"--batch must be 'dynamic' or an integer from 1 to {MAX_BATCH}, got {spec.batch}")
        if spec.align_channels not in ALIGNMENTS:
            raise UsageError(f"--align-channels {spec.align_channels}: use 16 (AVX-512), 8 (AVX2) or 0 (off)")
        check_choices(spec)
        low, high = OPSET_RANGE[spec.exporter]
        if not low <= spec.opset <= high:
            raise UsageError(
                f"--opset {spec.opset} is outside what the {spec.exporter} exporter supports here ({low}–{high})"
            )
        if spec.reset_head and spec.checkpoint is None and spec.weights is None:
            raise UsageError("--reset-head only applies with --checkpoint or --weights: drop it, or give a checkpoint")
        return spec

    def _validated_custom(self) -> BuildSpec:
        """A user's model (``model``: factory or registry name), ghosted or not: the same gates, no GhostNet options."""
        from ghostexport.folder.reference import validate_model_spec
        from ghostexport.model.weights import weights_source

        if self.model is None:
            raise UsageError("a ghostify rule needs the model it applies to: give --model")
        if self.variant not in (None, "custom") or self.width not in (None, 1.0):
            raise UsageError("--variant and --width describe GhostNet: drop them with --model")
        if self.weights is not None and weights_source(self.weights)[2] is not None:
            raise UsageError(f"--weights {self.weights} is a GhostNet registry entry: use its URL or --checkpoint")
        if self.reset_head:
            raise UsageError("--reset-head is for GhostNet checkpoints: give --num-classes to the factory instead")
        if self.align_channels not in (None, 0):
            raise UsageError("--align-channels handles GhostNet v1 (--variant ghostnet) only: drop it with --model")
        spec = replace(self, variant="custom", width=1.0, align_channels=0)._with_target_layout()
        validate_model_spec(spec.variant, spec.width, spec.num_classes, spec.resolution, spec.seed)
        if spec.batch is not None and not 1 <= spec.batch <= MAX_BATCH:
            raise UsageError(f"--batch must be 'dynamic' or an integer from 1 to {MAX_BATCH}, got {spec.batch}")
        check_choices(spec, skip=("variant",))  # a user's model is no GhostNet variant
        if spec.ghostify is not None:
            from ghostexport.model.ghost.rule import GhostRule

            GhostRule.from_dict(spec.ghostify)
        return spec

    def _with_target_layout(self) -> BuildSpec:
        from ghostexport.targets.profiles import target_profile

        profile = target_profile(self.target)
        align = self.align_channels
        if align is None:
            align = profile.align_channels if self.variant == "ghostnet" else 0
        split = profile.split_concat_convs if self.split_concat_convs is None else self.split_concat_convs
        batch = self.batch if self.batch is not None else profile.static_batch
        return replace(self, align_channels=align, split_concat_convs=split, batch=batch, profile=profile)

    def library_command(self) -> str:
        """How a library call is recorded in the manifest when no command line is given."""
        keys = ("variant", "width", "num_classes", "checkpoint", "weights", "reset_head", "seed", "resolution")
        keys += ("opset", "batch", "simplifier", "exporter", "align_channels", "split_concat_convs", "target", "model")
        return "ghostexport.build(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in keys) + ")"


def _agree(what: str, given, from_weights):
    if given is not None and given != from_weights:
        raise UsageError(
            f"--{what} {given} contradicts the weights, which are for {what} {from_weights}: drop --{what}"
        )
    return from_weights


@dataclass(frozen=True)
class QuantizeSpec:
    """One reduced-precision artifact to make from a build folder's (or a file's) fp32 model."""

    model: str | Path | None = None
    mode: str = one_of("int8", QUANTIZE_MODES)
    calib: str | None = None
    eval: str | None = None
    method: str = one_of("minmax", (*METHODS, "auto"))
    per_channel: bool = True
    exclude: tuple[str, ...] = ()
    target_sqnr: float | None = None
    max_accuracy_drop: float | None = None
    float_ends: str = one_of("stem", FLOAT_ENDS)
    shared_concat_scales: bool = True
    baseline: bool = True
    target: str | None = one_of(None, TARGET_NAMES)  # None: the build's recorded target, else host
    replace_verified: bool = False  # let synthetic data replace an artifact verified on real data

    def validated(self) -> QuantizeSpec:
        check_choices(self)
        if self.target_sqnr is not None and not math.isfinite(self.target_sqnr):
            raise UsageError(f"--target-sqnr must be a finite number of dB, got {self.target_sqnr}")
        if self.mode != "int8" and (self.method != "minmax" or self.exclude or self.target_sqnr is not None):
            raise UsageError(f"--method, --exclude and --target-sqnr apply to --mode int8, not {self.mode}")
        from ghostexport.evidence.quality import QualityGate

        QualityGate(max_accuracy_drop=self.max_accuracy_drop)
        return replace(self, exclude=tuple(self.exclude))


@dataclass(frozen=True)
class CheckSpec:
    """Which artifacts to check against what, on which provider and inputs, under which tolerances.

    ``atol``/``rtol``/``min_cosine`` override the fp32 parity tolerance (``min_cosine`` is the
    worst sample's cosine); ``min_mean_cosine`` and ``min_agreement`` the fp16/int8 quality
    gate (mean cosine over the samples, top-1 agreement).
    """

    model: str | Path | None = None
    reference: str | None = None
    provider: str = one_of("cpu", PROVIDER_NAMES)
    data: str | None = None
    samples: int = 8
    batches: tuple[int, ...] = (1, 4)
    atol: float | None = None
    rtol: float | None = None
    min_cosine: float | None = None
    min_mean_cosine: float | None = None
    min_agreement: float | None = None
    localize: bool = False
    allow_fallback: bool = False
    cudnn_conv_algo_search: str = one_of("HEURISTIC", CUDNN_ALGO_SEARCH, "--cudnn-algo")
    #: commands that start Python on other devices (``--on``): each artifact is also run there
    on: tuple[str, ...] = ()
    command: str | None = None

    def validated(self) -> CheckSpec:
        if self.samples < 2:
            raise UsageError("--samples must be at least 2 (the centred figures compare samples with each other)")
        spec = replace(self, batches=_batches("--batches", self.batches))
        self.tolerance()
        self.gate_overrides()
        check_choices(spec)
        if spec.reference not in (None, "torch") and not str(spec.reference).endswith(".onnx"):
            raise UsageError(f"--reference {spec.reference}: use 'torch' or the path of another .onnx")
        if spec.on and spec.provider != "cpu":
            raise UsageError(f"--on runs on the device's CPU: drop --provider {spec.provider}")
        return replace(spec, on=_devices(spec.on))

    def tolerance(self):
        """The fp32 tolerance with this spec's overrides (validated: no value can switch the gate off)."""
        from ghostexport.evidence.parity import FP32_TOLERANCE

        given = {"atol": self.atol, "rtol": self.rtol, "min_cosine": self.min_cosine}
        return replace(FP32_TOLERANCE, **{key: value for key, value in given.items() if value is not None})

    def gate_overrides(self) -> dict:
        """The quality-gate fields this spec overrides (validated by QualityGate itself)."""
        from ghostexport.evidence.quality import QualityGate

        given = {"min_mean_cosine": self.min_mean_cosine, "min_agreement": self.min_agreement}
        QualityGate(**given)
        return {key: value for key, value in given.items() if value is not None}


@dataclass(frozen=True)
class BenchSpec:
    """Which models to time, where, at which batch sizes, for how long."""

    models: tuple[str | Path | None, ...] = ()
    provider: str = one_of("cpu", PROVIDER_NAMES)
    batches: tuple[int, ...] = (1,)
    threads: int | None = None
    streams: int = 1
    warmup: int = 10
    iterations: int | None = None
    seconds: float | None = None
    torch_eager: bool = False
    allow_fallback: bool = False
    cudnn_conv_algo_search: str = one_of("HEURISTIC", CUDNN_ALGO_SEARCH, "--cudnn-algo")
    trt_fp16: bool = False
    trt_engine_cache: str | None = None
    select: bool = False  # also time every passing artifact under every session setting, and recommend one
    select_seconds: float = DEFAULT_SELECT_SECONDS
    #: commands that start Python on other devices (``--on``): the ONNX artifacts are also timed there
    on: tuple[str, ...] = ()
    command: str | None = None

    def validated(self) -> BenchSpec:
        """Bounded options (a typo must not run for hours); threads default to cores/streams in throughput mode."""
        from ghostexport.runtime.ort import physical_cores

        if self.iterations is not None and self.seconds is not None:
            raise UsageError("--iters and --seconds are exclusive: give a round count or a time budget")
        if self.iterations is not None and not 1 <= self.iterations <= MAX_ITERATIONS:
            raise UsageError(f"--iters must be an integer from 1 to {MAX_ITERATIONS:,}, got {self.iterations}")
        if self.seconds is not None and not (math.isfinite(self.seconds) and 0 < self.seconds <= MAX_SECONDS):
            raise UsageError(f"--seconds must be a number in (0, {MAX_SECONDS:g}], got {self.seconds}")
        if not 0 <= self.warmup <= MAX_ITERATIONS:
            raise UsageError(f"--warmup must be an integer from 0 to {MAX_ITERATIONS:,}, got {self.warmup}")
        cap = max_threads()
        if self.threads is not None and not 1 <= self.threads <= cap:
            raise UsageError(f"--threads must be from 1 to {cap} (4 per CPU this machine has), got {self.threads}")
        if not 1 <= self.streams <= cap:
            raise UsageError(f"--streams must be from 1 to {cap} (4 per CPU this machine has), got {self.streams}")
        spec = replace(self, models=tuple(self.models) or (None,), batches=_batches("--batches", self.batches))
        check_choices(spec)
        if spec.streams > 1 and (spec.provider != "cpu" or spec.torch_eager):
            raise UsageError("--streams (concurrent requests) is for ORT on --provider cpu, without --torch")
        if spec.select and (spec.provider != "cpu" or len({str(m) for m in spec.models}) != 1):
            raise UsageError("--select chooses among one build folder's artifacts on --provider cpu: give one folder")
        if not (math.isfinite(spec.select_seconds) and 1 <= spec.select_seconds <= MAX_SECONDS):
            raise UsageError(f"--select-seconds must be a number in [1, {MAX_SECONDS:g}], got {spec.select_seconds}")
        if spec.on and (spec.provider != "cpu" or spec.streams > 1 or spec.seconds is not None):
            raise UsageError(
                "--on times the ONNX artifacts on the device's CPU, one request at a time, for --iters rounds: "
                "drop --provider, --streams and --seconds"
            )
        spec = replace(spec, on=_devices(spec.on))
        if spec.streams > 1 and spec.threads is None:  # one core's worth per stream, not oversubscribed
            spec = replace(spec, threads=max(1, physical_cores() // spec.streams))
        return spec


def max_threads() -> int:
    """More threads than 4 per CPU only oversubscribes (and thousands exhaust memory)."""
    import os

    return 4 * (os.cpu_count() or 1)


#: the targets whose pipeline also builds the OpenVINO artifacts when OpenVINO is installed
OPENVINO_TARGETS = ("host", "x86-avx2", "x86-avx512", "x86-vnni")


def default_runtimes(target: str) -> tuple[str, ...]:
    """The runtimes a pipeline converts to unless told (``--edge``): OpenVINO for an x86 target where it is installed."""
    import platform

    from ghostexport.runtime.edge import runtime_installed

    x86 = target != "host" or platform.machine().lower() in ("x86_64", "amd64")
    wanted = target in OPENVINO_TARGETS and x86
    return (
        ("openvino",) if wanted and runtime_installed("openvino") and runtime_installed("openvino", "converter") else ()
    )


@dataclass(frozen=True)
class PipelineSpec:
    """build -> quantize (int8, fp16) -> [convert] -> check -> bench, and what each stage gets."""

    build: BuildSpec = field(default_factory=BuildSpec)
    calib: str | None = None
    eval: str | None = None
    provider: str = one_of("cpu", PROVIDER_NAMES)
    ort: bool = False
    #: convert --to each of these (litert, executorch, openvino), fp32 and int8, calibrated on ``calib``
    #: like the ONNX int8; None: OpenVINO where it is installed and the target is an x86 CPU
    edge: tuple[str, ...] | None = one_of(None, EDGE_RUNTIME_NAMES)
    bench_batches: tuple[int, ...] = (1,)
    bench_iterations: int = PIPELINE_BENCH_ITERATIONS
    allow_fallback: bool = False
    float_ends: str = one_of("stem", FLOAT_ENDS)
    select: bool | None = None  # bench --select as the last step; None: on for --provider cpu
    select_seconds: float = PIPELINE_SELECT_SECONDS
    #: devices (``--on``) that check and bench also run the ONNX artifacts on
    on: tuple[str, ...] = ()
    command: str | None = None

    def validated(self) -> PipelineSpec:
        """Every stage's spec, refused before the build replaces anything (the provider included)."""
        from ghostexport.runtime.providers import require_provider

        spec = replace(self, build=replace(self.build, command=self.command).validated())
        if spec.select is None:  # the fastest verified artifact is chosen where it will run: the CPU here
            spec = replace(spec, select=spec.provider == "cpu")
        spec.quantize_spec(None, "int8").validated()
        spec.check_spec(None).validated()
        try:
            spec.bench_spec(None).validated()
        except UsageError as exc:  # the pipeline's own flag names
            raise UsageError(
                str(exc).replace("--iters", "--bench-iters").replace("--batches", "--bench-batches")
            ) from None
        require_provider(spec.provider, spec.allow_fallback)
        if spec.edge is None:
            spec = replace(spec, edge=default_runtimes(spec.build.profile.name))
        for runtime in spec.edge:
            if runtime not in EDGE_RUNTIME_NAMES:
                raise UsageError(f"--edge {runtime}: use {', '.join(EDGE_RUNTIME_NAMES)} or none, comma-separated")
            from ghostexport.edge.prepare import require

            require(runtime)
        return spec

    @property
    def real_data(self) -> str | None:
        """Real images for check: the evaluation data, else the calibration data (check holds out its quarter)."""
        return self.eval or (self.calib if self.calib and not self.calib.startswith("synthetic:") else None)

    def quantize_spec(self, folder: Path | None, mode: str) -> QuantizeSpec:
        # fp16 is measured on the same real data as int8 (its held-out part when only --calib is given)
        float_ends = self.float_ends if mode == "int8" else "stem"
        return QuantizeSpec(folder, mode=mode, calib=self.calib, eval=self.eval, float_ends=float_ends)

    def check_spec(self, folder: Path | None) -> CheckSpec:
        return CheckSpec(
            folder,
            provider=self.provider,
            data=self.real_data,
            allow_fallback=self.allow_fallback,
            on=self.on,
            command=self.command,
        )

    def bench_spec(self, folder: Path | None) -> BenchSpec:
        return BenchSpec(
            (folder,),
            provider=self.provider,
            batches=self.bench_batches,
            iterations=self.bench_iterations,
            allow_fallback=self.allow_fallback,
            select=bool(self.select),
            select_seconds=self.select_seconds,
            on=self.on,
            command=self.command,
        )


@dataclass(frozen=True)
class GhostifySpec:
    """A user's CNN to ghostify: which model, the replacement rule, the fine-tuning, where the builds go."""

    model: str
    checkpoint: str | Path | None = None
    num_classes: int | None = None
    ratio: int = 2
    dw_size: int = 3
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    ghost_classifier: bool = False
    resolution: int = 224
    train: str | None = None
    eval: str | None = None
    epochs: int = 10
    max_minutes: float = 10.0
    batch_size: int = GHOSTIFY_BATCH_SIZE
    lr: float = GHOSTIFY_LR
    seed: int = 0
    resume: bool = False
    max_drop: float = MAX_GHOSTIFY_DROP  # points of held-out accuracy (or of agreement) the ghosted may lose
    build: bool = True  # export the original and the ghosted model through build's gates
    out: str | Path = "models"
    target: str = one_of(DEFAULT_TARGET, TARGET_NAMES)
    command: str | None = None

    def rule(self):
        from ghostexport.model.ghost.rule import GhostRule

        return GhostRule(
            self.ratio, self.dw_size, tuple(self.include), tuple(self.exclude), ghost_classifier=self.ghost_classifier
        )

    def recipe(self):
        from ghostexport.model.ghost.distill import TrainRecipe

        return TrainRecipe(self.epochs, self.max_minutes, self.batch_size, self.lr, seed=self.seed)

    def validated(self) -> GhostifySpec:
        from ghostexport.folder.reference import validate_model_spec

        self.rule().validated()
        self.recipe().validated()
        validate_model_spec("custom", 1.0, self.num_classes, self.resolution, self.seed)
        if self.eval is not None and self.train is None:
            raise UsageError("--eval measures the fine-tuning: give --train too")
        if isinstance(self.max_drop, bool) or not (
            isinstance(self.max_drop, int | float) and math.isfinite(self.max_drop) and 0 <= self.max_drop <= 100
        ):
            raise UsageError(f"--max-drop must be a number of points from 0 to 100, got {self.max_drop}")
        if self.resume and self.train is None:
            raise UsageError("--resume continues a fine-tuning: give --train too")
        if self.checkpoint is not None and not Path(self.checkpoint).is_file():
            raise UsageError(f"--checkpoint {self.checkpoint} does not exist: give the original model's weights file")
        BuildSpec(model=self.model, resolution=self.resolution, target=self.target, out=self.out).validated()
        return self

    def folder_stem(self) -> str:
        """``<model>-ghost-s<s>d<d>-r<R>``: the name of ghostify's work folder beside the builds."""
        from ghostexport.folder.naming import custom_folder_name

        return custom_folder_name(self.model, self.rule().as_dict(), self.num_classes, self.resolution, None)

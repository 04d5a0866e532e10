"""The manifest, typed: every record a stage writes into ``manifest.json``, defined once.

Why TypedDicts and not classes: the manifest is JSON on disk and the stages build it as plain
dicts, so a TypedDict describes exactly what is written (``json.dumps`` needs no conversion
layer) while a type checker sees every key. pydantic reads the same definitions twice: its
``TypeAdapter`` generates the published JSON Schema (``info --schema``), closed with
``additionalProperties: false`` everywhere, and validates each manifest read from disk, so a
record the code writes and the schema the users read cannot drift apart. A key marked
``NotRequired`` is written only by some stages or some kinds of artifact.
"""

from __future__ import annotations

from typing import Any, Literal

from typing_extensions import NotRequired, TypedDict

#: every record is closed (an unknown key is an error) and strictly typed (no "1" for 1): pydantic's
#: ``ConfigDict``, set as the class attribute its ``with_config`` sets, so that importing the
#: schema (every command does) does not import pydantic; validating a manifest does
CLOSED = {"extra": "forbid", "strict": True}


def closed(record: type) -> type:
    """Mark a record closed and strict for pydantic."""
    record.__pydantic_config__ = CLOSED
    return record


SCHEMA_VERSION = 1

Verdict = Literal["pass", "fail"]
GateVerdict = Literal["pass", "fail", "reported"]
#: a figure a stage could not compute is null, never a made-up number
Figure = float | None


# --- the model a folder holds -------------------------------------------------------------


@closed
class Preprocess(TypedDict):
    """The eval transform: resize the shorter side, centre-crop, scale, normalise."""

    resize: int
    crop_pct: float
    interpolation: Literal["bicubic", "bilinear", "nearest", "lanczos"]
    mean: list[float]
    std: list[float]


@closed
class Checkpoint(TypedDict):
    path: str
    sha256: str
    fixes: list[str]


@closed
class BnStatistics(TypedDict):
    """BatchNorm statistics re-estimated after a width or resolution change."""

    method: str
    inputs: str
    samples: int
    layers: int


@closed
class TargetLayout(TypedDict):
    align_channels: int
    op_forms: str
    split_concat_convs: bool
    static_batch: int | None


@closed
class Target(TypedDict):
    """The deployment target a build was made for, what its profile asks and what was applied."""

    name: str
    runs_on: str
    profile: TargetLayout
    applied: TargetLayout
    reason: str


@closed
class ImageSet(TypedDict):
    """Where a set of images came from (a folder, a file, or a seeded synthetic draw)."""

    source: str
    origin: str | None
    samples: int
    labelled: bool
    synthetic: bool


@closed
class Calibration(ImageSet):
    #: ONNX int8 only: the warning that synthetic calibration makes the figures meaningless
    warning: NotRequired[str | None]


@closed
class TrainRecipe(TypedDict):
    epochs: int
    max_minutes: float
    batch_size: int
    lr: float
    weight_decay: float
    temperature: float
    optimizer: str
    loss: str
    seed: int


@closed
class Epoch(TypedDict):
    epoch: int
    loss: float
    train_accuracy: float
    eval_accuracy: Figure
    seconds: float


@closed
class GhostifyGate(TypedDict):
    verdict: Literal["pass", "fail", "unmeasured"]
    measure: str
    max_drop_points: float
    lost_points: Figure
    weights: str
    message: str


@closed
class Training(TypedDict):
    """ghostify's fine-tuning: the recipe, each epoch, the accuracy before and after, its gate."""

    recipe: TrainRecipe
    train: ImageSet
    eval: ImageSet | None
    measure: str
    warm_start: str
    before: dict[str, Figure]
    after: Figure
    drop_points: Figure
    epochs: list[Epoch]
    seconds: float
    stopped: str
    gate: GhostifyGate


@closed
class GhostifyCounts(TypedDict):
    layers_considered: int
    layers_replaced: int
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    resolution: int


@closed
class Ghostify(TypedDict):
    """How a user's model was ghosted: the rule, what it replaced, and the fine-tuning."""

    ratio: int
    dw_size: int
    include: list[str]
    exclude: list[str]
    keep_image_convs: bool
    ghost_classifier: bool
    counts: GhostifyCounts
    weights: str
    training: NotRequired[Training]


@closed
class Source(TypedDict):
    """A user's model (``--model``): the factory or registry name it is rebuilt from."""

    kind: str
    model: str
    num_classes: int
    ghostify: Ghostify | None


@closed
class Model(TypedDict):
    variant: str
    width: float
    num_classes: int
    resolution: int
    batch: int | Literal["dynamic"]
    params: int
    deploy_params: NotRequired[int]
    macs: int
    checkpoint: Checkpoint | None
    seed: int
    bn_statistics: BnStatistics | None
    preprocess: Preprocess
    target: NotRequired[Target]
    source: NotRequired[Source]


# --- the evidence: parity and quality figures -----------------------------------------------


@closed
class Tolerance(TypedDict, total=False):
    """The thresholds a comparison was gated by; a null threshold is not applied."""

    atol: float
    rtol: float
    min_cosine: float
    min_centred_cosine: Figure
    min_centred_sqnr_db: Figure
    min_sqnr_db: Figure
    min_mean_cosine: Figure
    min_agreement: Figure
    max_accuracy_drop: Figure


@closed
class Figures(TypedDict, total=False):
    """One comparison of a candidate's logits with the reference's: every figure, the gate, the verdict."""

    samples: int
    #: the two output shapes, when they differ (then no other figure is computed)
    shape: list[list[int]]
    elements: int
    max_abs: Figure
    max_rel: Figure
    worst_ratio: Figure
    failing_elements: int
    nonfinite: int
    min_cosine: Figure
    mean_cosine: Figure
    centred_cosine: Figure
    centred_sqnr_db: Figure
    centred_gate: str
    sqnr_db: Figure
    input_dependence: Figure
    top1_agreement: Figure
    top5_agreement: Figure
    accuracy: Figure
    accuracy_reference: Figure
    accuracy_drop_points: Figure
    tolerance: Tolerance
    gate: Tolerance
    enforced: bool
    reasons: list[str]
    verdict: GateVerdict


@closed
class Parity(Figures, total=False):
    """fp32 against PyTorch at every batch size run (``per_batch``, keyed by the batch size)."""

    reference: str
    inputs: str
    provider: str
    batches: list[int]
    per_batch: dict[str, Figures]
    warnings: list[str]
    export: Parity
    simplified: Parity


@closed
class Quality(Figures, total=False):
    """A quantized artifact against its fp32 parent (an edge int8 artifact: against PyTorch) on the evaluation images."""

    note: str
    reference: str


@closed
class Baseline(TypedDict):
    """ONNX Runtime's stock int8 recipe on the same images, for comparison."""

    recipe: str
    types: str
    sqnr_db: Figure
    centred_sqnr_db: Figure
    centred_cosine: Figure
    mean_cosine: Figure
    top1_agreement: Figure
    accuracy: Figure
    accuracy_drop_points: Figure


# --- what made an artifact --------------------------------------------------------------------


@closed
class Export(TypedDict):
    """How model.onnx was exported and simplified."""

    exporter: str
    simplifier: str
    bn_folded: bool
    channel_alignment: int | None
    concat_convs_split: int
    mobile_forms: NotRequired[int]
    executed_macs: NotRequired[int]
    nodes_exported: int
    ops: dict[str, int]
    unclean_ops: dict[str, int]


@closed
class Recipe(TypedDict, total=False):
    """The quantization recipe: types, calibration method, float layers (or the edge converter's recipe)."""

    format: str
    activation_type: str
    weight_type: str
    types_reason: str
    activations: str
    per_channel: bool
    reduce_range: bool
    method: str
    float_ends: str
    exclude: list[str]
    kept_float: list[str]
    shared_concat_scales: bool
    preprocessed: bool
    converter: str
    keep_io_types: bool


@closed
class GraphForms(TypedDict):
    stem: str
    float_logits: bool
    split_convs_merged: int


@closed
class Validation(TypedDict):
    checks: str
    verdict: Verdict


@closed
class CpuRecord(TypedDict):
    cpu: str
    cpu_flags: list[str]


@closed
class Trial(TypedDict):
    method: str
    kept_float: int
    sqnr_db: Figure
    top1_agreement: Figure
    accuracy_drop_points: Figure


@closed
class AutoSearch(TypedDict):
    """``--method auto``: each calibration method tried, then the fewest float nodes that meet the gate."""

    methods_tried: list[str]
    chosen_method: str
    trials: list[Trial]
    ranked_nodes: list[str]
    target_met: bool


@closed
class LatencySummary(TypedDict):
    """One timed series: its length and percentiles (``runtime.latency.summarize``)."""

    iterations: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    std_ms: float


@closed
class Timing(LatencySummary):
    ratio_to_fp32: NotRequired[float]


@closed
class LatencyCost(TypedDict):
    """What keeping nodes in float costs: fp32, the chosen int8 and all-int8, timed interleaved."""

    batch: int
    threads: int
    rounds: int
    runs: dict[str, Timing]


@closed
class EpUsability(TypedDict):
    nodes: int
    supported_nodes: int
    partitions: int
    unsupported_ops: list[str]
    verdict: str


@closed
class MobileUsability(TypedDict):
    checker: str
    eps: dict[str, EpUsability]


@closed
class Delegation(TypedDict):
    """How much of an ExecuTorch program its delegate took: its calls, and every operator left outside."""

    delegate_calls: int
    ops_outside: dict[str, int]
    outside_total: int


@closed
class EdgeConversion(TypedDict):
    """What converting to LiteRT or ExecuTorch did (aliases removed, I/O types or delegation, the recipe)."""

    noop_aliases_removed: int
    recipe: str
    io: NotRequired[dict[str, str]]
    delegate: NotRequired[str]
    delegation: NotRequired[Delegation]


@closed
class BiasCorrection(TypedDict):
    """Whether NNCF's fast bias correction was kept: the int8 IR's logits SQNR on the calibration images either way."""

    kept: Literal["fast", "none"]
    calibration_sqnr_db: dict[str, float]


@closed
class OpenVinoConversion(TypedDict):
    """What converting model.onnx to an OpenVINO IR did: the converter, the IR's operations, the int8 recipe."""

    converter: str
    source: str
    #: -1 for a dynamic dimension (ghostexport fixes batch 1)
    input_shape: NotRequired[list[int]]
    weights: str
    compress_to_fp16: bool
    ops: dict[str, int]
    quantized_ops: int
    recipe: str
    calibration_samples: NotRequired[int]
    kept_float: NotRequired[list[str]]
    bias_correction: NotRequired[BiasCorrection]


@closed
class CompiledSettings(TypedDict):
    """What OpenVINO reports a compiled model runs with (not what was asked)."""

    inference_precision: str
    performance_hint: str
    threads: int
    streams: int
    cpu_pinning: NotRequired[bool]


@closed
class InferencePrecision(TypedDict):
    """The precision an OpenVINO IR was gated at: the setting, what it resolved to on which CPU, and why."""

    setting: Literal["auto", "f32", "bf16", "f16"]
    precision: str
    how: str
    cpu: str
    openvino: str
    compiled: CompiledSettings


@closed
class Companion(TypedDict):
    """A file an artifact needs beside it (an OpenVINO IR's weights), hashed like the artifact."""

    file: str
    sha256: str
    bytes: int
    parent: None


@closed
class Artifact(TypedDict):
    """One file of the folder: its bytes, where it came from, and the evidence it earned.

    ``parent`` is the sha256 of the model.onnx a derived artifact was made from (null for
    model.onnx itself); model.onnx carries ``export`` and ``parity``, a quantized artifact
    ``recipe``, ``calibration``, ``evaluation`` and ``quality``, an edge artifact its conversion.
    """

    sha256: str
    bytes: int
    parent: str | None
    nodes: NotRequired[int]
    opset: NotRequired[int]
    ops: NotRequired[dict[str, int]]
    export: NotRequired[Export]
    parity: NotRequired[Parity]
    mode: NotRequired[Literal["int8", "fp16", "int8-dynamic"]]
    precision: NotRequired[Literal["fp32", "fp16", "int8"]]
    #: an edge artifact's converter and runtime versions, by package
    runtime: NotRequired[dict[str, str | None]]
    format: NotRequired[str]
    source: NotRequired[str]
    target: NotRequired[str]
    optimization_style: NotRequired[str]
    required_operators: NotRequired[str]
    recipe: NotRequired[Recipe]
    graph_forms: NotRequired[GraphForms]
    validation: NotRequired[Validation]
    calibration: NotRequired[Calibration | None]
    evaluation: NotRequired[ImageSet]
    quality: NotRequired[Quality]
    baseline: NotRequired[Baseline]
    auto: NotRequired[AutoSearch]
    latency: NotRequired[LatencyCost]
    mobile_usability: NotRequired[MobileUsability]
    conversion: NotRequired[EdgeConversion | OpenVinoConversion]
    #: an OpenVINO IR: its weights file, and the inference precision it was gated at
    weights: NotRequired[Companion]
    inference: NotRequired[InferencePrecision]
    environment: NotRequired[CpuRecord]
    seconds: NotRequired[float]


# --- what later commands add --------------------------------------------------------------------


@closed
class Localized(TypedDict):
    node: str
    op: str
    tensor: str
    max_abs: Figure
    sqnr_db: Figure
    nonfinite: int
    fails: bool


@closed
class Localization(TypedDict):
    """Where an artifact first diverges from the fp32 graph, and its worst nodes."""

    rule: str
    matching: str
    compared: int
    first_divergence: Localized | None
    worst: list[Localized]


@closed
class DeviceRecord(TypedDict):
    """Where a figure was measured when it was not this machine (``--on CMD``), as the device described itself."""

    command: str
    machine: str
    cpu: str
    cpu_flags: list[str]
    system: str
    python: str
    numpy: str
    onnxruntime: str | None
    emulated: bool


@closed
class CheckResult(Figures, total=False):
    artifact: str
    path: str
    reference: str
    inputs: str
    precision: str
    provider: str
    providers_used: list[str]
    fallback: bool
    batches: list[int]
    per_batch: dict[str, Figures]
    localize: Localization
    device: DeviceRecord


@closed
class CheckEntry(TypedDict):
    created: str
    command: str
    provider: str
    verdict: GateVerdict
    warnings: list[str]
    results: list[CheckResult]


@closed
class BenchEnvironment(TypedDict, total=False):
    cpu: str
    cpu_flags: list[str]
    onnxruntime: str
    provider: str
    provider_requested: str
    providers_in_use: dict[str, str]
    graph_optimization_level: str
    threads: int | str
    thread_spinning: bool
    streams: int
    subject: str
    settings: str
    #: the thread count each edge runtime ran with
    edge_threads: dict[str, int]
    #: the devices rows were timed on (``--on``), as each described itself
    devices: dict[str, DeviceRecord]
    #: CUDA provider only
    cuda_device: str
    cudnn_conv_algo_search: str
    io_binding: bool


@closed
class BenchRow(LatencySummary, total=False):
    model: str
    batch: int
    throughput_ips: float
    ratio_to_first: float
    provider: str
    runtime: str
    streams: int
    measured_by: str
    #: rows timed on another device (``--on``): its command, and whether it was emulated
    device: str
    emulated: bool


@closed
class BenchEntry(TypedDict):
    created: str
    command: str
    provider: str
    environment: BenchEnvironment
    results: list[BenchRow]


@closed
class Finalist(TypedDict):
    """A candidate re-timed in the selection's second pass (spinning and optimisation: ONNX Runtime's only)."""

    artifact: str
    threads: int
    spinning: bool | None
    optimization: str | None
    #: OpenVINO only: its performance hint, streams and inference precision
    hint: NotRequired[str | None]
    streams: NotRequired[int | None]
    precision: NotRequired[str | None]


@closed
class Settings(Finalist):
    """One way to run an artifact: its runtime, threads, spinning and graph optimisation."""

    runtime: str


@closed
class TimedSettings(Settings):
    p50_ms: float
    p50_interval_ms: list[float]
    samples: int


@closed
class Recommended(TimedSettings):
    ratios: dict[str, float]


@closed
class PassLoad(TypedDict):
    """How loaded the machine was during one timing pass."""

    seconds: float
    rounds: int
    pairs: int
    load_average_before: float | None
    load_average_after: float | None
    #: the 10th-90th percentile range of the rounds' times over their median
    round_spread: float | None


@closed
class SelectionLoad(TypedDict):
    cpus: int
    first_pass: PassLoad
    second_pass: PassLoad


@closed
class Tie(TypedDict):
    """Rows the selection could not tell apart from the fastest, and the rule that chose among them."""

    fastest: str
    not_told_apart: list[str]
    competing: list[str]
    rule: str
    margin: float
    chosen: str


@closed
class ChangedFrom(TypedDict):
    """The choice this selection replaced, where it differs: what it was, and why it is not chosen now."""

    artifact: str
    settings: str
    created: str
    why: str
    load_average_then: float | None
    load_average_now: float | None


@closed
class Selection(TypedDict):
    """``bench --select``: every candidate timed, the finalists re-timed, the fastest that passed its gates."""

    created: str
    command: str
    environment: CpuRecord
    budget_seconds: float
    rows: list[TimedSettings]
    best_per_artifact: dict[str, TimedSettings]
    finalists: list[Finalist]
    recommended: Recommended
    ratio_meaning: str
    note: str | None
    left_out: dict[str, str]
    not_built: list[str]
    not_timed: list[str]
    load: NotRequired[SelectionLoad]
    tie: NotRequired[Tie | None]
    changed_from: NotRequired[ChangedFrom | None]


@closed
class DeviceRow(TypedDict):
    """One artifact at one thread count, timed on a device (``bench --select --on``)."""

    artifact: str
    threads: int | Literal["default"]
    p50_ms: float
    p50_interval_ms: list[float]
    samples: int


@closed
class DeviceSelection(TypedDict):
    """The choice made on a device: every verified artifact timed there, and the fastest (none if emulated)."""

    created: str
    device: DeviceRecord
    rows: list[DeviceRow]
    recommended: DeviceRow | None
    note: str | None


@closed
class ReplacedBuild(TypedDict):
    """A build a rebuild replaced: its command, files and their hashes."""

    created: str
    command: str
    replaced: str
    artifacts: dict[str, str]
    checks: int
    benchmarks: int
    removed_files: list[str]


@closed
class Environment(TypedDict):
    python: str
    platform: str
    torch: str
    onnx: str
    onnxruntime: str | None
    onnxsim: str | None
    onnxslim: str | None
    cpu: str
    cpu_flags: list[str]


@closed
class Manifest(TypedDict):
    """``manifest.json``: the model, the environment it was built in, each artifact with its evidence."""

    schema: Literal[1]
    ghostexport: str
    created: str
    command: str
    model: Model
    environment: Environment
    artifacts: dict[str, Artifact]
    checks: list[CheckEntry]
    benchmarks: list[BenchEntry]
    recommended: NotRequired[Selection]
    #: per ``--on`` command, the choice made on that device
    recommended_on: NotRequired[dict[str, DeviceSelection]]
    history: NotRequired[list[ReplacedBuild]]


def manifest_adapter() -> Any:
    """pydantic's validator and schema generator for :class:`Manifest` (built on first use: ~50 ms)."""
    from pydantic import TypeAdapter

    return TypeAdapter(Manifest)

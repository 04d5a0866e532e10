"""``build``: GhostNet in PyTorch -> gated, simplified ``model.onnx`` in its artifact folder.

Stages: resolve weights -> build the model -> count -> fold BN -> export -> parity gate ->
simplify -> parity gate again -> write the folder atomically -> ``LATEST``. Either every
file lands together with a manifest that records a passing verdict, or nothing lands.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import onnx
import torch

from . import __version__
from .arch import VARIANTS, calibrate_batchnorm, create_model
from .artifacts import MODEL_FILE, folder_name, output_root, write_latest
from .checkpoint import apply_state_dict, checkpoint_num_classes, load_state_dict
from .commit import replace_folder
from .counting import count_macs, count_params
from .errors import GateFailed, UsageError
from .export import DEFAULT_OPSET, EXPORTERS, export_onnx, op_counts, set_metadata
from .figures import MIN_INPUT_DEPENDENCE, NO_INPUT_DEPENDENCE_WARNING
from .files import atomic_write_bytes, sha256_file
from .fold import deploy_form, reparameterized
from .manifest import new_manifest, read_manifest, write_manifest
from .parity import FP32_TOLERANCE, Tolerance, parity_over_batches, random_inputs
from .runtime import cpu_session, run_logits
from .simplify import SIMPLIFIERS, lint, simplify, split_concat_convs
from .weights import download, weights_source

#: The eval transform published GhostNet weights expect (timm's: bicubic, crop 0.875).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_CROP_PCT = 0.875
DEFAULT_INTERPOLATION = "bicubic"
PARITY_SAMPLES = 8
PARITY_BATCHES = (1, 4)
MIN_RESOLUTION = 32
#: v2/v3: the DFC gate average-pools the last stage's map by 2, so it must be at least 2×2
MIN_RESOLUTION_DFC = 33
#: Sanity ceilings: past these a typo (``--width 100``) would exhaust memory, not build a model.
MAX_WIDTH, MAX_RESOLUTION, MAX_CLASSES, MAX_BATCH = 8.0, 2048, 100_000, 1024
MAX_SEED = 2**32 - 1
OPSET_RANGE = {"torchscript": (13, 20), "dynamo": (18, 23)}

Progress = Callable[[str, str], None]


@dataclass
class BuildResult:
    """What ``build`` returns: the folder it wrote, its manifest, and per-stage timings."""

    folder: Path
    manifest: dict
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def model_path(self) -> Path:
        return self.folder / MODEL_FILE

    @property
    def verdict(self) -> str:
        return self.manifest["artifacts"][MODEL_FILE]["parity"]["verdict"]

    def as_json(self) -> dict:
        return {
            "folder": str(self.folder),
            "model": str(self.model_path),
            "verdict": self.verdict,
            "seconds": {stage: round(value, 3) for stage, value in self.seconds.items()},
            "manifest": self.manifest,
        }


def preprocess_config(resolution: int) -> dict:
    return {
        "resize": math.floor(resolution / DEFAULT_CROP_PCT),
        "crop_pct": DEFAULT_CROP_PCT,
        "interpolation": DEFAULT_INTERPOLATION,
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
    }


def build(
    variant: str | None = None,
    width: float | None = None,
    num_classes: int | None = None,
    checkpoint: str | Path | None = None,
    weights: str | None = None,
    reset_head: bool = False,
    seed: int = 0,
    resolution: int = 224,
    opset: int = DEFAULT_OPSET,
    batch: int | None = None,
    simplifier: str = "onnxsim",
    out: str | Path = "models",
    exporter: str = "torchscript",
    align_channels: int = 0,
    split_concat_convs: bool = False,
    tolerance: Tolerance = FP32_TOLERANCE,
    command: str | None = None,
    progress: Progress | None = None,
) -> BuildResult:
    """Build, export, simplify and gate one GhostNet; return the folder and its manifest.

    ``variant``/``width`` default to the ``weights`` registry entry's, else ghostnet 1.0.
    ``batch=None`` exports a dynamic batch. ``align_channels=16`` (or 8) zero-pads the Ghost
    halves for ORT's NCHWc kernels on x86 (see ``align.py``). Raises ``UsageError`` for unusable input and
    ``GateFailed`` (nothing written) when ONNX Runtime disagrees with PyTorch.
    """
    report = progress or (lambda stage, detail: None)
    started = time.perf_counter()
    if checkpoint is not None and weights is not None:
        raise UsageError("--checkpoint and --weights are exclusive: give a local file or a registry name/URL, not both")
    weights_url, weights_sha256, registry_spec = weights_source(weights) if weights else (None, None, None)
    if registry_spec is not None:
        variant, width = _agree("variant", variant, registry_spec.variant), _agree("width", width, registry_spec.width)
    variant = variant or "ghostnet"
    width = 1.0 if width is None else width
    _validate(variant, width, num_classes, resolution, opset, batch, simplifier, exporter, seed)
    if align_channels not in (0, 8, 16):
        raise UsageError(f"--align-channels {align_channels}: use 16 (AVX-512), 8 (AVX2) or 0 (off)")
    if reset_head and checkpoint is None and weights is None:
        raise UsageError("--reset-head only applies with --checkpoint or --weights: drop it, or give a checkpoint")
    command = command or _library_command(locals())

    with output_root(Path(out)) as root:
        checkpoint_path = download(weights_url, weights_sha256) if weights_url else checkpoint
        state, checkpoint_info, num_classes = _read_checkpoint(checkpoint_path, num_classes, reset_head)
        name = folder_name(variant, width, num_classes, resolution, batch)
        report(
            "model",
            f"{variant} width {width}, {num_classes} classes, {resolution}², "
            f"{'batch ' + str(batch) if batch else 'dynamic batch'} -> {root / name}",
        )
        tick = time.perf_counter()
        fixes: list[str] = []
        model = prepare_model(variant, width, num_classes, seed, state, reset_head, fixes, resolution=resolution)
        if checkpoint_info is not None:
            checkpoint_info["fixes"] = fixes
        report("weights", _weights_line(checkpoint_info, reset_head, seed) + "".join(f"; {fix}" for fix in fixes))
        deploy = deploy_form(model)
        params, macs = count_params(model), count_macs(deploy, resolution)
        deploy_params = count_params(reparameterized(model)) if hasattr(model, "reparameterize") else None
        report(
            "count",
            f"{params:,} params"
            + (f" ({deploy_params:,} re-parameterised)" if deploy_params else "")
            + f", {macs / 1e6:.2f}M MACs at {resolution}²",
        )
        if align_channels:
            deploy = _aligned(deploy, align_channels)
            executed_macs = count_macs(deploy, resolution)
            report(
                "align",
                f"Ghost halves zero-padded to multiples of {align_channels}: {executed_macs / 1e6:.2f}M MACs executed",
            )
        seconds = {"model": time.perf_counter() - tick}

        model_info = {
            "variant": variant,
            "width": width,
            "num_classes": num_classes,
            "resolution": resolution,
            "batch": batch if batch else "dynamic",
            "params": params,
            **({"deploy_params": deploy_params} if deploy_params else {}),
            "macs": macs,
            "checkpoint": checkpoint_info,
            "seed": seed,
            "bn_statistics": getattr(model, "bn_statistics", None),
            "preprocess": preprocess_config(resolution),
        }
        metadata = _metadata(model_info)
        model_bytes, artifact = _export_and_gate(
            model,
            deploy,
            model_info,
            metadata,
            opset,
            exporter,
            simplifier,
            tolerance,
            seconds,
            report,
            split=split_concat_convs,
        )
        artifact["export"]["channel_alignment"] = align_channels or None
        if align_channels:
            artifact["export"]["executed_macs"] = executed_macs
        manifest = new_manifest(command, model_info, {MODEL_FILE: artifact})
        replaced = _previous_build(root / name)
        if replaced is not None:
            manifest["history"] = [*replaced.pop("history"), replaced]
        seconds["total"] = time.perf_counter() - started
        if artifact["parity"]["verdict"] != "pass":
            parity = artifact["parity"]
            reasons = parity["export"]["reasons"] + parity["simplified"]["reasons"]
            raise GateFailed(
                f"parity gate failed, nothing written: {reasons[0]}", BuildResult(root / name, manifest, seconds)
            )

        if replaced is not None:
            report(
                "replace",
                f"{root / name} exists: replacing it, removing {', '.join(replaced['removed_files']) or 'nothing'} "
                "(recorded in the manifest's history)",
            )

        def write(staging: Path) -> None:
            atomic_write_bytes(staging / MODEL_FILE, model_bytes)
            write_manifest(staging, manifest)

        replace_folder(root, name, write)
        write_latest(root, name)
    seconds["total"] = time.perf_counter() - started
    report("write", f"{root / name / MODEL_FILE} ({len(model_bytes) / 1e6:.1f} MB), LATEST -> {name}")
    return BuildResult(root / name, manifest, seconds)


def prepare_model(
    variant: str,
    width: float,
    num_classes: int,
    seed: int,
    state: dict | None = None,
    reset_head: bool = False,
    fixes: list[str] | None = None,
    resolution: int | None = None,
) -> torch.nn.Module:
    """The eval-mode PyTorch model a build exports: seeded init, then the checkpoint if any.

    Without a checkpoint and with a ``resolution``, BatchNorm statistics come from a seeded
    data-dependent pass (``arch.calibrate_batchnorm``), recorded as ``model.bn_statistics``,
    so that a random-init model's answers depend on its input and the gates can fail.
    Later stages call this with the manifest's ``model`` fields to rebuild the reference.
    Checkpoint quirks that were fixed while loading are appended to ``fixes``.
    """
    model = create_model(variant, width, num_classes, seed)
    if state is not None:
        notes = apply_state_dict(model, state, reset_head, hint=lambda: _checkpoint_hint(variant, state, width))
        if fixes is not None:
            fixes.extend(notes)
    elif resolution is not None:
        model.bn_statistics = calibrate_batchnorm(model, resolution, seed)
    return model.eval()


def rebuild_from_manifest(manifest: dict) -> torch.nn.Module:
    """The PyTorch model a build exported, from its manifest: checkpoint (verified) or seed."""
    info = manifest["model"]
    try:
        _validate(
            info["variant"],
            info["width"],
            info["num_classes"],
            info["resolution"],
            DEFAULT_OPSET,
            None,
            "onnxsim",
            "torchscript",
            info["seed"],
        )
    except UsageError as exc:
        raise UsageError(f"the manifest records a model that cannot be rebuilt ({exc}): rebuild the folder") from exc
    state = None
    if info["checkpoint"]:
        path = Path(info["checkpoint"]["path"])
        if not path.is_file():
            raise UsageError(
                f"the checkpoint {path} recorded in the manifest is missing: restore it, or compare with --reference OTHER.onnx"
            )
        if sha256_file(path) != info["checkpoint"]["sha256"]:
            raise UsageError(f"the checkpoint {path} changed since the build (sha256 differs): rebuild the folder")
        state = load_state_dict(path)
    trained = checkpoint_num_classes(state) if state is not None else None
    reset_head = trained is not None and trained != info["num_classes"]
    return prepare_model(
        info["variant"],
        info["width"],
        info["num_classes"],
        info["seed"],
        state,
        reset_head,
        # folders built before data-dependent BN statistics existed rebuild without them
        resolution=info["resolution"] if info.get("bn_statistics") else None,
    )


#: previous builds of a folder kept in its manifest's ``history``
HISTORY_LIMIT = 20


def _previous_build(folder: Path) -> dict | None:
    """What a rebuild of ``folder`` replaces: its files and a summary of its manifest (with its history)."""
    if not folder.is_dir():
        return None
    files = sorted(entry.name for entry in folder.iterdir() if not entry.name.startswith("."))
    try:
        old = read_manifest(folder)
    except UsageError:
        old = {}
    summary = {
        "replaced": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "created": old.get("created"),
        "command": old.get("command"),
        "artifacts": {name: record.get("sha256") for name, record in (old.get("artifacts") or {}).items()},
        "checks": len(old.get("checks") or []),
        "benchmarks": len(old.get("benchmarks") or []),
        "removed_files": files,
    }
    history = old.get("history") if isinstance(old.get("history"), list) else []
    return {**summary, "history": history[-(HISTORY_LIMIT - 1) :]}


def _read_checkpoint(path, num_classes: int | None, reset_head: bool):
    """``(state dict or None, manifest checkpoint record or None, resolved class count)``."""
    if path is None:
        return None, None, num_classes or 1000
    path = Path(path)
    state = load_state_dict(path)
    info = {"path": str(path), "sha256": sha256_file(path)}
    trained_classes = checkpoint_num_classes(state)
    if num_classes is None:
        return state, info, trained_classes or 1000
    if trained_classes is not None and num_classes != trained_classes and not reset_head:
        raise UsageError(
            f"--num-classes {num_classes} differs from the checkpoint's classifier "
            f"({trained_classes} classes): add --reset-head to train a new head, or drop --num-classes"
        )
    return state, info, num_classes


def _weights_line(checkpoint_info: dict | None, reset_head: bool, seed: int) -> str:
    if checkpoint_info is None:
        return f"random init, seed {seed}, BatchNorm statistics from a seeded pass over random images"
    head = f", new classifier head (seed {seed})" if reset_head else ""
    return f"loaded {checkpoint_info['path']} ({checkpoint_info['sha256'][:12]}){head}"


def _export_and_gate(
    model, deploy, model_info, metadata, opset, exporter, simplifier, tolerance, seconds, report, split=False
):
    """Export ``deploy``, gate it, simplify, gate again; return the bytes and the artifact record."""
    resolution, batch, seed = model_info["resolution"], model_info["batch"], model_info["seed"]
    static_batch = batch if isinstance(batch, int) else None
    batches = (static_batch,) if static_batch else PARITY_BATCHES
    samples = math.ceil(max(PARITY_SAMPLES, max(batches)) / max(batches)) * max(batches)
    inputs = random_inputs(samples, resolution, seed)
    with torch.no_grad():
        reference = model(torch.from_numpy(inputs)).numpy()

    tick = time.perf_counter()
    exported = export_onnx(deploy, resolution, static_batch, opset, exporter)
    seconds["export"] = time.perf_counter() - tick
    nodes_exported = len(exported.graph.node)
    report("export", f"{exporter} exporter, opset {opset}: {nodes_exported} nodes ({seconds['export']:.1f} s)")
    tick = time.perf_counter()
    parity_export = _gate(exported.SerializeToString(), reference, inputs, batches, tolerance)
    seconds["parity_export"] = time.perf_counter() - tick
    report("parity", _parity_line("export", parity_export))

    tick = time.perf_counter()
    simplified, split_convs = simplify(exported, simplifier), 0
    if split:
        simplified, split_convs = split_concat_convs(simplified)
    seconds["simplify"] = time.perf_counter() - tick
    set_metadata(simplified, metadata)
    onnx.checker.check_model(simplified, full_check=True)
    model_bytes = simplified.SerializeToString()
    nodes = len(simplified.graph.node)
    report("simplify", f"{simplifier}: {nodes_exported} -> {nodes} nodes ({seconds['simplify']:.1f} s)")
    tick = time.perf_counter()
    parity_final = _gate(model_bytes, reference, inputs, batches, tolerance)
    seconds["parity_simplified"] = time.perf_counter() - tick
    report("parity", _parity_line("simplified", parity_final))

    passed = parity_export["verdict"] == parity_final["verdict"] == "pass"
    warnings = []
    dependence = parity_final.get("input_dependence")
    if dependence is not None and dependence < MIN_INPUT_DEPENDENCE:
        warnings.append(NO_INPUT_DEPENDENCE_WARNING.format(dependence=dependence))
        report("WARNING", warnings[-1])
    artifact = {
        "sha256": hashlib.sha256(model_bytes).hexdigest(),
        "bytes": len(model_bytes),
        "opset": opset,
        "nodes": nodes,
        "parent": None,
        "export": {
            "exporter": exporter,
            "simplifier": simplifier,
            "nodes_exported": nodes_exported,
            "ops": op_counts(simplified),
            "unclean_ops": lint(simplified),
            "bn_folded": True,
            "concat_convs_split": split_convs,
        },
        "parity": {
            "reference": "torch (unfolded, eval)",
            "provider": "CPUExecutionProvider",
            "inputs": f"{samples} standard-normal images, seed {seed}",
            "export": parity_export,
            "simplified": parity_final,
            "tolerance": parity_final["tolerance"],
            "warnings": warnings,
            "verdict": "pass" if passed else "fail",
        },
    }
    return model_bytes, artifact


def _agree(what: str, given, from_weights):
    if given is not None and given != from_weights:
        raise UsageError(
            f"--{what} {given} contradicts the weights, which are for {what} {from_weights}: drop --{what}"
        )
    return from_weights


def _validate(variant, width, num_classes, resolution, opset, batch, simplifier, exporter, seed) -> None:
    if variant not in VARIANTS:
        raise UsageError(f"unknown variant '{variant}': use one of {', '.join(VARIANTS)}")
    if not (isinstance(width, (int, float)) and math.isfinite(width) and 0 < width <= MAX_WIDTH):
        raise UsageError(f"--width must be a number in (0, {MAX_WIDTH:g}], got {width}")
    if num_classes is not None and not 1 <= num_classes <= MAX_CLASSES:
        raise UsageError(f"--num-classes must be between 1 and {MAX_CLASSES:,}, got {num_classes}")
    if not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION:
        raise UsageError(
            f"--resolution must be between {MIN_RESOLUTION} and {MAX_RESOLUTION} (GhostNet downsamples 32×), got {resolution}"
        )
    if variant in ("ghostnetv2", "ghostnetv3") and resolution < MIN_RESOLUTION_DFC:
        raise UsageError(
            f"--resolution {resolution} is too small for {variant}: its DFC attention pools the 1/32-scale map "
            f"by 2, which needs at least {MIN_RESOLUTION_DFC}"
        )
    if batch is not None and not 1 <= batch <= MAX_BATCH:
        raise UsageError(f"--batch must be 'dynamic' or an integer from 1 to {MAX_BATCH}, got {batch}")
    if exporter not in EXPORTERS:
        raise UsageError(f"unknown exporter '{exporter}': use one of {', '.join(EXPORTERS)}")
    low, high = OPSET_RANGE[exporter]
    if not low <= opset <= high:
        raise UsageError(f"--opset {opset} is outside what the {exporter} exporter supports here ({low}–{high})")
    if simplifier not in SIMPLIFIERS:
        raise UsageError(f"unknown simplifier '{simplifier}': use one of {', '.join(SIMPLIFIERS)}")
    if not 0 <= seed <= MAX_SEED:
        raise UsageError(f"--seed must be an integer from 0 to {MAX_SEED}, got {seed}")


def _aligned(deploy: torch.nn.Module, block: int) -> torch.nn.Module:
    from .align import align_channels, can_align

    if not can_align(deploy):
        raise UsageError("--align-channels handles GhostNet v1 (--variant ghostnet) only")
    return align_channels(deploy, block)


def _checkpoint_hint(variant: str, state: dict, width: float) -> str:
    """Name the variant or width the checkpoint looks like (computed only for an error)."""
    keys = list(state)
    looks_like = (
        "ghostnetv3"
        if any("_rpr_" in k for k in keys)
        else "ghostnetv2"
        if any(".short_conv." in k for k in keys)
        else "ghostnet"
        if any(".ghost1.primary_conv." in k for k in keys)
        else None
    )
    if looks_like is None:
        return "is it a GhostNet checkpoint (official or timm layout)?"
    if looks_like != variant:
        return f"the checkpoint looks like {looks_like}: try --variant {looks_like}"
    stem, head = state.get("conv_stem.weight"), state.get("blocks.9.0.conv.weight")
    for candidate in (0.5, 0.75, 1.0, 1.1, 1.3, 1.5, 1.6, 2.0):
        probe = VARIANTS[variant](candidate, 10).state_dict()
        if (
            stem is not None
            and head is not None
            and probe["conv_stem.weight"].shape == stem.shape
            and probe["blocks.9.0.conv.weight"].shape == head.shape
        ):
            if candidate != width:
                return f"the checkpoint looks like width {candidate:g}: try --width {candidate:g}"
            break
    return "check --variant and --width"


def _gate(model_bytes: bytes, reference: np.ndarray, inputs: np.ndarray, batches, tolerance: Tolerance) -> dict:
    session = cpu_session(model_bytes)
    return parity_over_batches(reference, lambda x: run_logits(session, x, len(x)), inputs, batches, tolerance)


def _parity_line(stage: str, result: dict) -> str:
    figures = (
        f"max |Δ| {result['max_abs']:.2e}, min cosine {result['min_cosine']:.7f}"
        + (f", centred cosine {result['centred_cosine']:.7f}" if result.get("centred_cosine") is not None else "")
        if result["max_abs"] is not None
        else "no figures"
    )
    return (
        f"{stage} vs PyTorch at batch {','.join(map(str, result['batches']))}: {figures} -> {result['verdict'].upper()}"
    )


def _metadata(info: dict) -> dict[str, str]:
    """The manifest's model fields that a lone .onnx must carry (metadata_props)."""
    pre = info["preprocess"]
    return {
        "ghostexport.variant": info["variant"],
        "ghostexport.width": f"{info['width']:g}",
        "ghostexport.num_classes": str(info["num_classes"]),
        "ghostexport.resolution": str(info["resolution"]),
        "ghostexport.mean": json.dumps(pre["mean"]),
        "ghostexport.std": json.dumps(pre["std"]),
        "ghostexport.crop_pct": f"{pre['crop_pct']:g}",
        "ghostexport.interpolation": pre["interpolation"],
        "ghostexport.checkpoint_sha256": info["checkpoint"]["sha256"] if info["checkpoint"] else "",
        "ghostexport.seed": str(info["seed"]),
        "ghostexport.version": __version__,
    }


def _library_command(arguments: dict) -> str:
    keys = (
        "variant",
        "width",
        "num_classes",
        "checkpoint",
        "weights",
        "reset_head",
        "seed",
        "resolution",
        "opset",
        "batch",
        "simplifier",
        "exporter",
        "align_channels",
        "split_concat_convs",
    )
    return "ghostexport.build(" + ", ".join(f"{k}={arguments.get(k)!r}" for k in keys) + ")"

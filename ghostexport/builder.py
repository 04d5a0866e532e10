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
from .artifacts import MODEL_FILE, folder_name, output_root, write_latest
from .checkpoint import checkpoint_num_classes, load_state_dict
from .commit import replace_folder
from .counting import count_macs, count_params
from .errors import GateFailed, UsageError
from .export import DEFAULT_OPSET, EXPORTERS, export_onnx, op_counts, set_metadata
from .figures import MIN_INPUT_DEPENDENCE, NO_INPUT_DEPENDENCE_WARNING
from .files import atomic_write_bytes, sha256_file
from .fold import deploy_form, reparameterized
from .graph import split_concat_convs
from .manifest import new_manifest, read_manifest, write_manifest
from .parity import FP32_TOLERANCE, Tolerance, parity_over_batches, random_inputs
from .providers import cpu_session
from .reference import prepare_model, validate_model_spec
from .runtime import run_logits
from .simplify import SIMPLIFIERS, lint, simplify
from .weights import download, weights_source

#: The eval transform published GhostNet weights expect (timm's: bicubic, crop 0.875).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_CROP_PCT = 0.875
DEFAULT_INTERPOLATION = "bicubic"
PARITY_SAMPLES = 8
PARITY_BATCHES = (1, 4)
MAX_BATCH = 1024
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
        try:
            write_latest(root, name)
        except UsageError as exc:  # the folder is committed; LATEST is only a pointer to it
            report("WARNING", f"{root / name} is complete, but {root / 'LATEST'} was not updated: {exc}")
    seconds["total"] = time.perf_counter() - started
    report("write", f"{root / name / MODEL_FILE} ({len(model_bytes) / 1e6:.1f} MB), LATEST -> {name}")
    return BuildResult(root / name, manifest, seconds)


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
    validate_model_spec(variant, width, num_classes, resolution, seed)
    if batch is not None and not 1 <= batch <= MAX_BATCH:
        raise UsageError(f"--batch must be 'dynamic' or an integer from 1 to {MAX_BATCH}, got {batch}")
    if exporter not in EXPORTERS:
        raise UsageError(f"unknown exporter '{exporter}': use one of {', '.join(EXPORTERS)}")
    low, high = OPSET_RANGE[exporter]
    if not low <= opset <= high:
        raise UsageError(f"--opset {opset} is outside what the {exporter} exporter supports here ({low}–{high})")
    if simplifier not in SIMPLIFIERS:
        raise UsageError(f"unknown simplifier '{simplifier}': use one of {', '.join(SIMPLIFIERS)}")


def _aligned(deploy: torch.nn.Module, block: int) -> torch.nn.Module:
    from .align import align_channels, can_align

    if not can_align(deploy):
        raise UsageError("--align-channels handles GhostNet v1 (--variant ghostnet) only")
    return align_channels(deploy, block)


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

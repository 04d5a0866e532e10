"""``build``: GhostNet in PyTorch -> gated, simplified ``model.onnx`` in its artifact folder.

Stages: resolve weights -> build the model -> count -> fold BN -> export -> parity gate ->
simplify -> parity gate again -> write the folder atomically -> ``LATEST``. Either every
file lands together with a manifest that records a passing verdict, or nothing lands.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import onnx
import torch

from ghostexport.base.errors import GateFailed, UsageError
from ghostexport.base.files import atomic_write_bytes, sha256_file
from ghostexport.base.progress import Progress, channel
from ghostexport.evidence.comparison import MIN_INPUT_DEPENDENCE, NO_INPUT_DEPENDENCE_WARNING
from ghostexport.evidence.parity import FP32_TOLERANCE, parity_over_batches, random_inputs
from ghostexport.folder.artifacts import MODEL_FILE
from ghostexport.folder.commit import replace_folder
from ghostexport.folder.manifest import write_manifest
from ghostexport.folder.naming import folder_name, output_root, write_latest
from ghostexport.folder.records import (
    built_artifact_record,
    model_record,
    new_manifest,
    onnx_metadata,
    replaced_build,
    with_history,
)
from ghostexport.folder.reference import prepare_model
from ghostexport.graph import mobile_forms, split_concat_convs
from ghostexport.graph.export import export_onnx, op_counts, set_metadata
from ghostexport.graph.simplify import lint, simplify
from ghostexport.model.checkpoint import checkpoint_num_classes, load_state_dict
from ghostexport.model.counting import count_macs, count_params
from ghostexport.model.fold import deploy_form, reparameterized
from ghostexport.model.weights import download, weights_source
from ghostexport.render.console import count_line, parity_line
from ghostexport.runtime.mobile import mobile_usability, usability_line
from ghostexport.runtime.ort import run_logits
from ghostexport.runtime.providers import cpu_session
from ghostexport.stages.specs import BuildSpec

PARITY_SAMPLES = 8
PARITY_BATCHES = (1, 4)


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


@dataclass
class _Prepared:
    """The PyTorch side of a build: the reference model, its deploy form, and the manifest's model record."""

    model: torch.nn.Module
    deploy: torch.nn.Module
    record: dict
    name: str
    executed_macs: int | None = None


def build(spec: BuildSpec | None = None, progress: Progress | None = None, **fields) -> BuildResult:
    """Build, export, simplify and gate one GhostNet; return the folder and its manifest.

    Takes a ``BuildSpec`` (or its fields as keywords: ``build(width=0.5, resolution=96)``).
    Raises ``UsageError`` for unusable input and ``GateFailed`` (nothing written) when ONNX
    Runtime disagrees with PyTorch.
    """
    spec = (spec or BuildSpec(**fields)).validated()
    say = channel(progress)
    started = time.perf_counter()
    seconds: dict[str, float] = {}
    with output_root(Path(spec.out)) as root:
        prepared = _prepare(spec, root, seconds, say)
        model_bytes, artifact = _export_and_gate(spec, prepared, seconds, say)
        artifact["export"]["channel_alignment"] = spec.align_channels or None
        if prepared.executed_macs is not None:
            artifact["export"]["executed_macs"] = prepared.executed_macs
        replaced = replaced_build(root / prepared.name)
        command = spec.command or spec.library_command()
        manifest = with_history(new_manifest(command, prepared.record, {MODEL_FILE: artifact}), replaced)
        seconds["total"] = time.perf_counter() - started
        result = BuildResult(root / prepared.name, manifest, seconds)
        if artifact["parity"]["verdict"] != "pass":
            parity = artifact["parity"]
            reasons = parity["export"]["reasons"] + parity["simplified"]["reasons"]
            raise GateFailed(f"parity gate failed, nothing written: {reasons[0]}", result)
        _commit(root, prepared.name, model_bytes, manifest, replaced, say)
    seconds["total"] = time.perf_counter() - started
    say("write", f"{result.model_path} ({len(model_bytes) / 1e6:.1f} MB), LATEST -> {prepared.name}")
    return result


def _prepare(spec: BuildSpec, root: Path, seconds: dict, say: Progress) -> _Prepared:
    """Weights, model, counts and (optionally) channel alignment; the manifest's model record."""
    if spec.model is not None:
        return _prepare_custom(spec, root, seconds, say)
    weights_url, weights_sha256, _ = weights_source(spec.weights) if spec.weights else (None, None, None)
    checkpoint_path = download(weights_url, weights_sha256) if weights_url else spec.checkpoint
    state, checkpoint_info, num_classes = _read_checkpoint(checkpoint_path, spec.num_classes, spec.reset_head)
    name = folder_name(spec.variant, spec.width, num_classes, spec.resolution, spec.batch)
    batch = f"batch {spec.batch}" if spec.batch else "dynamic batch"
    say(
        "model",
        f"{spec.variant} width {spec.width}, {num_classes} classes, {spec.resolution}², {batch} -> {root / name}",
    )
    tick = time.perf_counter()
    fixes: list[str] = []
    model = prepare_model(
        spec.variant, spec.width, num_classes, spec.seed, state, spec.reset_head, fixes, resolution=spec.resolution
    )
    if checkpoint_info is not None:
        checkpoint_info["fixes"] = fixes
    say("weights", _weights_line(checkpoint_info, spec.reset_head, spec.seed) + "".join(f"; {fix}" for fix in fixes))
    deploy = deploy_form(model)
    counts = {"params": count_params(model), "macs": count_macs(deploy, spec.resolution)}
    if hasattr(model, "reparameterize"):
        counts["deploy_params"] = count_params(reparameterized(model))
    say("count", count_line(counts, spec.resolution))
    applied = f"channels aligned to {spec.align_channels or 'none'}, Concat split {'on' if spec.split_concat_convs else 'off'}"
    say("target", f"{spec.target}: {applied}")
    executed_macs = None
    if spec.align_channels:
        deploy = _aligned(deploy, spec.align_channels)
        executed_macs = count_macs(deploy, spec.resolution)
        say(
            "align",
            f"Ghost halves zero-padded to multiples of {spec.align_channels}: {executed_macs / 1e6:.2f}M MACs executed",
        )
    seconds["model"] = time.perf_counter() - tick
    record = model_record(spec, num_classes, counts, checkpoint_info, getattr(model, "bn_statistics", None))
    return _Prepared(model, deploy, record, name, executed_macs)


def _prepare_custom(spec: BuildSpec, root: Path, seconds: dict, say: Progress) -> _Prepared:
    """A user's model (``--model``), ghosted or not: the same record, counts and gates as GhostNet's."""
    from ghostexport.folder.naming import custom_folder_name
    from ghostexport.folder.reference import prepare_custom_model

    tick = time.perf_counter()
    checkpoint = download(*weights_source(spec.weights)[:2]) if spec.weights else spec.checkpoint
    name = custom_folder_name(spec.model, spec.ghostify, spec.num_classes, spec.resolution, spec.batch)
    model = prepare_custom_model(spec.model, spec.num_classes, spec.seed, checkpoint, spec.resolution, spec.ghostify)
    with torch.no_grad():
        num_classes = int(model(torch.zeros(1, 3, spec.resolution, spec.resolution)).reshape(1, -1).shape[1])
    info = {"path": str(checkpoint), "sha256": sha256_file(checkpoint), "fixes": []} if checkpoint else None
    ghosted = f", ghosted (s={spec.ghostify['ratio']}, d={spec.ghostify['dw_size']})" if spec.ghostify else ""
    batch = f"batch {spec.batch}" if spec.batch else "dynamic batch"
    say("model", f"{spec.model}{ghosted}, {num_classes} outputs, {spec.resolution}², {batch} -> {root / name}")
    say("weights", _weights_line(info, False, spec.seed))
    counts = {"params": count_params(model), "macs": count_macs(model, spec.resolution)}
    say("count", count_line(counts, spec.resolution))
    say("target", f"{spec.target}: Concat split {'on' if spec.split_concat_convs else 'off'}")
    seconds["model"] = time.perf_counter() - tick
    record = model_record(spec, num_classes, counts, info, getattr(model, "bn_statistics", None))
    return _Prepared(model, deploy_form(model), record, name)


def _commit(root: Path, name: str, model_bytes: bytes, manifest: dict, replaced: dict | None, say: Progress) -> None:
    """The folder lands whole (replacing any previous build), then ``LATEST`` points at it."""
    if replaced is not None:
        removed = ", ".join(replaced["removed_files"]) or "nothing"
        say("replace", f"{root / name} exists: replacing it, removing {removed} (recorded in the manifest's history)")

    def write(staging: Path) -> None:
        atomic_write_bytes(staging / MODEL_FILE, model_bytes)
        write_manifest(staging, manifest)

    replace_folder(root, name, write)
    try:
        write_latest(root, name)
    except UsageError as exc:  # the folder is committed; LATEST is only a pointer to it
        say("WARNING", f"{root / name} is complete, but {root / 'LATEST'} was not updated: {exc}")


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


def _export_and_gate(spec: BuildSpec, prepared: _Prepared, seconds: dict, say: Progress) -> tuple[bytes, dict]:
    """Export the deploy form, gate it, simplify, gate again; return the bytes and the artifact record."""
    tolerance = spec.tolerance or FP32_TOLERANCE
    batches = (spec.batch,) if spec.batch else PARITY_BATCHES
    samples = math.ceil(max(PARITY_SAMPLES, max(batches)) / max(batches)) * max(batches)
    inputs = random_inputs(samples, spec.resolution, spec.seed)
    with torch.no_grad():
        reference = prepared.model(torch.from_numpy(inputs)).numpy()

    def gate(stage: str, model_bytes: bytes) -> dict:
        tick = time.perf_counter()
        session = cpu_session(model_bytes)
        result = parity_over_batches(reference, lambda x: run_logits(session, x, len(x)), inputs, batches, tolerance)
        seconds[f"parity_{stage}"] = time.perf_counter() - tick
        say("parity", parity_line(stage, result))
        return result

    tick = time.perf_counter()
    exported = export_onnx(prepared.deploy, spec.resolution, spec.batch, spec.opset, spec.exporter)
    seconds["export"] = time.perf_counter() - tick
    say(
        "export",
        f"{spec.exporter} exporter, opset {spec.opset}: {len(exported.graph.node)} nodes ({seconds['export']:.1f} s)",
    )
    parity_export = gate("export", exported.SerializeToString())
    tick = time.perf_counter()
    simplified, rewrites = _rewritten(spec, simplify(exported, spec.simplifier))
    seconds["simplify"] = time.perf_counter() - tick
    set_metadata(simplified, onnx_metadata(prepared.record))
    onnx.checker.check_model(simplified, full_check=True)
    model_bytes = simplified.SerializeToString()
    nodes = (len(exported.graph.node), len(simplified.graph.node))
    say("simplify", f"{spec.simplifier}: {nodes[0]} -> {nodes[1]} nodes ({seconds['simplify']:.1f} s)")
    parity_final = gate("simplified", model_bytes)
    export = {
        "exporter": spec.exporter,
        "simplifier": spec.simplifier,
        "nodes_exported": nodes[0],
        "ops": op_counts(simplified),
        "unclean_ops": lint(simplified),
        "bn_folded": "BatchNormalization" not in op_counts(simplified),
        **rewrites,
    }
    parity = _parity_record(parity_export, parity_final, samples, spec.seed, say)
    record = built_artifact_record(model_bytes, spec.opset, nodes[1], export, parity)
    if spec.profile.op_forms == "mobile":
        record["mobile_usability"] = mobile_usability(simplified)
        say("mobile", usability_line(record["mobile_usability"]))
    return model_bytes, record


def _rewritten(spec: BuildSpec, simplified) -> tuple:
    """The exact rewrites the spec asks for after simplification: the Concat split, the mobile op forms."""
    split_convs = 0
    if spec.split_concat_convs:
        simplified, split_convs = split_concat_convs(simplified)
    rewrites = {"concat_convs_split": split_convs}
    if spec.profile.op_forms == "mobile":
        simplified, rewrites["mobile_forms"] = mobile_forms(simplified, spec.batch)
    return simplified, rewrites


def _parity_record(export: dict, simplified: dict, samples: int, seed: int, say: Progress) -> dict:
    """Both gates' figures, the tolerance, a warning where the reference ignores its input, and the verdict."""
    warnings = []
    dependence = simplified.get("input_dependence")
    if dependence is not None and dependence < MIN_INPUT_DEPENDENCE:
        warnings.append(NO_INPUT_DEPENDENCE_WARNING.format(dependence=dependence))
        say("WARNING", warnings[-1])
    return {
        "reference": "torch (unfolded, eval)",
        "provider": "CPUExecutionProvider",
        "inputs": f"{samples} standard-normal images, seed {seed}",
        "export": export,
        "simplified": simplified,
        "tolerance": simplified["tolerance"],
        "warnings": warnings,
        "verdict": "pass" if export["verdict"] == simplified["verdict"] == "pass" else "fail",
    }


def _aligned(deploy: torch.nn.Module, block: int) -> torch.nn.Module:
    from ghostexport.model.align import align_channels, can_align

    if not can_align(deploy):
        raise UsageError("--align-channels handles GhostNet v1 (--variant ghostnet) only")
    return align_channels(deploy, block)

"""The PyTorch reference model: built from its arguments, or rebuilt from a manifest.

A build exports it; ``check`` and ``bench --torch`` (and the tests) compare against it. It
lives apart from the build stage so that those later stages depend on the model, not on
the build.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from ghostexport.base.errors import UsageError
from ghostexport.base.files import sha256_file
from ghostexport.folder.naming import CUSTOM_VARIANT
from ghostexport.model.arch import VARIANTS, calibrate_batchnorm, create_model
from ghostexport.model.checkpoint import apply_state_dict, checkpoint_num_classes, load_state_dict

MIN_RESOLUTION = 32
#: v2/v3: the DFC gate average-pools the last stage's map by 2, so it must be at least 2×2
MIN_RESOLUTION_DFC = 33
#: Sanity ceilings: past these a typo (``--width 100``) would exhaust memory, not build a model.
MAX_WIDTH, MAX_RESOLUTION, MAX_CLASSES = 8.0, 2048, 100_000
MAX_SEED = 2**32 - 1


def validate_model_spec(variant: str, width, num_classes, resolution: int, seed: int) -> None:
    """The model fields a build takes and a manifest records; exit 2 naming the bad one."""
    if variant not in VARIANTS and variant != CUSTOM_VARIANT:
        raise UsageError(f"unknown variant '{variant}': use one of {', '.join(VARIANTS)}")
    if isinstance(width, bool) or not (
        isinstance(width, (int, float)) and math.isfinite(width) and 0 < width <= MAX_WIDTH
    ):
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
    if not 0 <= seed <= MAX_SEED:
        raise UsageError(f"--seed must be an integer from 0 to {MAX_SEED}, got {seed}")


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
        validate_model_spec(info["variant"], info["width"], info["num_classes"], info["resolution"], info["seed"])
    except UsageError as exc:
        raise UsageError(f"the manifest records a model that cannot be rebuilt ({exc}): rebuild the folder") from exc
    if info["variant"] == CUSTOM_VARIANT:
        return _rebuild_custom(info)
    state = None
    if info["checkpoint"]:
        path = _recorded_checkpoint(info)
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


def _recorded_checkpoint(info: dict) -> Path:
    """The manifest's checkpoint, verified to be the file the build read."""
    path = Path(info["checkpoint"]["path"])
    if not path.is_file():
        raise UsageError(
            f"the checkpoint {path} recorded in the manifest is missing: restore it, or compare with --reference OTHER.onnx"
        )
    if sha256_file(path) != info["checkpoint"]["sha256"]:
        raise UsageError(f"the checkpoint {path} changed since the build (sha256 differs): rebuild the folder")
    return path


def _rebuild_custom(info: dict) -> torch.nn.Module:
    source = info.get("source") or {}
    if not isinstance(source.get("model"), str):
        raise UsageError("the manifest records a custom model without its source: rebuild the folder")
    from ghostexport.model.sources import require_trusted

    require_trusted(source["model"], "the folder's manifest")
    checkpoint = _recorded_checkpoint(info) if info["checkpoint"] else None
    return prepare_custom_model(
        source["model"], source.get("num_classes"), info["seed"], checkpoint, info["resolution"], source.get("ghostify")
    )


def prepare_custom_model(
    name: str,
    num_classes: int | None,
    seed: int,
    checkpoint: str | Path | None,
    resolution: int,
    ghostify: dict | None = None,
) -> torch.nn.Module:
    """A user's model (``sources``), ghosted by the recorded rule, with its checkpoint or seeded BN statistics.

    Loading is strict: every tensor of the checkpoint must fit the model, so a checkpoint for
    another model or class count is refused here rather than exported half-loaded.
    """
    from ghostexport.model.sources import create_user_model

    model = create_user_model(name, num_classes, seed)
    if ghostify is not None:
        from ghostexport.model.ghost.rule import GhostRule, ghostify_model

        model = ghostify_model(model, GhostRule.from_dict(ghostify), warm_start=checkpoint is None)[0]
    if checkpoint is not None:
        state = load_state_dict(checkpoint)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[1 if len(str(exc).splitlines()) > 1 else 0].strip()
            raise UsageError(
                f"the checkpoint {checkpoint} does not fit {name}{' (ghosted)' if ghostify else ''}: {first} — "
                "check the model name and --num-classes"
            ) from None
    else:
        model.bn_statistics = calibrate_batchnorm(model, resolution, seed)
    return model.eval()


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

"""Reading checkpoints safely and fitting them onto a model, with errors that say what to do.

Only tensors are ever unpickled (``torch.load(weights_only=True)``) or read from
safetensors: a checkpoint is data, and a file that tries to run code is refused.
"""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import nn

from ghostexport.base.errors import UsageError

#: Wrappers that training scripts put around the state dict, tried in this order.
WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "state_dict_ema")
CLASSIFIER_PREFIX = "classifier."
MAX_OFFENDERS = 4


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint file into a flat ``{key: tensor}`` dict.

    Accepts a raw state dict, one wrapped under a key of ``WRAPPER_KEYS``, keys prefixed
    with ``module.`` (DataParallel/DDP), and ``.safetensors`` files.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"checkpoint {path} does not exist (or is not a file): check the path")
    raw = _load_safetensors(path) if path.suffix == ".safetensors" else _load_torch(path)
    state = _unwrap(raw, path)
    if state and all(key.startswith("module.") for key in state):
        state = {key[len("module.") :]: value for key, value in state.items()}
    return state


def _load_safetensors(path: Path) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise UsageError(f"checkpoint {path} is not a readable safetensors file ({_first_line(exc)})") from exc


#: checkpoint limits: torch.save stores tensors uncompressed, so a zip whose members expand
#: far beyond the file is not one of its checkpoints but a decompression bomb
MAX_CHECKPOINT_BYTES = 8 * 1024**3
MAX_EXPANSION = 4.0
EXPANSION_SLACK = 64 * 1024**2


def _load_torch(path: Path) -> object:
    with open(path, "rb") as handle:
        magic = handle.read(2)
    if magic != b"PK" and magic[:1] != b"\x80":  # neither torch's zip format nor a pickle
        raise UsageError(
            f"checkpoint {path} is not a readable PyTorch file (no zip or pickle header): is it of another format?"
        )
    if magic == b"PK":
        _check_zip(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pickle-protocol notices from the safe unpickler
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UsageError(
            f"refused to load {path}: it holds Python objects other than tensors, and loading "
            "it could run code; re-save only the weights with torch.save(model.state_dict(), path)"
        ) from exc
    except (RuntimeError, EOFError, OSError, ValueError, AttributeError) as exc:
        raise UsageError(
            f"checkpoint {path} is not a readable PyTorch file ({_first_line(exc)}): "
            "is it truncated or of another format?"
        ) from exc


def _check_zip(path: Path) -> None:
    """Refuse a zip that would expand past its size budget or whose CRCs do not match, before loading."""
    import zipfile

    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            expanded = sum(member.file_size for member in members)
            if expanded > min(MAX_CHECKPOINT_BYTES, MAX_EXPANSION * size + EXPANSION_SLACK):
                raise UsageError(
                    f"checkpoint {path} would expand from {size:,} to {expanded:,} bytes: "
                    "not a PyTorch checkpoint (torch.save does not compress); re-save it"
                )
            damaged = archive.testzip()  # reads every member and checks its CRC
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
        raise UsageError(
            f"checkpoint {path} is not a readable PyTorch file (damaged zip: {_first_line(exc)}): re-download or re-save it"
        ) from exc
    if damaged is not None:
        raise UsageError(f"checkpoint {path} is damaged ({damaged} fails its CRC check): re-download or re-save it")


def _unwrap(raw: object, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(raw, Mapping):
        for key in WRAPPER_KEYS:
            if isinstance(raw.get(key), Mapping):
                raw = raw[key]
                break
    if not isinstance(raw, Mapping) or not raw:
        raise UsageError(
            f"checkpoint {path} holds {_describe(raw)}, not a state dict: save "
            "model.state_dict() (optionally under 'state_dict' or 'model')"
        )
    not_tensors = [str(k) for k, v in raw.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise UsageError(
            f"checkpoint {path} is not a state dict: entries {_listing(not_tensors)} are not "
            "tensors; save model.state_dict()"
        )
    return {str(k): v for k, v in raw.items()}


def checkpoint_num_classes(state: Mapping[str, torch.Tensor]) -> int | None:
    """The class count the checkpoint's classifier was trained for, if it has one."""
    weight = state.get(CLASSIFIER_PREFIX + "weight")
    return int(weight.shape[0]) if weight is not None and weight.ndim == 2 else None


PROFILER_SUFFIXES = ("total_ops", "total_params")


def known_quirks(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]) -> tuple[dict, list[str]]:
    """Fix the known, harmless deviations of published checkpoints; say what was fixed.

    * ``total_ops``/``total_params`` buffers that the thop profiler leaves in some GhostNetV2
      checkpoints: dropped.
    * ``.bn.`` where the model has ``.bn1.`` (older GhostNetV3 files name the BN of every
      re-parameterisable conv branch ``bn``): renamed, only where the renamed key is expected.

    Anything else still has to match exactly (the caller loads with ``strict=True``).
    """
    notes = []
    counters = [k for k in state if k.rsplit(".", 1)[-1] in PROFILER_SUFFIXES and k not in expected]
    if counters:
        state = {k: v for k, v in state.items() if k not in set(counters)}
        notes.append(f"dropped {len(counters)} profiler counters (total_ops/total_params, left by thop)")
    renames = {k: k.replace(".bn.", ".bn1.") for k in state if ".bn." in k and k not in expected}
    renames = {old: new for old, new in renames.items() if new in expected and new not in state}
    if renames:
        state = {renames.get(k, k): v for k, v in state.items()}
        notes.append(f"renamed {len(renames)} keys from '.bn.' to '.bn1.' (older GhostNetV3 naming)")
    return dict(state), notes


def apply_state_dict(
    model: nn.Module, state: Mapping[str, torch.Tensor], reset_head: bool, hint: Callable[[], str] | str = ""
) -> list[str]:
    """Load ``state`` strictly; with ``reset_head`` the model keeps its own new classifier.

    Known checkpoint quirks are fixed first and returned as notes (for the output and the
    manifest). Every remaining mismatch is collected so the error names the first few
    offenders of each kind (missing, unexpected, wrong shape) with what the model expected.
    """
    expected = model.state_dict()
    state, notes = known_quirks(state, expected)
    if reset_head:
        state = {k: v for k, v in state.items() if not k.startswith(CLASSIFIER_PREFIX)}
        expected = {k: v for k, v in expected.items() if not k.startswith(CLASSIFIER_PREFIX)}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong_shape = [
        f"{k} {list(state[k].shape)} (model expects {list(expected[k].shape)})"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys: {_listing(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys: {_listing(unexpected)}")
    if wrong_shape:
        problems.append(f"{len(wrong_shape)} shape mismatches: {_listing(wrong_shape)}")
    if problems:
        hint = hint() if callable(hint) else hint
        raise UsageError("checkpoint does not fit the model: " + "; ".join(problems) + (f"; {hint}" if hint else ""))
    model.load_state_dict(state, strict=not reset_head)
    return notes


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:MAX_OFFENDERS])
    return shown + (f", … (+{len(items) - MAX_OFFENDERS})" if len(items) > MAX_OFFENDERS else "")


def _describe(raw: object) -> str:
    if isinstance(raw, Mapping):
        return "an empty dict"
    if isinstance(raw, torch.Tensor):
        return f"a single tensor of shape {list(raw.shape)}"
    return f"a {type(raw).__name__}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:160] if text else type(exc).__name__

"""Checkpoint loading: every accepted layout, and every bad file refused with exit 2."""

from __future__ import annotations

import pickle

import pytest
import torch
from safetensors.torch import save_file

from ghostexport.base.errors import UsageError
from ghostexport.model.arch import create_model
from ghostexport.model.checkpoint import apply_state_dict, checkpoint_num_classes, load_state_dict

from .conftest import SMALL, run_cli, visible_entries


@pytest.fixture(scope="module")
def trained_state():
    return create_model("ghostnet", 0.5, 10, seed=7).state_dict()


@pytest.mark.parametrize("layout", ["raw", "state_dict", "model", "module_prefix", "safetensors"])
def test_accepted_layouts_load_strictly(layout, trained_state, tmp_path):
    if layout == "safetensors":
        path = tmp_path / "weights.safetensors"
        save_file({k: v.contiguous() for k, v in trained_state.items()}, str(path))
    else:
        payload = {
            "raw": trained_state,
            "state_dict": {"state_dict": trained_state, "epoch": 3},
            "model": {"model": trained_state, "optimizer": {}},
            "module_prefix": {f"module.{k}": v for k, v in trained_state.items()},
        }[layout]
        path = tmp_path / "weights.pth"
        torch.save(payload, path)
    state = load_state_dict(path)
    assert checkpoint_num_classes(state) == 10
    model = create_model("ghostnet", 0.5, 10, seed=99)
    apply_state_dict(model, state, reset_head=False)
    for key, value in trained_state.items():
        assert torch.equal(model.state_dict()[key], value), key


def test_wrong_shapes_name_offenders_and_the_width(trained_state):
    model = create_model("ghostnet", 1.0, 10, seed=0)
    with pytest.raises(UsageError) as info:
        apply_state_dict(model, trained_state, reset_head=False)
    message = str(info.value)
    assert "shape mismatches" in message and "conv_stem.weight [8, 3, 3, 3]" in message
    assert "model expects [16, 3, 3, 3]" in message


def test_missing_and_unexpected_keys_are_listed(trained_state):
    state = dict(trained_state)
    state["extra.weight"] = torch.zeros(1)
    del state["conv_head.bias"]
    with pytest.raises(UsageError, match=r"1 missing keys: conv_head.bias; 1 unexpected keys: extra.weight"):
        apply_state_dict(create_model("ghostnet", 0.5, 10, seed=0), state, reset_head=False)


class _RunsCode:
    """A pickle payload that would create a file if unpickled without weights_only."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _write_bad(kind: str, path, tmp_path, trained_state):
    if kind == "corrupt":
        torch.save(trained_state, path)
        path.write_bytes(path.read_bytes()[:5000])
    elif kind == "garbage":
        path.write_bytes(b"\x00not a checkpoint at all" * 10)
    elif kind == "list":
        torch.save([1, 2, 3], path)
    elif kind == "tensor":
        torch.save(torch.zeros(3), path)
    elif kind == "nested_non_tensor":
        torch.save({"conv_stem.weight": torch.zeros(1), "note": "hello"}, path)
    elif kind == "code":
        with open(path, "wb") as handle:
            pickle.dump({"state_dict": _RunsCode(tmp_path / "pwned")}, handle)
    elif kind == "wrong_keys":
        torch.save({k.replace("blocks.", "features."): v for k, v in trained_state.items()}, path)
    elif kind == "bad_safetensors":
        path.write_bytes(b"{broken")


@pytest.mark.parametrize(
    "kind, suffix, expected",
    [
        ("corrupt", ".pth", "not a readable PyTorch file"),
        ("garbage", ".pth", "not a readable PyTorch file"),
        ("list", ".pth", "holds a list, not a state dict"),
        ("tensor", ".pth", "holds a single tensor"),
        ("nested_non_tensor", ".pth", "entries note are not tensors"),
        ("code", ".pth", "refused to load"),
        ("bad_safetensors", ".safetensors", "not a readable safetensors file"),
    ],
)
def test_bad_files_are_refused(kind, suffix, expected, tmp_path, trained_state):
    path = tmp_path / f"bad{suffix}"
    _write_bad(kind, path, tmp_path, trained_state)
    with pytest.raises(UsageError, match=expected):
        load_state_dict(path)
    assert not (tmp_path / "pwned").exists()  # the payload never ran


@pytest.mark.parametrize("kind", ["corrupt", "code", "list", "wrong_keys"])
def test_cli_bad_checkpoint_exit_2_and_nothing_written(kind, tmp_path, trained_state):
    bad = tmp_path / "bad.pth"
    _write_bad(kind, bad, tmp_path, trained_state)
    out = tmp_path / "models"
    result = run_cli("build", *SMALL, "--checkpoint", str(bad), "--out", str(out))
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ")
    if kind == "wrong_keys":
        assert "missing keys: blocks.0.0.ghost1" in lines[0] and "unexpected keys: features.0.0" in lines[0]
    else:
        assert str(bad) in lines[0]
    assert not out.exists()  # not even the --out folder it would have created
    assert not (tmp_path / "pwned").exists()


def test_cli_wrong_width_checkpoint_suggests_the_right_width(tmp_path, trained_state):
    path = tmp_path / "w050.pth"
    torch.save(trained_state, path)
    result = run_cli(
        "build", "--width", "1.0", "--resolution", "64", "--checkpoint", str(path), "--out", str(tmp_path / "m")
    )
    assert result.returncode == 2
    assert "shape mismatches" in result.stderr and "try --width 0.5" in result.stderr


def test_cli_num_classes_needs_reset_head(tmp_path, trained_state):
    path = tmp_path / "c10.pth"
    torch.save(trained_state, path)
    out = tmp_path / "m"
    refused = run_cli("build", *SMALL, "--checkpoint", str(path), "--num-classes", "5", "--out", str(out))
    assert refused.returncode == 2 and "--reset-head" in refused.stderr
    assert visible_entries(out) == []
    reset = run_cli("build", *SMALL, "--checkpoint", str(path), "--num-classes", "5", "--reset-head", "--out", str(out))
    assert reset.returncode == 0, reset.stderr
    assert (out / "ghostnet_050-c5-r64" / "model.onnx").is_file()


def test_cli_checkpoint_and_weights_are_exclusive(tmp_path, trained_state):
    path = tmp_path / "c.pth"
    torch.save(trained_state, path)
    result = run_cli(
        "build", *SMALL, "--checkpoint", str(path), "--weights", "ghostnet_100.in1k", "--out", str(tmp_path)
    )
    assert result.returncode == 2 and "exclusive" in result.stderr


def test_cli_missing_checkpoint(tmp_path):
    result = run_cli("build", *SMALL, "--checkpoint", str(tmp_path / "nope.pth"), "--out", str(tmp_path / "m"))
    assert result.returncode == 2 and "does not exist" in result.stderr

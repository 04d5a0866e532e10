"""--align-channels: zero-padded Ghost halves compute exactly the same function."""

from __future__ import annotations

import json

import onnx
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ghostexport.model.align import align_channels, ghost_layout
from ghostexport.model.arch import create_model
from ghostexport.model.fold import deploy_form

from .conftest import SMALL, run_cli


@settings(max_examples=4, deadline=None)
@given(width=st.sampled_from([0.25, 0.5, 0.75, 1.0, 1.3]), block=st.sampled_from([8, 16]), classes=st.integers(2, 30))
def test_aligned_model_equals_the_original(width, block, classes):
    model = create_model("ghostnet", width, classes, seed=2)
    aligned = align_channels(deploy_form(model), block)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(aligned(x), model(x), atol=1e-5, rtol=1e-4)
    ghost_convs = [m for name, m in aligned.named_modules() if name.endswith(("primary_conv.0", "cheap_operation.0"))]
    assert all(conv.out_channels % block == 0 for conv in ghost_convs)


def test_ghost_layout_pads_each_half():
    positions, width = ghost_layout(72, 16)
    assert width == 96 and positions[:36] == list(range(36)) and positions[36:] == list(range(48, 84))


def test_cli_align_channels_records_and_gates(tmp_path):
    result = run_cli("build", *SMALL, "--align-channels", "16", "--out", str(tmp_path), "--json", "-")
    assert result.returncode == 0, result.stderr
    artifact = json.loads(result.stdout)["manifest"]["artifacts"]["model.onnx"]
    assert artifact["parity"]["verdict"] == "pass"
    assert artifact["export"]["channel_alignment"] == 16
    assert artifact["export"]["executed_macs"] > json.loads(result.stdout)["manifest"]["model"]["macs"]
    graph = onnx.load(str(tmp_path / "ghostnet_050-r64" / "model.onnx")).graph
    weights = {init.name: init for init in graph.initializer}
    concat_inputs = [n for n in graph.node if n.op_type == "Conv" and n.name.endswith("primary_conv.0/Conv")]
    assert all(weights[n.input[1]].dims[0] % 16 == 0 for n in concat_inputs)


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--variant", "ghostnetv2", "--align-channels", "16"], "GhostNet v1 (--variant ghostnet) only"),
        (["--align-channels", "12"], "is not one of"),
    ],
)
def test_align_channels_refusals(args, expected, tmp_path):
    result = run_cli("build", *SMALL, *args, "--out", str(tmp_path / "m"))
    assert result.returncode == 2 and expected in result.stderr

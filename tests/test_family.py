"""The GhostNet family beyond v1: GhostNetV2 (DFC attention) counts, layout, export, quantize, check."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from ghostexport.arch import VARIANTS
from ghostexport.counting import count_macs, count_params
from ghostexport.fold import fold_batchnorm

from .conftest import REFERENCE, load_json, run_cli


def reference_state(variant_file: str, seed: int = 11) -> dict[str, torch.Tensor]:
    """A checkpoint built from a reference TSV alone (keys and shapes), no model code involved."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for row in (REFERENCE / variant_file).read_text().splitlines()[1:]:
        key, shape = row.split("\t")
        dims = json.loads(shape)
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(100)
        elif key.endswith("running_var"):
            state[key] = torch.rand(dims, generator=generator) + 0.5
        else:
            state[key] = torch.randn(dims, generator=generator) * 0.1
    return state


@pytest.mark.parametrize("width, name", [(1.0, "ghostnetv2_100"), (1.3, "ghostnetv2_130"), (1.6, "ghostnetv2_160")])
def test_v2_counts_match_reference(width, name):
    facts = json.loads((REFERENCE / "ghostnet_family_facts.json").read_text())[name]
    model = VARIANTS["ghostnetv2"](width, 1000)
    assert count_params(model) == facts["params"]
    assert count_macs(fold_batchnorm(model), 224) == facts["macs_224_conv_fc"]
    assert len(model.state_dict()) == facts["state_dict_entries"]


def test_v2_key_layout_matches_timm():
    rows = (REFERENCE / "ghostnetv2_100_state_dict.tsv").read_text().splitlines()[1:]
    expected = [tuple(row.split("\t")) for row in rows]
    actual = [(key, str(list(value.shape))) for key, value in VARIANTS["ghostnetv2"](1.0, 1000).state_dict().items()]
    assert actual == expected


def test_cli_variant_names_match_the_registry():
    from ghostexport.cli import VARIANT_NAMES

    assert tuple(VARIANTS) == VARIANT_NAMES


def test_v2_reference_checkpoint_exports_within_fp32_tolerance(tmp_path):
    state = reference_state("ghostnetv2_100_state_dict.tsv")
    checkpoint = tmp_path / "ghostnetv2_100.pth"
    torch.save({"state_dict": state}, checkpoint)
    out = tmp_path / "models"
    result = run_cli(
        "build",
        "--variant",
        "ghostnetv2",
        "--resolution",
        "96",
        "--checkpoint",
        str(checkpoint),
        "--out",
        str(out),
        "--json",
        str(tmp_path / "r.json"),
    )
    assert result.returncode == 0, result.stderr
    folder = out / "ghostnetv2_100-r96"
    parity = load_json(tmp_path / "r.json")["manifest"]["artifacts"]["model.onnx"]["parity"]
    assert parity["verdict"] == "pass" and parity["simplified"]["batches"] == [1, 4]
    ops = {node.op_type for node in onnx.load(str(folder / "model.onnx")).graph.node}
    assert {"AveragePool", "Sigmoid", "Resize"} <= ops  # the DFC attention branch is in the graph
    model = VARIANTS["ghostnetv2"](1.0, 1000)
    model.load_state_dict(state, strict=True)
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    for batch in (1, 4):
        x = np.random.default_rng(batch).standard_normal((batch, 3, 96, 96), dtype=np.float32)
        with torch.no_grad():
            expected = model.eval()(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(session.run(None, {"input": x})[0], expected, atol=1e-4, rtol=1e-3)


def test_v2_quantize_and_check(tmp_path):
    out = tmp_path / "models"
    assert (
        run_cli(
            "build", "--variant", "ghostnetv2", "--width", "0.5", "--resolution", "64", "--out", str(out)
        ).returncode
        == 0
    )
    folder = out / "ghostnetv2_050-r64"
    assert run_cli("quantize", str(folder), "--no-baseline").returncode == 0
    assert run_cli("quantize", str(folder), "--mode", "fp16").returncode == 0
    result = run_cli("check", str(folder), "--json", "-")
    assert result.returncode == 0, result.stderr
    verdicts = {r["artifact"]: r["verdict"] for r in json.loads(result.stdout)["results"]}
    assert verdicts == {"model.onnx": "pass", "model.int8.onnx": "reported", "model.fp16.onnx": "reported"}
    shutil.rmtree(out)

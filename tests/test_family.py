"""The GhostNet family beyond v1: GhostNetV2 (DFC attention) counts, layout, export, quantize, check."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from ghostexport.model.arch import VARIANTS
from ghostexport.model.counting import count_macs, count_params
from ghostexport.model.fold import fold_batchnorm

from .conftest import REFERENCE, SMALL, reference_state, run_cli


def small_build_of(variant: str, out) -> Path:
    """A width-0.5, 64² build of VARIANT (random weights), asserted to succeed; its folder."""
    assert run_cli("build", "--variant", variant, *SMALL, "--out", str(out)).returncode == 0
    return out / f"{variant}_050-r64"


def build_with_checkpoint(variant: str, checkpoint, out, *options: str):
    """``ghostexport build --variant VARIANT [OPTIONS] --checkpoint FILE --out OUT --json -``."""
    return run_cli(
        "build", "--variant", variant, *options, "--checkpoint", str(checkpoint), "--out", str(out), "--json", "-"
    )


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


def test_cli_variant_names_are_the_registry():
    """The CLI's --variant choices are the registry's keys (read without importing torch)."""
    from ghostexport.base.choices import VARIANT_NAMES
    from ghostexport.stages.specs import BuildSpec, choices_of

    assert tuple(VARIANTS) == VARIANT_NAMES == choices_of(BuildSpec, "variant")


@pytest.mark.slow  # v3 covers the family by default; CI runs the slow suite too
def test_v2_reference_checkpoint_exports_within_fp32_tolerance(tmp_path):
    state = reference_state("ghostnetv2_100_state_dict.tsv")
    checkpoint = tmp_path / "ghostnetv2_100.pth"
    torch.save({"state_dict": state}, checkpoint)
    out = tmp_path / "models"
    result = build_with_checkpoint("ghostnetv2", checkpoint, out, "--resolution", "96")
    assert result.returncode == 0, result.stderr
    folder = out / "ghostnetv2_100-r96"
    parity = json.loads(result.stdout)["manifest"]["artifacts"]["model.onnx"]["parity"]
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


@pytest.mark.slow  # full quantize + check round; CI runs the slow suite too
def test_v2_quantize_and_check(tmp_path):
    folder = small_build_of("ghostnetv2", tmp_path / "models")
    assert run_cli("quantize", str(folder), "--no-baseline").returncode == 0
    assert run_cli("quantize", str(folder), "--mode", "fp16").returncode == 0
    result = run_cli("check", str(folder), "--json", "-")
    assert result.returncode == 0, result.stderr
    verdicts = {r["artifact"]: r["verdict"] for r in json.loads(result.stdout)["results"]}
    assert verdicts == {"model.onnx": "pass", "model.int8.onnx": "reported", "model.fp16.onnx": "reported"}
    shutil.rmtree(folder.parent)


@pytest.mark.parametrize(
    "width, name", [(0.5, "ghostnetv3_050"), (1.0, "ghostnetv3_100"), (1.3, "ghostnetv3_130"), (1.6, "ghostnetv3_160")]
)
def test_v3_training_and_deploy_counts_match_reference(width, name):
    from ghostexport.model.fold import reparameterized

    facts = json.loads((REFERENCE / "ghostnet_family_facts.json").read_text())[name]
    model = VARIANTS["ghostnetv3"](width, 1000).eval()
    assert count_params(model) == facts["params"] and len(model.state_dict()) == facts["state_dict_entries"]
    assert count_macs(fold_batchnorm(model), 224) == facts["macs_224_conv_fc"]
    deploy = reparameterized(model)
    assert count_params(deploy) == facts["deploy_params"]
    assert count_macs(fold_batchnorm(deploy), 224) == facts["deploy_macs_224_conv_fc"]


def test_v3_key_layout_matches_timm():
    rows = (REFERENCE / "ghostnetv3_100_state_dict.tsv").read_text().splitlines()[1:]
    expected = [tuple(row.split("\t")) for row in rows]
    actual = [(key, str(list(value.shape))) for key, value in VARIANTS["ghostnetv3"](1.0, 1000).state_dict().items()]
    assert actual == expected


def test_v3_deploy_form_equals_training_form():
    from ghostexport.model.arch import create_model
    from ghostexport.model.fold import deploy_form

    model = create_model("ghostnetv3", 0.5, 10, seed=3)
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(deploy_form(model)(x), model(x), atol=1e-5, rtol=1e-4)


def test_v3_reference_checkpoint_exports_its_deploy_form(tmp_path):
    state = reference_state("ghostnetv3_100_state_dict.tsv", seed=5)
    for key in list(state):  # branch sums of random 0.1-scale weights: keep activations tame
        if key.endswith(("bn1.weight", "cheap_rpr_skip.weight")) and "_rpr_" in key:
            state[key] = state[key] * 0.3
    checkpoint = tmp_path / "ghostnetv3_100.pth"
    torch.save(state, checkpoint)
    out = tmp_path / "models"
    result = build_with_checkpoint("ghostnetv3", checkpoint, out, "--resolution", "96", "--no-split-concat-convs")
    assert result.returncode == 0, result.stderr
    manifest = json.loads(result.stdout)["manifest"]
    assert manifest["model"]["params"] == 8_129_028 and manifest["model"]["deploy_params"] == 6_147_588
    assert manifest["artifacts"]["model.onnx"]["parity"]["verdict"] == "pass"
    graph = onnx.load(str(out / "ghostnetv3_100-r96" / "model.onnx")).graph
    assert not [node.name for node in graph.node if "_rpr_" in node.name]  # no training branches
    assert sum(node.op_type == "Conv" for node in graph.node) == 137  # GhostNetV2's deploy structure


@pytest.mark.slow  # full quantize + check round; CI runs the slow suite too
def test_v3_quantize_and_check(tmp_path):
    folder = small_build_of("ghostnetv3", tmp_path / "models")
    assert run_cli("quantize", str(folder), "--no-baseline").returncode == 0
    result = run_cli("check", str(folder), "--localize", "--json", "-")
    assert result.returncode == 0, result.stderr
    entries = json.loads(result.stdout)["results"]
    assert entries[0]["verdict"] == "pass" and entries[0]["localize"]["first_divergence"] is None
    assert entries[0]["localize"]["compared"] > 100  # torch module scopes match the deploy graph


@pytest.mark.slow  # three builds from quirky checkpoints; CI runs the slow suite too
def test_checkpoint_quirks_are_fixed_and_reported(tmp_path):
    from ghostexport.model.arch import create_model

    v2 = create_model("ghostnetv2", 0.5, 10, seed=1).state_dict()
    v2 = {**v2, "total_ops": torch.zeros(1), "blocks.0.0.total_params": torch.zeros(1)}
    torch.save({"state_dict": v2}, tmp_path / "v2.pth")
    result = build_with_checkpoint("ghostnetv2", tmp_path / "v2.pth", tmp_path / "a", *SMALL)
    assert result.returncode == 0, result.stderr
    fixes = json.loads(result.stdout)["manifest"]["model"]["checkpoint"]["fixes"]
    assert fixes == ["dropped 2 profiler counters (total_ops/total_params, left by thop)"]

    v3 = create_model("ghostnetv3", 0.5, 10, seed=1).state_dict()
    old_style = {k.replace(".bn1.", ".bn.") if "_rpr_" in k else k: v for k, v in v3.items()}
    torch.save(old_style, tmp_path / "v3.pth")
    result = build_with_checkpoint("ghostnetv3", tmp_path / "v3.pth", tmp_path / "b", *SMALL)
    assert result.returncode == 0, result.stderr
    fixes = json.loads(result.stdout)["manifest"]["model"]["checkpoint"]["fixes"]
    assert len(fixes) == 1 and fixes[0].startswith("renamed ") and "'.bn.' to '.bn1.'" in fixes[0]
    assert fixes[0].endswith("(older GhostNetV3 naming)")
    assert "older GhostNetV3 naming" in result.stderr  # said on the console too, not only recorded


def test_wrong_variant_checkpoint_names_the_right_one(tmp_path):
    from ghostexport.model.arch import create_model

    torch.save(create_model("ghostnetv3", 0.5, 10, seed=1).state_dict(), tmp_path / "v3.pth")
    result = build_with_checkpoint("ghostnetv2", tmp_path / "v3.pth", tmp_path / "m", *SMALL)
    assert result.returncode == 2 and "try --variant ghostnetv3" in result.stderr


def test_info_on_a_build_folder_and_a_foreign_onnx(tmp_path):
    folder = small_build_of("ghostnetv3", tmp_path / "models")
    described = json.loads(run_cli("info", str(folder), "--json", "-").stdout)
    manifest = described["manifest"]
    assert manifest["model"]["variant"] == "ghostnetv3" and manifest["model"]["deploy_params"] > 0
    assert manifest["artifacts"]["model.onnx"]["verdict"] == "pass"
    assert described["opset"] == 17 and described["inputs"][0]["shape"] == ["batch", 3, 64, 64]
    assert described["ops"]["Resize"] == 14 and described["metadata"]["ghostexport.variant"] == "ghostnetv3"
    foreign = tmp_path / "lone.onnx"
    model = onnx.load(str(folder / "model.onnx"))
    del model.metadata_props[:]
    onnx.save(model, str(foreign))
    lone = run_cli("info", str(foreign), "--json", "-")
    assert lone.returncode == 0
    payload = json.loads(lone.stdout)
    assert payload["manifest"] is None and payload["initializer_elements"] > 1_000_000 and payload["nodes"] > 300

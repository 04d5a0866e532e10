"""``ghostexport check``: real sessions on the CPU provider for every path, via the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from ghostexport.base.files import sha256_file

from .conftest import SMALL, load_json, run_cli

PERTURBED_NODE = "/blocks/blocks.4/blocks.4.0/ghost1/primary_conv/primary_conv.0/Conv"


@pytest.fixture()
def folder_copy(quantized_build, tmp_path) -> Path:
    return Path(shutil.copytree(quantized_build, tmp_path / quantized_build.name))


def perturb(path: Path, node_name: str, factor: float = 1.5, value: float | None = None) -> None:
    """Scale (or overwrite) the weight of one Conv in an ONNX file."""
    model = onnx.load(str(path))
    node = next(n for n in model.graph.node if n.name == node_name)
    init = next(i for i in model.graph.initializer if i.name == node.input[1])
    weights = numpy_helper.to_array(init).copy()
    if value is None:
        weights[0] *= factor
    else:
        weights[0, 0] = value
    init.CopyFrom(numpy_helper.from_array(weights, init.name))
    onnx.save(model, str(path))


def test_folder_checks_every_artifact_and_records_it(folder_copy):
    result = run_cli("check", str(folder_copy), "--json", "-")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    by_name = {r["artifact"]: r for r in payload["results"]}
    assert list(by_name) == ["model.onnx", "model.int8.onnx", "model.fp16.onnx"]
    fp32 = by_name["model.onnx"]
    assert fp32["reference"].startswith("torch") and fp32["verdict"] == "pass" and fp32["precision"] == "fp32"
    assert (
        0 < fp32["max_abs"] < 1e-4 and fp32["batches"] == [1, 4] and fp32["providers_used"][0] == "CPUExecutionProvider"
    )
    assert by_name["model.int8.onnx"]["reference"].endswith("model.onnx")
    assert by_name["model.int8.onnx"]["verdict"] == "reported"  # random inputs: not enforced
    assert by_name["model.fp16.onnx"]["precision"] == "fp16"
    checks = load_json(folder_copy / "manifest.json")["checks"]
    # random inputs: the int8/fp16 gates were not enforced, so the run is "reported", and says so
    assert len(checks) == 1 and checks[0]["verdict"] == "reported" and len(checks[0]["results"]) == 3
    assert payload["verdict"] == "reported" and any("not enforced" in w for w in payload["warnings"])
    assert checks[0]["warnings"] == payload["warnings"]


def test_tolerance_overrides_can_fail_fp32(folder_copy):
    result = run_cli("check", str(folder_copy / "model.onnx"), "--atol", "0", "--rtol", "0", "--json", "-")
    assert result.returncode == 1
    payload = json.loads(result.stdout)
    assert payload["ok"] is False and payload["exit_code"] == 1
    assert "logits outside atol 0" in payload["error"]


def test_perturbed_weight_fails_and_localize_pins_the_node_against_torch(folder_copy):
    """A bad model.onnx that the manifest vouches for: check against PyTorch catches it."""
    model_path = folder_copy / "model.onnx"
    perturb(model_path, PERTURBED_NODE)
    manifest = load_json(folder_copy / "manifest.json")
    manifest["artifacts"] = {"model.onnx": {**manifest["artifacts"]["model.onnx"], "sha256": sha256_file(model_path)}}
    (folder_copy / "manifest.json").write_text(json.dumps(manifest))
    for name in ("model.int8.onnx", "model.fp16.onnx"):
        (folder_copy / name).unlink()
    result = run_cli("check", str(folder_copy), "--localize", "--json", "-")
    assert result.returncode == 1, result.stderr
    entry = json.loads(result.stdout)["results"][0]
    assert entry["verdict"] == "fail" and entry["localize"]["matching"] == "module scope"
    assert entry["localize"]["first_divergence"]["node"] == PERTURBED_NODE
    assert entry["localize"]["compared"] > 50


def test_perturbed_foreign_onnx_localized_against_another_onnx(quantized_build, tmp_path):
    foreign = tmp_path / "suspect.onnx"
    shutil.copy(quantized_build / "model.onnx", foreign)
    perturb(foreign, PERTURBED_NODE, factor=1.2)
    result = run_cli(
        "check", str(foreign), "--reference", str(quantized_build / "model.onnx"), "--localize", "--json", "-"
    )
    assert result.returncode == 1
    entry = json.loads(result.stdout)["results"][0]
    assert entry["localize"]["matching"] == "name"
    assert entry["localize"]["first_divergence"]["node"] == PERTURBED_NODE


def test_localize_matches_by_position_when_names_differ(quantized_build, tmp_path):
    renamed = tmp_path / "renamed.onnx"
    model = onnx.load(str(quantized_build / "model.onnx"))
    mapping = {}
    for index, node in enumerate(model.graph.node):
        node.name = f"n{index}"
        for k, output in enumerate(node.output):
            if output not in {o.name for o in model.graph.output}:
                mapping[output] = f"t{index}_{k}"
                node.output[k] = mapping[output]
    for node in model.graph.node:
        for k, name in enumerate(node.input):
            node.input[k] = mapping.get(name, name)
    onnx.save(model, str(renamed))
    perturb(renamed, next(f"n{i}" for i, n in enumerate(model.graph.node) if n.op_type == "Conv" and i > 60))
    result = run_cli(
        "check", str(renamed), "--reference", str(quantized_build / "model.onnx"), "--localize", "--json", "-"
    )
    assert result.returncode == 1
    localized = json.loads(result.stdout)["results"][0]["localize"]
    assert localized["matching"] == "topological position" and localized["first_divergence"]["op"] == "Conv"


def test_nan_model_fails(quantized_build, tmp_path):
    broken = tmp_path / "nan.onnx"
    shutil.copy(quantized_build / "model.onnx", broken)
    perturb(broken, PERTURBED_NODE, value=float("nan"))
    result = run_cli("check", str(broken), "--reference", str(quantized_build / "model.onnx"), "--json", "-")
    assert result.returncode == 1
    entry = json.loads(result.stdout)["results"][0]
    assert entry["nonfinite"] > 0 and "NaN/Inf" in entry["reasons"][0]


def test_foreign_onnx_needs_a_reference(quantized_build, tmp_path):
    foreign = tmp_path / "lonely.onnx"
    shutil.copy(quantized_build / "model.onnx", foreign)
    refused = run_cli("check", str(foreign))
    assert refused.returncode == 2 and "--reference OTHER.onnx" in refused.stderr
    ok = run_cli("check", str(foreign), "--reference", str(quantized_build / "model.onnx"), "--batches", "1,3")
    assert ok.returncode == 0, ok.stderr


def test_stale_quantized_artifact_is_refused(folder_copy):
    manifest = load_json(folder_copy / "manifest.json")
    manifest["artifacts"]["model.int8.onnx"]["parent"] = "0" * 64
    (folder_copy / "manifest.json").write_text(json.dumps(manifest))
    result = run_cli("check", str(folder_copy))
    assert result.returncode == 2
    assert "model.int8.onnx is stale" in result.stderr and "re-run ghostexport quantize" in result.stderr


def test_cuda_on_a_gpu_less_machine_is_exit_2_with_the_fix(folder_copy):
    result = run_cli("check", str(folder_copy), "--provider", "cuda")
    assert result.returncode == 2
    line = [line for line in result.stderr.splitlines() if line.strip()][-1]
    assert "CUDAExecutionProvider is not in this ONNX Runtime build" in line
    assert "pip install 'ghostexport[gpu]'" in line


def test_allow_fallback_runs_on_cpu_and_says_so(folder_copy):
    result = run_cli("check", str(folder_copy / "model.onnx"), "--provider", "cuda", "--allow-fallback", "--json", "-")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert (
        payload["results"][0]["fallback"] is True
        and payload["results"][0]["providers_used"][0] == "CPUExecutionProvider"
    )
    assert any("FALLBACK" in warning for warning in payload["warnings"])


def test_silent_fallback_after_load_is_caught(monkeypatch, quantized_build):
    """A GPU cannot exist here: ORT's provider list and session are faked to look like a
    CUDA build whose CUDA libraries failed to load (the session comes up on the CPU)."""
    import onnxruntime as ort

    from ghostexport.base.errors import UsageError
    from ghostexport.runtime.providers import ProviderOptions, make_session

    real_session = ort.InferenceSession
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(
        ort,
        "InferenceSession",
        lambda model, options, providers: real_session(model, options, providers=["CPUExecutionProvider"]),
    )
    with pytest.raises(UsageError, match=r"fell back to CPUExecutionProvider.*LD_LIBRARY_PATH"):
        make_session(str(quantized_build / "model.onnx"), ProviderOptions("cuda"))
    info = make_session(str(quantized_build / "model.onnx"), ProviderOptions("cuda", allow_fallback=True))
    assert info.fallback and "FALLBACK" in info.notes[0]


def test_real_data_enforces_int8_gate(tmp_path):
    """On real digits the int8 figures are enforced (and pass) — the CI parity-gate use."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import digits

    checkpoint = Path(__file__).parent / "data" / "ghostnet_050-digits-r64.safetensors"
    out = tmp_path / "m"
    assert run_cli("build", *SMALL, "--checkpoint", str(checkpoint), "--out", str(out)).returncode == 0
    folder = out / "ghostnet_050-c10-r64"
    calib = digits.write_folder("calib", tmp_path / "calib")
    assert run_cli("quantize", str(folder), "--calib", str(calib), "--no-baseline").returncode == 0
    test = digits.write_folder("test", tmp_path / "test", limit=120)
    result = run_cli("check", str(folder), "--data", str(test), "--json", "-")
    assert result.returncode == 0, result.stderr
    int8 = json.loads(result.stdout)["results"][1]
    assert int8["verdict"] == "pass" and int8["enforced"] and int8["sqnr_db"] > 30
    assert np.isclose(int8["top1_agreement"], 1.0, atol=0.02)


@pytest.mark.parametrize(
    "scope, module",
    [
        ("/conv_stem/Conv", "conv_stem"),
        ("/blocks/blocks.6/blocks.6.3/se/conv_reduce/Conv", "blocks.6.3.se.conv_reduce"),
        ("/blocks/blocks.4/blocks.4.0/ghost1/primary_conv/primary_conv.0/Conv", "blocks.4.0.ghost1.primary_conv.0"),
        ("/blocks/blocks.0/blocks.0.0/Add", "blocks.0.0"),
        ("/classifier/Gemm", "classifier"),
    ],
)
def test_module_for_scope(scope, module):
    from ghostexport.evidence.localize import module_for_scope

    assert module_for_scope(scope) == module


def test_both_onnxruntime_wheels_installed_is_reported(quantized_build, tmp_path):
    """The real metadata lookup of an installed onnxruntime-gpu, without its GPU binaries:
    a dist-info folder on PYTHONPATH is what pip leaves behind for an installed wheel."""
    import os

    site = tmp_path / "site"
    info = site / "onnxruntime_gpu-1.32.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: onnxruntime-gpu\nVersion: 1.32.0\n")
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    result = run_cli("check", str(quantized_build), env=env, process=True)  # PYTHONPATH acts at start-up
    assert result.returncode == 2
    line = [line for line in result.stderr.splitlines() if line.strip()][-1]
    assert "several ONNX Runtime packages are installed (onnxruntime, onnxruntime-gpu)" in line
    assert "pip uninstall -y onnxruntime onnxruntime-gpu" in line


def test_a_single_file_checks_only_that_artifact(quantized_build):
    result = run_cli("check", str(quantized_build / "model.int8.onnx"), "--json", "-")
    assert result.returncode == 0, result.stderr
    assert [r["artifact"] for r in json.loads(result.stdout)["results"]] == ["model.int8.onnx"]
    whole = run_cli("check", str(quantized_build / "model.onnx"), "--json", "-")
    assert [r["artifact"] for r in json.loads(whole.stdout)["results"]] == ["model.onnx"]

"""``ghostexport build`` end to end through the real CLI and real ONNX Runtime sessions."""

from __future__ import annotations

import hashlib
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from ghostexport.folder.naming import folder_name
from ghostexport.folder.reference import rebuild_from_manifest
from ghostexport.model.arch import create_model

from .conftest import SMALL, load_json, reference_state, run_cli, visible_entries


def ort_run(model_path, inputs: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": inputs})[0]


def test_folder_manifest_metadata_and_latest(small_build):
    out = small_build.parent
    assert (out / "LATEST").read_text().strip() == "ghostnet_050-r64"
    assert sorted(p.name for p in small_build.iterdir()) == ["manifest.json", "model.onnx"]
    manifest = load_json(small_build / "manifest.json")
    assert manifest["schema"] == 1
    assert set(manifest) >= {
        "ghostexport",
        "created",
        "command",
        "model",
        "environment",
        "artifacts",
        "checks",
        "benchmarks",
    }
    model = manifest["model"]
    assert model["params"] == 2_587_292 and model["batch"] == "dynamic" and model["checkpoint"] is None
    assert model["preprocess"] == {
        "resize": 73,
        "crop_pct": 0.875,
        "interpolation": "bicubic",
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
    }
    assert set(manifest["environment"]) >= {"python", "torch", "onnx", "onnxruntime", "onnxsim", "cpu", "cpu_flags"}
    artifact = manifest["artifacts"]["model.onnx"]
    data = (small_build / "model.onnx").read_bytes()
    assert artifact["sha256"] == hashlib.sha256(data).hexdigest() and artifact["bytes"] == len(data)
    assert artifact["parent"] is None and artifact["opset"] == 17
    parity = artifact["parity"]
    assert parity["verdict"] == "pass" and parity["tolerance"] == {
        "atol": 1e-4,
        "rtol": 1e-3,
        "min_cosine": 0.99999,
        "min_centred_cosine": 0.9999,
    }
    assert model["bn_statistics"]["samples"] == 16 and model["bn_statistics"]["layers"] > 0
    assert parity["warnings"] == []
    for stage in ("export", "simplified"):
        assert parity[stage]["samples"] >= 8 and parity[stage]["batches"] == [1, 4]
        assert parity[stage]["centred_cosine"] > 0.9999 and parity[stage]["input_dependence"] > 0.1
        assert 0 < parity[stage]["max_abs"] < 1e-4  # computed, not a placeholder zero

    proto = onnx.load(str(small_build / "model.onnx"))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["ghostexport.variant"] == "ghostnet" and meta["ghostexport.width"] == "0.5"
    assert meta["ghostexport.num_classes"] == "1000" and meta["ghostexport.resolution"] == "64"
    assert json.loads(meta["ghostexport.mean"]) == [0.485, 0.456, 0.406]
    assert json.loads(meta["ghostexport.std"]) == [0.229, 0.224, 0.225]
    assert meta["ghostexport.crop_pct"] == "0.875" and meta["ghostexport.interpolation"] == "bicubic"
    assert meta["ghostexport.checkpoint_sha256"] == "" and meta["ghostexport.version"]
    assert not list(small_build.glob("*.data"))  # one self-contained file


def test_graph_is_clean(small_build):
    proto = onnx.load(str(small_build / "model.onnx"))
    ops = [node.op_type for node in proto.graph.node]
    for unwanted in ("Slice", "Shape", "Gather", "Reshape", "Identity", "BatchNormalization", "Clip", "Div", "Dropout"):
        assert unwanted not in ops, unwanted
    assert ops.count("HardSigmoid") == 7 and ops.count("Flatten") == 1
    assert [i.name for i in proto.graph.input] == ["input"] and [o.name for o in proto.graph.output] == ["logits"]
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


@pytest.mark.parametrize("batch", [1, 4, 7])
def test_dynamic_batch_matches_pytorch(small_build, batch):
    manifest = load_json(small_build / "manifest.json")
    model = rebuild_from_manifest(manifest)  # seeded init and the recorded BatchNorm statistics pass
    inputs = np.random.default_rng(batch).standard_normal((batch, 3, 64, 64), dtype=np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(inputs)).numpy()
    np.testing.assert_allclose(ort_run(small_build / "model.onnx", inputs), expected, atol=1e-4, rtol=1e-3)


def test_static_batch_and_other_resolution(tmp_path):
    result = run_cli(
        "build",
        "--width",
        "0.35",
        "--resolution",
        "48",
        "--batch",
        "3",
        "--num-classes",
        "10",
        "--out",
        str(tmp_path),
        "--json",
        "-",
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)  # --json - keeps stdout machine-readable
    assert payload["ok"] and payload["verdict"] == "pass"
    folder = tmp_path / "ghostnet_035-c10-r48-b3"
    assert payload["folder"] == str(folder)
    parity = payload["manifest"]["artifacts"]["model.onnx"]["parity"]["simplified"]
    assert parity["batches"] == [3] and parity["samples"] == 9
    proto = onnx.load(str(folder / "model.onnx"))
    dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [3, 3, 48, 48]
    inputs = np.zeros((3, 3, 48, 48), dtype=np.float32)
    assert ort_run(folder / "model.onnx", inputs).shape == (3, 10)
    with pytest.raises(Exception, match=r"(?i)dimension|shape"):
        ort_run(folder / "model.onnx", np.zeros((2, 3, 48, 48), dtype=np.float32))


@pytest.mark.slow  # three builds; CI runs the slow suite too
def test_same_arguments_give_the_same_bytes(tmp_path):
    hashes = []
    for attempt in range(2):
        out = tmp_path / f"run{attempt}"
        assert run_cli("build", *SMALL, "--seed", "5", "--out", str(out)).returncode == 0
        hashes.append(hashlib.sha256((out / "ghostnet_050-r64" / "model.onnx").read_bytes()).hexdigest())
    assert hashes[0] == hashes[1]
    other = tmp_path / "seed6"
    assert run_cli("build", *SMALL, "--seed", "6", "--out", str(other)).returncode == 0
    assert hashlib.sha256((other / "ghostnet_050-r64" / "model.onnx").read_bytes()).hexdigest() != hashes[0]


def test_rebuild_replaces_the_folder_whole(tmp_path):
    assert run_cli("build", *SMALL, "--out", str(tmp_path)).returncode == 0
    stale = tmp_path / "ghostnet_050-r64" / "model.int8.onnx"
    stale.write_bytes(b"stale quantized file from an older build")
    assert run_cli("build", *SMALL, "--seed", "1", "--out", str(tmp_path)).returncode == 0
    assert not stale.exists()
    assert visible_entries(tmp_path) == ["LATEST", "ghostnet_050-r64"]


@pytest.mark.parametrize(
    "width, classes, resolution, batch, expected",
    [
        (1.0, 1000, 224, None, "ghostnet_100"),
        (1.3, 1000, 224, None, "ghostnet_130"),
        (0.5, 10, 96, 1, "ghostnet_050-c10-r96-b1"),
        (1.6, 1000, 224, 8, "ghostnet_160-b8"),
        (0.05, 1000, 224, None, "ghostnet_005"),
    ],
)
def test_folder_naming(width, classes, resolution, batch, expected):
    assert folder_name("ghostnet", width, classes, resolution, batch) == expected


@pytest.mark.parametrize("simplifier", ["onnxslim", "none"])
def test_other_simplifiers(simplifier, tmp_path):
    result = run_cli(
        "build", *SMALL, "--simplifier", simplifier, "--out", str(tmp_path), "--json", str(tmp_path / "r.json")
    )
    assert result.returncode == 0, result.stderr
    artifact = load_json(tmp_path / "r.json")["manifest"]["artifacts"]["model.onnx"]
    assert artifact["export"]["simplifier"] == simplifier and artifact["export"]["unclean_ops"] == {}
    assert artifact["parity"]["verdict"] == "pass"


@pytest.mark.slow  # the dynamo exporter takes ~6 s; CI runs the slow suite too
def test_dynamo_exporter_dynamic_batch(tmp_path):
    pytest.importorskip("onnxscript")
    result = run_cli("build", *SMALL, "--exporter", "dynamo", "--opset", "18", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "ghostnet_050-r64"
    assert not list(folder.glob("*.data"))
    model = rebuild_from_manifest(load_json(folder / "manifest.json"))
    for batch in (1, 5):
        inputs = np.random.default_rng(batch).standard_normal((batch, 3, 64, 64), dtype=np.float32)
        with torch.no_grad():
            expected = model(torch.from_numpy(inputs)).numpy()
        np.testing.assert_allclose(ort_run(folder / "model.onnx", inputs), expected, atol=1e-4, rtol=1e-3)
    assert load_json(folder / "manifest.json")["artifacts"]["model.onnx"]["export"]["exporter"] == "dynamo"


def test_official_layout_checkpoint_reproduces_pytorch_through_onnx(tmp_path):
    """A checkpoint made from the reference TSV alone (no model code) loads strictly."""
    state = reference_state("ghostnet_100_state_dict.tsv")
    checkpoint = tmp_path / "ghostnet_1x_official.pth"
    torch.save(state, checkpoint)
    out = tmp_path / "models"
    result = run_cli(
        "build", "--width", "1.0", "--resolution", "64", "--checkpoint", str(checkpoint), "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    folder = out / "ghostnet_100-r64"
    manifest = load_json(folder / "manifest.json")
    assert manifest["model"]["checkpoint"]["sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    meta = {p.key: p.value for p in onnx.load(str(folder / "model.onnx")).metadata_props}
    assert meta["ghostexport.checkpoint_sha256"] == manifest["model"]["checkpoint"]["sha256"]
    # random values, not trained ones: the logits do not depend on the input, and the build says so
    (warning,) = manifest["artifacts"]["model.onnx"]["parity"]["warnings"]
    assert "barely depend on the input" in warning and "barely depend on the input" in result.stdout
    assert "centred_gate" in manifest["artifacts"]["model.onnx"]["parity"]["simplified"]["per_batch"]["1"]

    model = create_model("ghostnet", 1.0, 1000, seed=123)
    model.load_state_dict(state, strict=True)
    inputs = np.random.default_rng(0).standard_normal((2, 3, 64, 64), dtype=np.float32)
    with torch.no_grad():
        expected = model.eval()(torch.from_numpy(inputs)).numpy()
    np.testing.assert_allclose(ort_run(folder / "model.onnx", inputs), expected, atol=1e-4, rtol=1e-3)


def test_help_does_not_import_torch():
    code = (
        "import sys, click.testing\n"
        "from ghostexport.cli import main\n"
        "result = click.testing.CliRunner().invoke(main, ['build', '--help'])\n"
        "assert result.exit_code == 0 and 'Examples' in result.output, result.output\n"
        "heavy = [m for m in ('torch', 'onnx', 'onnxruntime', 'numpy') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    import subprocess

    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr


@pytest.mark.slow
@pytest.mark.parametrize("width", [1.0, 1.3])
def test_full_size_build(width, tmp_path):
    result = run_cli("build", "--width", str(width), "--out", str(tmp_path), "--json", str(tmp_path / "r.json"))
    assert result.returncode == 0, result.stderr
    manifest = load_json(tmp_path / "r.json")["manifest"]
    assert manifest["artifacts"]["model.onnx"]["parity"]["verdict"] == "pass"
    expected = {1.0: (5_182_508, 141_150_512), 1.3: (7_358_820, 227_003_256)}[width]
    assert (manifest["model"]["params"], manifest["model"]["macs"]) == expected


def test_concat_before_a_1x1_conv_is_split_on_request(small_build, tmp_path):
    """Conv1x1(Concat(a, b)) -> Conv_a(a) + Conv_b(b), and Depthwise(Concat(a, b)) ->
    Concat(Depthwise_a(a), Depthwise_b(b)): exact (the parity gate passes), fewer Concats."""
    assert load_json(small_build / "manifest.json")["artifacts"]["model.onnx"]["export"]["concat_convs_split"] == 0
    result = run_cli("build", *SMALL, "--split-concat-convs", "--out", str(tmp_path), "--json", "-")
    assert result.returncode == 0, result.stderr
    artifact = json.loads(result.stdout)["manifest"]["artifacts"]["model.onnx"]
    split = artifact["export"]["concat_convs_split"]
    assert split == 13 and artifact["parity"]["verdict"] == "pass"
    ops = artifact["export"]["ops"]
    pointwise = ops["Add"] - 16  # each 1x1 split adds one Add and removes one Concat
    # 7 ghost1 -> ghost2 places of stride-1 blocks without SE, 2 after a moved Concat
    assert pointwise == 9 and ops["Concat"] == 32 - pointwise and ops["Conv"] == 95 + split
    graph = onnx.load(str(tmp_path / "ghostnet_050-r64" / "model.onnx")).graph
    sums = [node for node in graph.node if node.name.endswith("_sum")]
    assert len(sums) == pointwise and all(node.op_type == "Add" for node in sums)
    depthwise_parts = [
        node
        for node in graph.node
        if "_part" in node.name and any(a.name == "group" and a.i > 1 for a in node.attribute)
    ]
    assert len(depthwise_parts) == 2 * (split - pointwise) == 8  # the 4 stride-2 blocks' depthwise convs

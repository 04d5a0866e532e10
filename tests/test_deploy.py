"""The deployment kit: pipeline with its report, ORT format, predict on real photographs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from PIL import Image

from ghostexport.model.arch import create_model

from .conftest import SMALL, default_runtime_stages, load_json, run_cli, visible_entries


def sample_photographs() -> list[Path]:
    """The JPEG photographs scikit-learn ships (china.jpg, flower.jpg)."""
    import sklearn.datasets

    folder = Path(sklearn.datasets.__file__).parent / "images"
    photos = sorted(folder.glob("*.jpg"))
    assert len(photos) >= 2
    return photos


def _openvino_fp32_verdict() -> str:
    """An fp32 IR is judged on parity alone where OpenVINO computes in f32 here, else also on synthetic images."""
    from ghostexport.runtime.openvino import default_precision

    return "pass" if default_precision()[0] == "f32" else "reported"


def test_pipeline_end_to_end_with_report(tmp_path):
    result = run_cli("pipeline", *SMALL, "--out", str(tmp_path), "--ort", "--bench-iters", "3", "--json", "-")
    assert result.returncode == 0, result.stderr + result.stdout[-2000:]
    folder = tmp_path / "ghostnet_050-r64"
    expected = {
        "manifest.json",
        "model.onnx",
        "model.int8.onnx",
        "model.fp16.onnx",
        "model.ort",
        "model.required_operators.config",
        "report.md",
        "report.json",
        "bench.png",
    }
    assert expected <= set(visible_entries(folder))
    report = load_json(folder / "report.json")
    assert [s["stage"] for s in report["stages"]] == [
        "build",
        "quantize int8",
        "quantize fp16",
        "convert to ort",
        *default_runtime_stages(),
        "check",
        "bench",
    ]
    # synthetic calibration and random check inputs: those gates are REPORTED, never shown as PASS
    verdicts = {s["stage"]: s["verdict"] for s in report["stages"]}
    assert verdicts == {
        "build": "pass",
        "quantize int8": "reported",
        "quantize fp16": "reported",
        "convert to ort": "pass",
        # OpenVINO where installed: fp32 runs in bf16 on CPUs with bf16, judged on synthetic images (reported)
        **{
            stage: "reported" if stage.endswith("int8") else _openvino_fp32_verdict()
            for stage in default_runtime_stages()
        },
        "check": "reported",
        "bench": "pass",
    }
    assert report["failed"] is None and report["verdict"] == "reported" and report["exit_code"] == 0
    assert any("MEANINGLESS" in w for w in report["warnings"]) and any("not enforced" in w for w in report["warnings"])
    text = (folder / "report.md").read_text()
    assert "**Verdict: PASS (some gates REPORTED" in text and "MEANINGLESS" in text
    assert "| quantize int8 | REPORTED |" in text
    for name in ("model.onnx", "model.int8.onnx", "model.fp16.onnx", "model.ort"):
        sha = report["manifest"]["artifacts"][name]["sha256"]
        assert sha[:16] in text
    assert "| model.int8.onnx | 1 |" in text  # the latency table
    # the last step on the CPU: the fastest artifact that passed its gates (here fp32: int8/fp16 were reported)
    selection = report["manifest"]["recommended"]
    reported = {"model.int8.onnx", "model.fp16.onnx"}
    if default_runtime_stages():  # OpenVINO: int8 reported; fp32 too where it runs in bf16 here
        reported |= {"model.int8.xml"} | ({"model.xml"} if _openvino_fp32_verdict() == "reported" else set())
    assert set(selection["left_out"]) == reported
    chosen = selection["recommended"]["artifact"]
    assert chosen not in reported and chosen in {"model.onnx", "model.ort", "model.xml"}
    runtime = "OpenVINO (CPU)" if chosen == "model.xml" else "ONNX Runtime"
    assert "## Recommended here" in text and f"recommended: {chosen} ({runtime}, " in text
    with Image.open(folder / "bench.png") as image:
        assert image.size[0] > 1000


@pytest.mark.slow  # a second full pipeline; CI runs the slow suite too
def test_pipeline_with_the_fast_x86_options(tmp_path):
    """The README's fastest-on-x86 line: aligned + split fp32, int8 with nothing float but the logits."""
    result = run_cli(
        "pipeline",
        *SMALL,
        "--align-channels",
        "16",
        "--split-concat-convs",
        "--float-ends",
        "none",
        "--out",
        str(tmp_path),
        "--bench-iters",
        "2",
        "--json",
        "-",
    )
    assert result.returncode == 0, result.stderr + result.stdout[-2000:]
    artifacts = load_json(tmp_path / "ghostnet_050-r64" / "manifest.json")["artifacts"]
    export = artifacts["model.onnx"]["export"]
    assert export["channel_alignment"] == 16 and export["concat_convs_split"] > 0
    int8 = artifacts["model.int8.onnx"]
    assert int8["recipe"]["float_ends"] == "none" and int8["recipe"]["kept_float"] == []
    assert int8["graph_forms"] == {
        "split_convs_merged": export["concat_convs_split"],
        "stem": "space_to_depth",
        "float_logits": True,
    }


def test_pipeline_stops_at_a_failed_gate_with_a_report(tmp_path):
    state = create_model("ghostnet", 0.5, 1000, seed=0).state_dict()
    state["blocks.3.0.ghost2.primary_conv.1.running_var"][0] = -4.0  # NaN after BN folding
    checkpoint = tmp_path / "broken.pth"
    torch.save(state, checkpoint)
    out = tmp_path / "models"
    result = run_cli("pipeline", *SMALL, "--checkpoint", str(checkpoint), "--out", str(out))
    assert result.returncode == 1
    assert "pipeline stopped at build" in result.stdout
    report = out / "ghostnet_050-r64.report.md"
    text = report.read_text()
    assert "**Verdict: FAIL at build**" in text and "NaN/Inf" in text
    assert not (out / "ghostnet_050-r64").exists()  # no folder that looks good


def test_convert_to_ort_is_parity_checked(tmp_path):
    assert run_cli("build", *SMALL, "--out", str(tmp_path)).returncode == 0
    folder = tmp_path / "ghostnet_050-r64"
    assert run_cli("quantize", str(folder), "--no-baseline").returncode == 0
    for source, target in (("model.onnx", "model.ort"), ("model.int8.onnx", "model.int8.ort")):
        result = run_cli("convert", str(folder / source), "--to", "ort", "--json", "-")
        assert result.returncode == 0, result.stderr
        record = json.loads(result.stdout)["record"]
        assert record["parity"]["verdict"] == "pass" and record["parity"]["batches"] == [1, 4]
        assert (folder / target).is_file()
        config = (folder / target.replace(".ort", ".required_operators.config")).read_text()
        assert "ai.onnx" in config and "Conv" in config
        manifest = load_json(folder / "manifest.json")
        assert manifest["artifacts"][target]["parent"] == manifest["artifacts"][source]["sha256"]
    session = ort.InferenceSession(str(folder / "model.ort"), providers=["CPUExecutionProvider"])
    onnx_session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(3).standard_normal((2, 3, 64, 64), dtype=np.float32)
    np.testing.assert_allclose(
        session.run(None, {"input": x})[0], onnx_session.run(None, {"input": x})[0], atol=1e-4, rtol=1e-3
    )


@pytest.fixture(scope="module")
def imagenet_build(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("predict")
    assert run_cli("build", "--width", "0.5", "--resolution", "96", "--out", str(out)).returncode == 0
    return out / "ghostnet_050-r96"


def test_predict_agrees_with_pytorch_on_real_photographs(imagenet_build):
    from ghostexport.evidence.preprocess import load_image
    from ghostexport.folder.reference import rebuild_from_manifest

    photos = sample_photographs()
    result = run_cli("predict", str(imagenet_build), *map(str, photos), "--json", "-")
    assert result.returncode == 0, result.stderr
    predictions = json.loads(result.stdout)["predictions"]
    manifest = load_json(imagenet_build / "manifest.json")
    model = rebuild_from_manifest(manifest)
    from ghostexport.stages.predict import RANDOM_WEIGHTS_WARNING, imagenet_labels

    names = imagenet_labels()
    for photo, prediction in zip(photos, predictions, strict=True):
        x = torch.from_numpy(load_image(photo, manifest["model"]["preprocess"], 96)[None])
        with torch.no_grad():
            probabilities = torch.softmax(model(x)[0], dim=0)
        expected = torch.topk(probabilities, 5)
        assert [entry["index"] for entry in prediction["top"]] == expected.indices.tolist()
        assert [entry["label"] for entry in prediction["top"]] == [names[i] for i in expected.indices.tolist()]
        # the printed probabilities are PyTorch's softmax, not just any numbers that sum to at most 1
        np.testing.assert_allclose(
            [e["probability"] for e in prediction["top"]], expected.values.numpy(), rtol=1e-3, atol=1e-6
        )
    assert json.loads(result.stdout)["warnings"] == [RANDOM_WEIGHTS_WARNING.format(path=imagenet_build / "model.onnx")]
    assert "random weights" in run_cli("predict", str(imagenet_build), str(photos[0])).stdout


def test_predict_with_custom_labels_and_bad_inputs(imagenet_build, tmp_path):
    photo = sample_photographs()[0]
    short = tmp_path / "labels.txt"
    short.write_text("cat\ndog\n")
    refused = run_cli("predict", str(imagenet_build), str(photo), "--labels", str(short))
    assert refused.returncode == 2 and "has 2 labels; the model has 1000 classes" in refused.stderr
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    unreadable = run_cli("predict", str(imagenet_build), str(broken))
    assert unreadable.returncode == 2 and "cannot read image" in unreadable.stderr and "broken.jpg" in unreadable.stderr
    labels = tmp_path / "all.txt"
    labels.write_text("\n".join(f"thing {i}" for i in range(1000)))
    ok = run_cli("predict", str(imagenet_build), str(photo), "--labels", str(labels), "--topk", "3", "--json", "-")
    assert ok.returncode == 0
    top = json.loads(ok.stdout)["predictions"][0]["top"]
    assert len(top) == 3 and all(entry["label"].startswith("thing ") for entry in top)


def test_predict_without_a_model_follows_latest(imagenet_build, tmp_path):
    """``predict IMAGE`` alone: the model is the one models/LATEST names, and it says so first."""
    from ghostexport.folder.naming import write_latest

    photo = sample_photographs()[0]
    shutil.copytree(imagenet_build, tmp_path / "models" / imagenet_build.name)
    write_latest(tmp_path / "models", imagenet_build.name)
    result = run_cli("predict", str(photo), "--json", "-", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"using models/{imagenet_build.name} (from models/LATEST)" in result.stderr
    named = run_cli("predict", str(imagenet_build), str(photo), "--json", "-")
    top = [json.loads(r.stdout)["predictions"][0]["top"] for r in (result, named)]
    assert top[0] == top[1]
    empty = run_cli("predict", str(imagenet_build))
    assert empty.returncode == 2 and "no images given" in empty.stderr

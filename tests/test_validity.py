"""Valid ONNX or nothing: every artifact passes the ONNX checker and strict shape inference,
and the fp32 and fp16 graphs run under ONNX's own reference evaluator with ORT's answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx.reference import ReferenceEvaluator

from ghostexport import quantize
from ghostexport.base.errors import GateFailed, UsageError
from ghostexport.evidence.validate import validate_model
from ghostexport.runtime.ort import run_logits
from ghostexport.runtime.providers import cpu_session
from ghostexport.stages import quantize as api
from ghostexport.stages.build import build
from ghostexport.stages.convert import convert


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """GhostNet 0.25× at 32² with every artifact kind (synthetic data: figures reported only)."""
    folder = build(width=0.25, resolution=32, num_classes=10, out=tmp_path_factory.mktemp("tiny")).folder
    for mode in ("int8", "fp16", "int8-dynamic"):
        quantize(folder, mode=mode, baseline=False)
    convert(folder)
    return folder


def test_every_artifact_is_valid_onnx_and_records_it(tiny):
    manifest = __import__("json").loads((tiny / "manifest.json").read_text())
    for name in ("model.onnx", "model.int8.onnx", "model.fp16.onnx", "model.int8-dynamic.onnx"):
        proto = onnx.load(str(tiny / name))
        onnx.checker.check_model(proto, full_check=True)
        onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
        if name != "model.onnx":
            assert manifest["artifacts"][name]["validation"]["verdict"] == "pass"
    config = (tiny / "model.required_operators.config").read_text()
    assert "ghostexport-convert-" not in config and "/tmp" not in config  # no deleted scratch path


@pytest.mark.parametrize("name", ["model.onnx", "model.fp16.onnx"])
def test_onnx_reference_evaluator_agrees_with_onnxruntime(tiny, name):
    inputs = np.random.default_rng(3).standard_normal((2, 3, 32, 32), dtype=np.float32)
    expected = run_logits(cpu_session(str(tiny / name)), inputs)
    evaluated = ReferenceEvaluator(str(tiny / name)).run(None, {"input": inputs})[0]
    tolerance = 1e-5 if name == "model.onnx" else 2e-2  # fp16 arithmetic differs between the two
    np.testing.assert_allclose(evaluated, expected, atol=tolerance * np.abs(expected).max())


def test_an_invalid_artifact_is_refused_and_nothing_is_written(tiny, tmp_path, monkeypatch):
    """The converter's old output (Casts after their consumers) fails the check, named, with exit 1."""
    import shutil

    from onnxruntime.transformers.float16 import convert_float_to_float16

    folder = Path(shutil.copytree(tiny, tmp_path / tiny.name))
    (folder / "model.fp16.onnx").unlink()
    before = (folder / "manifest.json").read_bytes()

    def unsorted_fp16(source: Path, output: Path) -> Path:
        onnx.save(convert_float_to_float16(onnx.load(str(source)), keep_io_types=True), str(output))
        return output

    monkeypatch.setattr(api, "convert_fp16", unsorted_fp16)
    with pytest.raises(GateFailed, match=r"model.fp16.onnx is not valid ONNX .*topologically sorted"):
        quantize(folder, mode="fp16")
    assert not (folder / "model.fp16.onnx").exists() and (folder / "manifest.json").read_bytes() == before


def test_validate_names_the_failing_check():
    node = onnx.helper.make_node("Relu", ["x"], ["y"])
    graph = onnx.helper.make_graph(
        [node],
        "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.INT64, [1, 2])],  # wrong output type
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    with pytest.raises(GateFailed, match=r"bad\.onnx"):
        validate_model(model, "bad.onnx")


def test_dfc_variants_refuse_a_resolution_their_attention_cannot_pool(tmp_path):
    with pytest.raises(UsageError, match="too small for ghostnetv2"):
        build(variant="ghostnetv2", width=0.25, resolution=32, out=tmp_path)

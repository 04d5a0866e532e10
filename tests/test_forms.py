"""The int8-only graph forms: exact in fp32 (ORT, real sessions), and only where they apply."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from ghostexport.quantize.forms import merge_split_convs, stem_space_to_depth
from ghostexport.runtime import cpu_session
from ghostexport.simplify import split_concat_convs


def run(proto: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = cpu_session(proto.SerializeToString())
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def stem_model(channels: int, size: int, kernel: int = 3, stride: int = 2, pads: int = 1) -> onnx.ModelProto:
    rng = np.random.default_rng(channels * 1000 + size)
    weight = rng.standard_normal((16, channels, kernel, kernel)).astype(np.float32)
    bias = rng.standard_normal(16).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node(
                "Conv",
                ["input", "w", "b"],
                ["stem"],
                name="/conv_stem/Conv",
                kernel_shape=[kernel, kernel],
                strides=[stride, stride],
                pads=[pads] * 4,
            ),
            helper.make_node("Relu", ["stem"], ["out"], name="/act1/Relu"),
        ],
        "stem",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", channels, size, size])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@settings(max_examples=12, deadline=None)
@given(
    channels=st.sampled_from([1, 2, 3, 5, 6]),
    half=st.integers(2, 40),
    batch=st.integers(1, 3),
)
def test_space_to_depth_stem_is_exact(channels, half, batch):
    proto = stem_model(channels, 2 * half)
    form = stem_space_to_depth(proto)
    assert form is not None and form.stem == "/conv_stem/Conv"
    ops = [node.op_type for node in form.model.graph.node]
    assert ops == ["SpaceToDepth", "Conv", "Relu"]
    x = np.random.default_rng(half).standard_normal((batch, channels, 2 * half, 2 * half)).astype(np.float32)
    np.testing.assert_allclose(run(form.model, x), run(proto, x), rtol=1e-5, atol=2e-5)
    assert [node.op_type for node in proto.graph.node] == ["Conv", "Relu"]  # the input model is untouched


@pytest.mark.parametrize(
    "case",
    [
        {"channels": 3, "size": 63},  # odd: the 2x2 form would miss the bottom/right padding
        {"channels": 4, "size": 64},  # already a multiple of 4: the symmetric kernel takes it as is
        {"channels": 3, "size": 64, "kernel": 5, "pads": 2},
        {"channels": 3, "size": 64, "stride": 1},
    ],
)
def test_space_to_depth_stem_only_where_it_applies(case):
    assert stem_space_to_depth(stem_model(**case)) is None


def test_merging_split_convs_restores_the_built_graph(small_build):
    built = onnx.load(str(small_build / "model.onnx"))
    split, count = split_concat_convs(onnx.load(str(small_build / "model.onnx")))
    assert count == 13  # 9 pointwise, 4 depthwise
    merged, merged_count = merge_split_convs(split)
    assert merged_count == count
    ops = [node.op_type for node in merged.graph.node]
    assert ops.count("Concat") == 32 and ops.count("Add") == 16 and ops.count("Conv") == 95
    names = {node.name for node in merged.graph.node}
    assert {node.name for node in built.graph.node if node.op_type == "Conv"} <= names
    x = np.random.default_rng(3).standard_normal((2, 3, 64, 64)).astype(np.float32)
    np.testing.assert_allclose(run(merged, x), run(built, x), rtol=1e-5, atol=1e-5)
    assert merge_split_convs(built)[1] == 0  # nothing to merge in an unsplit graph

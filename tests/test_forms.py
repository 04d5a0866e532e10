"""The int8-only graph forms: exact in fp32 (ORT, real sessions), and only where they apply."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from ghostexport.graph import merge_split_convs, split_concat_convs
from ghostexport.quantization.forms import stem_space_to_depth
from ghostexport.runtime.providers import cpu_session


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


def concat_then_conv(widths: list[int], depthwise: bool, bias: bool, then_pointwise: bool) -> onnx.ModelProto:
    """inputs -> Relu each -> Concat -> (depthwise 3x3 | 1x1) conv [-> 1x1 conv]: the split's shapes."""
    rng = np.random.default_rng(sum(widths) * 7 + depthwise)
    total = sum(widths)
    nodes, inits, inputs = [], [], []
    for index, width in enumerate(widths):
        inputs.append(helper.make_tensor_value_info(f"x{index}", TensorProto.FLOAT, [1, width, 6, 6]))
        nodes.append(helper.make_node("Relu", [f"x{index}"], [f"r{index}"], name=f"/relu{index}"))
    nodes.append(helper.make_node("Concat", [f"r{i}" for i in range(len(widths))], ["cat"], name="/cat", axis=1))
    shape = (total, 1, 3, 3) if depthwise else (5, total, 1, 1)
    inits.append(numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), "w"))
    conv_inputs = ["cat", "w"]
    if bias:
        inits.append(numpy_helper.from_array(rng.standard_normal(shape[0]).astype(np.float32), "b"))
        conv_inputs.append("b")
    attrs = {"group": total, "kernel_shape": [3, 3], "pads": [1, 1, 1, 1]} if depthwise else {"kernel_shape": [1, 1]}
    nodes.append(helper.make_node("Conv", conv_inputs, ["y"], name="/conv", **attrs))
    output = "y"
    if then_pointwise:
        inits.append(numpy_helper.from_array(rng.standard_normal((4, shape[0], 1, 1)).astype(np.float32), "w2"))
        nodes.append(helper.make_node("Conv", ["y", "w2"], ["z"], name="/conv2", kernel_shape=[1, 1]))
        output = "z"
    graph = helper.make_graph(
        nodes, "g", inputs, [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)], inits
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@settings(max_examples=25, deadline=None)
@given(
    widths=st.lists(st.integers(1, 9), min_size=2, max_size=4),
    depthwise=st.booleans(),
    bias=st.booleans(),
    then_pointwise=st.booleans(),
)
def test_split_and_merge_are_exact_inverses(widths, depthwise, bias, then_pointwise):
    proto = concat_then_conv(widths, depthwise, bias, then_pointwise)
    feeds = {
        f"x{i}": np.random.default_rng(i).standard_normal((1, w, 6, 6)).astype(np.float32) for i, w in enumerate(widths)
    }

    def run_all(model: onnx.ModelProto) -> np.ndarray:
        session = cpu_session(model.SerializeToString())
        return session.run(None, feeds)[0]

    reference = run_all(proto)
    split, count = split_concat_convs(onnx.load_from_string(proto.SerializeToString()))
    # a 1x1 conv splits over two halves (one Add); a depthwise conv over any number, and the
    # Concat it moves in front of a following 1x1 conv splits that one too
    two = len(widths) == 2
    assert count == int(depthwise or two) + int(depthwise and then_pointwise and two)
    np.testing.assert_allclose(run_all(split), reference, rtol=1e-5, atol=1e-5)
    merged, merged_count = merge_split_convs(split)
    assert merged_count == count
    assert sorted(n.op_type for n in merged.graph.node) == sorted(n.op_type for n in proto.graph.node)
    np.testing.assert_allclose(run_all(merged), reference, rtol=1e-6, atol=1e-6)

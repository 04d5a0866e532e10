"""Unusable input is a usage error (exit 2) naming the problem — never an internal error.

Property tests generate malformed manifests, ``.npy`` headers and ONNX models and feed them
to the same functions the commands use; the only exception allowed out is ``UsageError``.
A few CLI runs pin the exit code and the one-line message for the cases users meet most.
"""

from __future__ import annotations

import copy
import io
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import helper
from PIL import Image

from ghostexport.base.errors import UsageError
from ghostexport.evidence.data import load_dataset
from ghostexport.evidence.preprocess import load_image
from ghostexport.folder.artifacts import resolve_model, select_artifacts
from ghostexport.folder.manifest import read_manifest
from ghostexport.folder.reference import rebuild_from_manifest
from ghostexport.runtime.providers import cpu_session

from .conftest import SMALL, run_cli

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def manifest_paths(manifest: dict) -> list[tuple]:
    """Every key path into the manifest's model and artifacts (where a wrong value does harm)."""
    paths = []

    def walk(value, path):
        paths.append(path)
        if isinstance(value, dict):
            for key, child in value.items():
                walk(child, (*path, key))
        elif isinstance(value, list):
            for index, child in enumerate(value[:3]):
                walk(child, (*path, index))

    walk({k: manifest[k] for k in ("schema", "model", "artifacts")}, ())
    return [p for p in paths if p]


@pytest.fixture(scope="module")
def good_folder(tmp_path_factory, small_build) -> Path:
    return Path(shutil.copytree(small_build, tmp_path_factory.mktemp("hostile") / small_build.name))


def only_usage_errors(action) -> None:
    try:
        action()
    except UsageError as exc:
        assert str(exc) and "\n" not in str(exc)  # one line


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_malformed_manifest_is_a_usage_error(good_folder, tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("m") / good_folder.name
    shutil.copytree(good_folder, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    choice = data.draw(st.sampled_from(["whole", "replace", "delete"]))
    if choice == "whole":
        broken = data.draw(json_values)
    else:
        broken = copy.deepcopy(manifest)
        path = data.draw(st.sampled_from(manifest_paths(manifest)))
        parent = broken
        for key in path[:-1]:
            parent = parent[key]
        if choice == "replace":
            parent[path[-1]] = data.draw(json_values)
        elif isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent.pop(path[-1])
    (folder / "manifest.json").write_text(json.dumps(broken, allow_nan=True))

    def use() -> None:
        ref = resolve_model(folder)
        select_artifacts(ref)
        rebuild_from_manifest(read_manifest(folder))

    only_usage_errors(use)


def npy_bytes(shape, dtype: str, truncate: int, extra: int) -> bytes:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": dtype, "fortran_order": False, "shape": tuple(shape)})
    count = int(np.prod(shape, dtype=np.float64))
    body = bytes(min(count * np.dtype(dtype).itemsize, 1 << 20))
    data = header.getvalue() + body + bytes(extra)
    return data[: max(0, len(data) - truncate)]


@settings(max_examples=80, deadline=None)
@given(
    shape=st.lists(st.integers(0, 1 << 40), min_size=0, max_size=5) | st.just([2, 3, 8, 8]),
    dtype=st.sampled_from(["<f4", "<f8", "<i8", "|u1", "<f2", "|b1"]),
    truncate=st.integers(0, 64),
    extra=st.integers(0, 16),
)
def test_a_malformed_npy_is_a_usage_error(tmp_path_factory, shape, dtype, truncate, extra):
    path = tmp_path_factory.mktemp("npy") / "data.npy"
    path.write_bytes(npy_bytes(shape, dtype, truncate, extra))
    only_usage_errors(lambda: load_dataset(str(path), None, (3, 8, 8)))


def classifier(inputs: list[list], opset: int = 17, outputs: int = 1, elem=onnx.TensorProto.FLOAT) -> onnx.ModelProto:
    """A tiny graph: ReduceMean over H, W of the first input (N×C), optionally more inputs/outputs."""
    values = [helper.make_tensor_value_info(f"x{i}", elem, dims) for i, dims in enumerate(inputs)]
    nodes = [helper.make_node("GlobalAveragePool", ["x0"], ["pooled"]), helper.make_node("Flatten", ["pooled"], ["y0"])]
    outs = [helper.make_tensor_value_info("y0", elem, None)]
    for index in range(1, outputs):
        nodes.append(helper.make_node("Identity", ["y0"], [f"y{index}"]))
        outs.append(helper.make_tensor_value_info(f"y{index}", elem, None))
    graph = helper.make_graph(nodes, "g", values, outs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


@settings(max_examples=60, deadline=None)
@given(
    dims=st.lists(st.integers(0, 200_000) | st.just(None), min_size=1, max_size=5),
    extra_inputs=st.integers(0, 2),
    outputs=st.integers(0, 2),
    opset=st.sampled_from([1, 13, 17, 99, 1000]),
    elem=st.sampled_from([onnx.TensorProto.FLOAT, onnx.TensorProto.INT64, onnx.TensorProto.FLOAT16]),
)
def test_a_model_ghostexport_cannot_run_is_a_usage_error(tmp_path_factory, dims, extra_inputs, outputs, opset, elem):
    shape = ["batch" if d is None else d for d in dims]
    model = classifier([shape] * (1 + extra_inputs), opset=opset, outputs=max(outputs, 1), elem=elem)
    if outputs == 0:
        del model.graph.output[:]
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    path.write_bytes(model.SerializeToString())

    def use() -> None:
        ref = resolve_model(path)
        cpu_session(str(ref.path))

    only_usage_errors(use)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, 4000), flip=st.integers(0, 4000))
def test_truncated_or_flipped_onnx_bytes_are_a_usage_error(good_folder, tmp_path_factory, cut, flip):
    data = bytearray((good_folder / "model.onnx").read_bytes()[:cut])
    if data and flip < len(data):
        data[flip] ^= 0xFF
    path = tmp_path_factory.mktemp("bytes") / "model.onnx"
    path.write_bytes(bytes(data))
    only_usage_errors(lambda: cpu_session(str(resolve_model(path).path)))


def test_external_data_outside_the_folder_is_refused(good_folder, tmp_path):
    model = onnx.load(str(good_folder / "model.onnx"))
    onnx.save(model, str(tmp_path / "inside.onnx"), save_as_external_data=True, location="inside.onnx.data")
    assert resolve_model(tmp_path / "inside.onnx").path.name == "inside.onnx"  # the normal case works
    text = (tmp_path / "inside.onnx").read_bytes().replace(b"inside.onnx.data", b"../outside.onnx")
    for location in (b"../outside.onnx", b"/etc/passwd.onnx"):
        (tmp_path / "outside.onnx").write_bytes(text.replace(b"../outside.onnx", location))
        with pytest.raises(UsageError, match="outside"):
            resolve_model(tmp_path / "outside.onnx")


@pytest.mark.parametrize(
    "mode, values, expected_mean",
    [("I;16", np.full((16, 16), 32896, dtype=np.uint16), 128), ("F", np.full((16, 16), 0.5, np.float32), 128)],
)
def test_16_bit_and_float_images_use_their_real_range(tmp_path, mode, values, expected_mean):
    path = tmp_path / "image.tiff"
    image = Image.fromarray(values)
    assert image.mode == mode
    image.save(path)
    pre = {"resize": 16, "crop_pct": 1.0, "interpolation": "bilinear", "mean": [0, 0, 0], "std": [1, 1, 1]}
    pixels = load_image(path, pre, 16) * 255
    assert abs(pixels.mean() - expected_mean) <= 1  # Pillow's own RGB conversion gives ~255 and ~0


def test_float_image_out_of_any_range_is_refused(tmp_path):
    path = tmp_path / "image.tiff"
    Image.fromarray(np.full((16, 16), 1e6, np.float32)).save(path)
    pre = {"resize": 16, "crop_pct": 1.0, "interpolation": "bilinear", "mean": [0, 0, 0], "std": [1, 1, 1]}
    with pytest.raises(UsageError, match="neither"):
        load_image(path, pre, 16)


@pytest.mark.parametrize(
    "args, message",
    [
        (["build", *SMALL, "--out", ""], "is empty: give a path"),
        (["build", *SMALL, "--weights", ""], "--weights is empty"),
        (["build", *SMALL, "--seed", "99999999999999999999"], "--seed must be an integer from 0"),
        (["quantize", "--calib", ""], "--calib is empty"),
        (["info", "{empty}"], "is empty or not a regular file"),
        (["check", "{folder}", "--atol", "-1"], "--atol must be a finite number >= 0"),
        (["pipeline", *SMALL, "--bench-iters", "0", "--out", "{out}"], "--bench-iters must be an integer from 1"),
        (["pipeline", *SMALL, "--provider", "cuda", "--out", "{out}"], "ghostexport[gpu]"),
    ],
)
def test_bad_values_exit_2_with_one_line_before_any_work(args, message, good_folder, tmp_path):
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    out = tmp_path / "models"
    filled = [a.format(empty=empty, folder=good_folder, out=out) for a in args]
    result = run_cli(*filled, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert not out.exists()  # pipeline validated everything before building

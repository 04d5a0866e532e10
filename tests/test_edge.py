"""``convert --to litert`` and ``--to executorch``: the PyTorch model rebuilt, converted, gated, recorded.

Slow suite (each conversion takes 20-80 s on 2 cores); CI installs the ``[litert]`` and
``[executorch]`` extras so these run there. The missing-extra error is tested in the default
suite by hiding the package.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ghostexport.base.errors import UsageError

from .conftest import SMALL, assert_chosen_by_the_rule, load_json, run_cli


@pytest.mark.parametrize(("runtime", "package"), [("litert", "litert_torch"), ("executorch", "executorch")])
def test_a_missing_runtime_is_one_line_naming_its_extra(runtime, package, small_build, monkeypatch):
    monkeypatch.setitem(sys.modules, package, None)  # as if not installed
    result = run_cli("convert", str(small_build), "--to", runtime)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and f"ghostexport[{runtime}]" in result.stderr


def test_edge_options_are_checked_before_any_work(small_build):
    from ghostexport.stages.convert import convert

    with pytest.raises(UsageError, match="--precision tf32: use fp32 or int8"):
        convert(small_build, to="executorch", precision="tf32")
    with pytest.raises(UsageError, match="--float-io applies to --to litert --precision int8"):
        convert(small_build, to="executorch", precision="int8", float_io=True)
    with pytest.raises(UsageError, match="--calib and --eval are for --precision int8"):
        convert(small_build, to="litert", calib="synthetic:8")
    with pytest.raises(UsageError, match="apply to --to litert/executorch/openvino, not ort"):
        convert(small_build, to="ort", precision="int8")


def test_noop_aliases_and_full_slices_are_removed_before_lowering():
    """What torch.export makes of ``out[:, :n]`` on an n-wide tensor (and of an alias) computes nothing: removed."""
    import torch

    from ghostexport.edge.prepare import export_batch1

    class Ghostlike(torch.nn.Module):
        def forward(self, x):
            both = torch.cat([x, x * 2], dim=1)
            return torch.ops.aten.alias(both[:, : both.shape[1]]) + both[:, :3].sum()

    program, removed = export_batch1(Ghostlike(), 8)
    targets = [str(node.target) for node in program.graph_module.graph.nodes if node.op == "call_function"]
    assert removed == 2 and not any("alias" in t for t in targets)
    assert sum("slice" in t for t in targets) == 1  # the real slice (:3 of 6) stays
    x = torch.randn(1, 3, 8, 8)
    torch.testing.assert_close(program.graph_module(x)[0], Ghostlike()(x))


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["executorch", "litert"])
def test_fp32_and_int8_conversions_are_gated_recorded_and_deterministic(runtime, digits_folder, tmp_path):
    pytest.importorskip({"litert": "litert_torch", "executorch": "executorch"}[runtime])
    folder, calib, test = digits_folder
    folder = Path(shutil.copytree(folder, tmp_path / folder.name))
    suffix = {"litert": "tflite", "executorch": "pte"}[runtime]
    fp32 = run_cli("convert", str(folder), "--to", runtime, "--json", "-")
    assert fp32.returncode == 0, fp32.stderr
    record = load_json(folder / "manifest.json")["artifacts"][f"model.{suffix}"]
    assert record["parity"]["verdict"] == "pass" and record["format"] == runtime and record["precision"] == "fp32"
    assert (
        record["parity"]["max_abs"] < 1e-4
        and record["parent"] == load_json(folder / "manifest.json")["artifacts"]["model.onnx"]["sha256"]
    )
    if runtime == "executorch":
        assert record["conversion"]["delegation"]["delegate_calls"] == 1  # one XNNPACK piece
    first = hashlib.sha256((folder / f"model.{suffix}").read_bytes()).hexdigest()
    again = run_cli("convert", str(folder), "--to", runtime)
    assert again.returncode == 0 and hashlib.sha256((folder / f"model.{suffix}").read_bytes()).hexdigest() == first
    int8 = run_cli(
        "convert", str(folder), "--to", runtime, "--precision", "int8", "--calib", str(calib), "--eval", str(test),
        "--json", "-",
    )  # fmt: skip
    assert int8.returncode == 0, int8.stderr
    quality = json.loads(int8.stdout)["record"]["quality"]
    assert quality["enforced"] and quality["verdict"] == "pass"
    assert quality["accuracy_drop_points"] <= 0.5  # the trained digits model keeps its accuracy
    assert (folder / f"model.int8.{suffix}").is_file()
    if runtime == "litert":  # int8 I/O by default; --float-io keeps the model's ends float, exactly
        assert json.loads(int8.stdout)["record"]["conversion"]["io"] == {"input": "int8", "output": "int8"}
        floated = run_cli(
            "convert", str(folder), "--to", "litert", "--precision", "int8", "--float-io", "--calib", str(calib),
            "--eval", str(test), "--json", "-",
        )  # fmt: skip
        assert floated.returncode == 0, floated.stderr
        record = json.loads(floated.stdout)["record"]
        assert record["conversion"]["io"] == {"input": "float32", "output": "float32"}
        assert record["quality"]["verdict"] == "pass" and record["quality"]["accuracy_drop_points"] <= 0.5
    # bench times them beside the ONNX artifacts, interleaved, each on its own runtime (batch 1 only)
    timed = run_cli("bench", str(folder), "--iters", "5", "--batches", "1,2", "--json", "-")
    assert timed.returncode == 0, timed.stderr
    payload = json.loads(timed.stdout)
    rows = {(row["model"], row["batch"]): row for row in payload["results"]}
    runtime_name = {"litert": "LiteRT (XNNPACK)", "executorch": "ExecuTorch (XNNPACK)"}[runtime]
    for name in (f"model.{suffix}", f"model.int8.{suffix}"):
        assert rows[(name, 1)]["provider"] == runtime_name and (name, 2) not in rows
    assert rows[("model.onnx", 2)]["provider"] == "CPUExecutionProvider"
    assert any("converted at batch 1, skipped at batch 2" in w for w in payload["warnings"])
    # check compares them with PyTorch on their own runtime, beside the ONNX artifacts, on real digits
    checked = run_cli("check", str(folder), "--data", str(test), "--json", "-")
    assert checked.returncode == 0, checked.stderr
    entries = {entry["artifact"]: entry for entry in json.loads(checked.stdout)["results"]}
    assert (
        entries[f"model.{suffix}"]["providers_used"] == [runtime_name]
        and entries[f"model.{suffix}"]["verdict"] == "pass"
    )
    assert entries[f"model.int8.{suffix}"]["enforced"] and entries[f"model.int8.{suffix}"]["verdict"] == "pass"
    # bench --select: both passed their gates on real digits, so both are candidates, timed on their runtime
    selected = run_cli("bench", str(folder), "--select", "--select-seconds", "3", "--iters", "2", "--json", "-")
    assert selected.returncode == 0, selected.stderr
    selection = load_json(folder / "manifest.json")["recommended"]
    assert selection["left_out"] == {} and selection["not_timed"] == []
    edge_rows = [row for row in selection["rows"] if row["runtime"] == runtime]
    cores = _physical_cores()
    assert {(row["artifact"], row["threads"]) for row in edge_rows} == {
        (name, threads)
        for name in (f"model.{suffix}", f"model.int8.{suffix}")
        # LiteRT: one thread and every core; ExecuTorch's one XNNPACK pool per process: every core only
        for threads in ({cores} if runtime == "executorch" else {1, cores})
    }
    assert all(row["spinning"] is None and row["optimization"] is None for row in edge_rows)
    chosen = selection["recommended"]
    assert_chosen_by_the_rule(selection)
    assert f"recommended: {chosen['artifact']}" in selected.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("runtime", "why"),
    [
        ("executorch", "rebuilt from a build folder's manifest"),  # converted from PyTorch
        ("openvino", "is gated against the PyTorch model"),  # converted from ONNX, judged against PyTorch
    ],
)
def test_a_lone_onnx_is_refused_for_edge_formats(runtime, why, small_build, tmp_path):
    pytest.importorskip(runtime)
    lone = tmp_path / "m.onnx"
    shutil.copy(small_build / "model.onnx", lone)
    result = run_cli("convert", str(lone), "--to", runtime)
    assert result.returncode == 2 and why in result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["m.onnx"]  # nothing written beside it


@pytest.mark.slow
def test_an_executorch_program_loaded_before_a_pool_resize_refuses_to_run(digits_folder, tmp_path):
    """ExecuTorch's XNNPACK pool is one per process; a program loaded before a resize crashed the process."""
    pytest.importorskip("executorch")
    import numpy as np

    from ghostexport.runtime.executorch import runner

    folder = Path(shutil.copytree(digits_folder[0], tmp_path / "models"))
    assert run_cli("convert", str(folder), "--to", "executorch").returncode == 0
    data, image = (folder / "model.pte").read_bytes(), np.zeros((1, 3, 64, 64), np.float32)
    first = runner(data, 1)
    assert first(image).shape == (1, 10)
    second = runner(data, 2)
    with pytest.raises(RuntimeError, match="loaded before the XNNPACK thread pool was resized; load it again"):
        first(image)
    assert second(image).shape == (1, 10) and runner(data, 2)(image).shape == (1, 10)  # same size: no resize


@pytest.mark.slow
def test_the_pipeline_converts_to_the_edge_runtimes_and_benches_them_beside_ort(tmp_path):
    pytest.importorskip("executorch")
    result = run_cli(
        "pipeline", *SMALL, "--edge", "executorch", "--bench-iters", "5", "--out", str(tmp_path), "--json", "-"
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    stages = [stage["stage"] for stage in payload["stages"]]
    assert "convert to executorch fp32" in stages and "convert to executorch int8" in stages
    report = (tmp_path / "ghostnet_050-r64" / "report.md").read_text()
    # the artifacts, check and latency tables
    assert report.count("| model.pte |") == 3 and report.count("| model.int8.pte |") == 3
    # the selection step timed them too: fp32 passed its parity gate, int8 was only reported (synthetic data)
    selection = load_json(tmp_path / "ghostnet_050-r64" / "manifest.json")["recommended"]
    assert {"model.pte", "model.int8.pte"} <= set(selection["best_per_artifact"])
    assert "model.int8.pte" in selection["left_out"] and "model.pte" not in selection["left_out"]


def test_an_unknown_edge_runtime_is_refused_before_the_build(tmp_path):
    result = run_cli("pipeline", *SMALL, "--edge", "coreml", "--out", str(tmp_path))
    assert result.returncode == 2 and "--edge coreml: use litert, executorch, openvino or none" in result.stderr
    assert not (tmp_path / "ghostnet_050-r64").exists()


def _physical_cores() -> int:
    """Physical cores counted apart from the code under test: distinct (socket, core) pairs lscpu lists."""
    listing = subprocess.run(["lscpu", "-p=SOCKET,CORE"], capture_output=True, text=True, check=True).stdout
    return len({line for line in listing.splitlines() if line and not line.startswith("#")})

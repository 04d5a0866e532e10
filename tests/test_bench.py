"""``ghostexport bench``: real CPU sessions, interleaved; CSV, plot, manifest, provider errors."""

from __future__ import annotations

import csv
import json
import shutil
from importlib.util import find_spec
from pathlib import Path

import pytest
from PIL import Image

from ghostexport.runtime.ort import physical_cores

from .conftest import SMALL, assert_chosen_by_the_rule, load_json, run_cli


def test_folder_side_by_side_with_torch_csv_plot_and_manifest(quantized_build, tmp_path):
    folder = Path(shutil.copytree(quantized_build, tmp_path / quantized_build.name))
    result = run_cli(
        "bench",
        str(folder),
        "--batch",  # the former spelling of --batches still works (hidden from --help)
        "1,3",
        "--iters",
        "6",
        "--warmup",
        "2",
        "--torch",
        "--csv",
        str(tmp_path / "b.csv"),
        "--plot",
        str(tmp_path / "b.png"),
        "--json",
        "-",
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    rows = payload["results"]
    models = ["model.onnx", "model.int8.onnx", "model.fp16.onnx", "torch eager"]
    assert [(r["model"], r["batch"]) for r in rows] == [(m, b) for b in (1, 3) for m in models]
    for row in rows:
        assert row["iterations"] == 6 and 0 < row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"]
        # throughput is stored to 2 decimals: compare within that rounding, never on a rounded equality
        assert abs(row["throughput_ips"] - row["batch"] * 1000 / row["p50_ms"]) <= 0.005 + 1e-6 * row["throughput_ips"]
    assert all(r["ratio_to_first"] == 1.0 for r in rows if r["model"] == "model.onnx")
    env = payload["environment"]
    assert env["thread_spinning"] is False and env["providers_in_use"]["model.onnx"] == "CPUExecutionProvider"
    assert env["graph_optimization_level"] == "ORT_ENABLE_ALL" and env["cpu_flags"]
    with open(tmp_path / "b.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 8
    with Image.open(tmp_path / "b.png") as image:
        assert image.size[0] > 1000 and image.size[1] > 500
    benchmarks = load_json(folder / "manifest.json")["benchmarks"]
    assert len(benchmarks) == 1 and len(benchmarks[0]["results"]) == 8


def test_two_onnx_files_with_a_time_budget(quantized_build):
    result = run_cli(
        "bench",
        str(quantized_build / "model.onnx"),
        str(quantized_build / "model.int8.onnx"),
        "--seconds",
        "0.3",
        "--threads",
        "1",
        "--json",
        "-",
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["results"]
    assert [r["model"] for r in rows] == ["model.onnx", "model.int8.onnx"]
    assert all(r["iterations"] >= 5 for r in rows)
    assert json.loads(result.stdout)["environment"]["threads"] == 1


def test_static_batch_model_is_skipped_at_other_sizes(tmp_path):
    assert run_cli("build", *SMALL, "--batch", "2", "--out", str(tmp_path)).returncode == 0
    result = run_cli("bench", str(tmp_path / "ghostnet_050-r64-b2"), "--batches", "1,2", "--iters", "3", "--json", "-")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert [r["batch"] for r in payload["results"]] == [2]
    assert any("static batch 2, skipped at batch 1" in w for w in payload["warnings"])


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--provider", "cuda"], "pip install 'ghostexport[gpu]'"),
        (["--iters", "5", "--seconds", "1"], "exclusive"),
        (["--batches", "0"], "positive integers"),
        (["--threads", "0"], "--threads must be from 1 to"),
        (["--threads", "100000"], "--threads must be from 1 to"),
        (["--streams", "0"], "--streams must be from 1 to"),
        (["--streams", "100000"], "--streams must be from 1 to"),
        (["--seconds", "nan"], "--seconds must be a number in (0, 3600]"),
        (["--seconds", "inf"], "--seconds must be a number in (0, 3600]"),
        (["--iters", "-1"], "--iters must be an integer from 1"),
        (["--warmup", "-1"], "--warmup must be an integer from 0"),
        (["--streams", "2", "--torch"], "--streams (concurrent requests) is for ORT"),
    ],
)
def test_bad_bench_options_exit_2(quantized_build, args, expected):
    result = run_cli("bench", str(quantized_build), *args)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr


def test_streams_run_concurrent_requests(quantized_build, tmp_path):
    """Throughput mode: each round is N concurrent calls; images/s counts all of them."""
    folder = Path(shutil.copytree(quantized_build, tmp_path / quantized_build.name))
    result = run_cli(
        "bench",
        str(folder / "model.onnx"),
        str(folder / "model.int8.onnx"),
        "--batches",
        "2",
        "--streams",
        "3",
        "--iters",
        "4",
        "--warmup",
        "1",
        "--json",
        "-",
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["environment"]["streams"] == 3 and payload["environment"]["threads"] >= 1
    for row in payload["results"]:
        assert row["streams"] == 3 and row["iterations"] == 4
        assert row["throughput_ips"] == pytest.approx(3 * 2 * 1000.0 / row["p50_ms"], rel=1e-3)
    assert (
        "3 concurrent streams"
        in run_cli("bench", str(folder / "model.onnx"), "--streams", "3", "--iters", "2", "--warmup", "0").stdout
    )


def test_torch_needs_a_manifest(quantized_build, tmp_path):
    foreign = tmp_path / "x.onnx"
    shutil.copy(quantized_build / "model.onnx", foreign)
    result = run_cli("bench", str(foreign), "--torch")
    assert result.returncode == 2 and "--torch needs a build folder" in result.stderr


def test_select_recommends_the_fastest_passing_artifact_and_records_it(quantized_build, tmp_path):
    """Every artifact and the naive export under every session setting; only gated artifacts can win."""
    from ghostexport.choose.trials import settings_grid

    folder = Path(shutil.copytree(quantized_build, tmp_path / quantized_build.name))
    result = run_cli("bench", str(folder), "--select", "--select-seconds", "1", "--iters", "3", "--json", "-")
    assert result.returncode == 0, result.stderr
    selection = load_json(folder / "manifest.json")["recommended"]
    assert json.loads(result.stdout)["selection"]["recommended"] == selection["recommended"]
    timed = {(r["artifact"], r["threads"], r["spinning"], r["optimization"]) for r in selection["rows"]}
    artifacts = {"model.onnx", "model.int8.onnx", "model.fp16.onnx", "naive export"}
    expected = {(a, s.threads, s.spinning, s.optimization) for a in artifacts for s in settings_grid()}
    openvino = find_spec("openvino") is not None
    if openvino:  # the naive export is also timed as a user would run it on OpenVINO: its defaults, once
        expected.add(("naive export on OpenVINO defaults", 0, None, None))
        artifacts.add("naive export on OpenVINO defaults")
    assert timed == expected
    # synthetic calibration: int8 and fp16 were only reported, so fp32 is the one that may be recommended
    assert set(selection["left_out"]) == {"model.int8.onnx", "model.fp16.onnx"}
    assert {r["runtime"] for r in selection["rows"]} == {"onnxruntime"} | ({"openvino"} if openvino else set())
    # the load each pass ran under is recorded with the choice
    for name in ("first_pass", "second_pass"):
        load = selection["load"][name]
        assert load["rounds"] >= 3 and load["pairs"] >= 1 and load["round_spread"] >= 0
        assert load["load_average_before"] >= 0 and load["load_average_after"] >= 0
    # the edge runtimes installed here, whose artifacts this folder lacks, are named as what could join the choice
    installed = [
        name
        for name, module in (("litert", "ai_edge_litert"), ("executorch", "executorch"), ("openvino", "nncf"))
        if find_spec(module)
    ]
    assert selection["not_built"] == installed
    assert (f"{','.join(installed)} installed here" in result.stderr) == bool(installed)
    # a second pass re-times the finalists, chosen on the first pass: the fastest eligible pairs and every other
    # artifact's best pair; every row's median is over all its samples, so finalists have more of them
    finalists = {(r["artifact"], r["threads"], r["spinning"], r["optimization"]) for r in selection["finalists"]}
    assert {r["artifact"] for r in selection["finalists"]} == artifacts
    counts = {(r["artifact"], r["threads"], r["spinning"], r["optimization"]): r["samples"] for r in selection["rows"]}
    assert min(counts[key] for key in finalists) > min(counts[key] for key in counts if key not in finalists)
    # one table: each artifact's best, the recommendation and its ratios are read from the same rows
    rows = selection["rows"]
    assert [r["p50_ms"] for r in rows] == sorted(r["p50_ms"] for r in rows)
    for name, row in selection["best_per_artifact"].items():
        assert row == min((r for r in rows if r["artifact"] == name), key=lambda r: r["p50_ms"])
        low, high = row["p50_interval_ms"]
        assert low <= row["p50_ms"] <= high
    chosen = selection["recommended"]
    assert chosen["artifact"] == "model.onnx"
    assert_chosen_by_the_rule(selection)
    naive = selection["best_per_artifact"]["naive export"]["p50_ms"]
    assert chosen["ratios"]["to naive export"] == round(chosen["p50_ms"] / naive, 3)
    # the note says "slower" only when the intervals part, and "noise" when they overlap
    int8, fp32 = (selection["best_per_artifact"][n]["p50_interval_ms"] for n in ("model.int8.onnx", "model.onnx"))
    note = selection["note"] or ""
    assert ("int8 is slower than fp32" in note) == (int8[0] > fp32[1])
    assert ("within measurement noise" in note) == (int8[0] <= fp32[1] and fp32[0] <= int8[1])
    if fp32[0] > int8[1]:  # int8 measurably faster but only reported: the note says what would make it eligible
        assert "model.int8.onnx" in note and "--calib" in note
    # the bench table's batch-1 rows are the selection's measurement at bench's own settings, not a second one
    table = {row["model"]: row for row in json.loads(result.stdout)["results"] if row["batch"] == 1}
    for name in ("model.onnx", "model.int8.onnx", "model.fp16.onnx"):
        assert table[name]["measured_by"] == "selection"
        same = [
            r for r in rows if r["artifact"] == name and r["threads"] == physical_cores() and r["optimization"] == "all"
        ]
        same = [r for r in same if r["spinning"] is False]  # three models: bench runs them without spinning
        assert len(same) == 1 and table[name]["p50_ms"] == pytest.approx(same[0]["p50_ms"], abs=1e-3)
    assert "× the latency of naive export" in result.stderr
    assert "recommended: model.onnx (ONNX Runtime, " in result.stderr
    described = run_cli("info", str(folder))
    assert described.returncode == 0 and "model.onnx (ONNX Runtime," in described.stdout.replace("\n", " ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--select-seconds", "0.5"], "--select-seconds must be a number in [1, 3600]"),
        (["--provider", "cuda", "--allow-fallback"], "on --provider cpu"),
    ],
)
def test_select_refuses_what_it_cannot_do(quantized_build, args, message):
    result = run_cli("bench", str(quantized_build), "--select", *args)
    assert result.returncode == 2 and message in result.stderr

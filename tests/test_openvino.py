"""OpenVINO: ``convert --to openvino`` gated at the precision that runs, and a selection that holds under load.

The selection's rules (ties, load, changed choices) and the missing-extra error run in the
default suite without OpenVINO; the conversions, which need the ``[openvino]`` extra, are in
the slow suite, which CI runs with the extra installed.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from ghostexport.base.errors import UsageError

from .conftest import SMALL, assert_chosen_by_the_rule, load_json, run_cli

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import digits


def _row(artifact, p50, interval, threads=2, runtime="onnxruntime", spinning=True, optimization="all", **extra):
    return {
        "artifact": artifact,
        "runtime": runtime,
        "threads": threads,
        "spinning": spinning,
        "optimization": optimization,
        "p50_ms": p50,
        "p50_interval_ms": list(interval),
        "samples": 50,
        **extra,
    }


# --- the selection's rules ----------------------------------------------------------------------


def test_a_clear_winner_is_chosen_and_no_tie_is_recorded():
    from ghostexport.choose.trials import choose

    rows = [_row("model.int8.onnx", 1.0, (0.95, 1.05)), _row("model.onnx", 1.5, (1.4, 1.6))]
    chosen, tie = choose(rows)
    assert chosen is rows[0] and tie is None


def test_rows_not_told_apart_go_to_the_simpler_artifact_by_the_stated_rule():
    """int8 fastest by 3% with overlapping intervals: fp32 is chosen (full precision first), the tie recorded."""
    from ghostexport.choose.trials import SIMPLER_FIRST, choose

    rows = [
        _row("model.int8.onnx", 1.00, (0.90, 1.10)),
        _row("model.onnx", 1.03, (0.95, 1.12)),
        _row("model.tflite", 1.08, (1.05, 1.2), runtime="litert", spinning=None, optimization=None),  # beyond 5%
    ]
    chosen, tie = choose(rows)
    assert chosen["artifact"] == "model.onnx"
    assert tie["rule"] == SIMPLER_FIRST and tie["margin"] == 0.05
    assert [text.split(" (")[0] for text in tie["not_told_apart"]] == ["model.onnx", "model.tflite"]
    assert [text.split(" (")[0] for text in tie["competing"]] == ["model.int8.onnx", "model.onnx"]
    assert tie["chosen"].startswith("model.onnx (2 threads, spinning on, all)")


@pytest.mark.parametrize(
    ("second", "expected"),
    [
        # same precision: the more portable runtime (ONNX Runtime before OpenVINO)
        (_row("model.onnx", 1.02, (0.95, 1.1)), "model.onnx"),
        # same artifact and runtime: the runtime's default settings (every core, spinning on, all)
        (_row("model.xml", 1.02, (0.95, 1.1), threads=1, runtime="openvino", spinning=None, optimization=None), None),
    ],
)
def test_the_rule_prefers_the_portable_runtime_then_default_settings(second, expected):
    from ghostexport.choose.trials import choose

    fastest = _row("model.xml", 1.0, (0.9, 1.05), threads=1, runtime="openvino", spinning=None, optimization=None)
    chosen, tie = choose([fastest, second])
    if expected:
        assert chosen["artifact"] == expected
    else:  # both 1 thread here, both non-default (2 cores): equally simple, so the faster median
        assert chosen is fastest
    assert tie is not None


def test_default_threads_beat_a_chosen_count_when_not_told_apart():
    from ghostexport.choose.trials import choose
    from ghostexport.runtime.ort import physical_cores

    cores = physical_cores()
    one = _row("model.onnx", 1.0, (0.9, 1.1), threads=1, spinning=False)
    default = _row("model.onnx", 1.02, (0.92, 1.1), threads=cores)
    chosen, _ = choose([one, default])
    assert chosen is (default if cores != 1 else one)


def test_each_pass_records_the_load_it_ran_under():
    from ghostexport.choose.trials import timed_pass

    calls = []
    samples, load = timed_pass({"a": lambda: calls.append(1), "b": lambda: time.sleep(0.001)}, 0.2, frozenset())
    assert set(samples) == {"a", "b"} and len(samples["a"]) == len(samples["b"]) >= 15
    assert load["rounds"] >= 3 and load["pairs"] == 2 and load["seconds"] > 0
    assert load["load_average_before"] >= 0 and load["load_average_after"] >= 0
    assert 0 <= load["round_spread"] < 50


def _found(rows, load_now=0.5):
    return {"rows": rows, "load": {"second_pass": {"load_average_before": load_now}}}


@pytest.mark.parametrize(
    ("now", "why"),
    [
        (_row("model.onnx", 1.5, (1.4, 1.6), threads=1), "measurably slower now"),
        (_row("model.onnx", 1.05, (0.95, 1.1), threads=1), "not told apart from this choice"),
        (None, "was not timed with those settings here"),
    ],
)
def test_a_changed_choice_says_why(now, why):
    from ghostexport.choose.selection import _changed_from

    chosen = _row("model.int8.onnx", 1.0, (0.9, 1.05))
    previous = {
        "created": "2026-01-01T00:00:00Z",
        "recommended": _row("model.onnx", 0.9, (0.85, 0.95), threads=1),
        "load": {"second_pass": {"load_average_before": 0.1}},
    }
    changed = _changed_from(previous, chosen, _found([chosen, *([now] if now else [])], load_now=1.9))
    assert changed["artifact"] == "model.onnx" and changed["settings"] == "1 thread, spinning on, all"
    assert why in changed["why"] and changed["load_average_then"] == 0.1 and changed["load_average_now"] == 1.9
    assert _changed_from(previous, previous["recommended"], _found([])) is None  # the same choice: nothing to say
    assert _changed_from(None, chosen, _found([])) is None


def test_every_gate_of_an_artifact_must_pass_for_it_to_be_chosen():
    from ghostexport.choose.selection import passed_gates

    assert passed_gates({"parity": {"verdict": "pass"}, "quality": {"verdict": "pass"}})
    assert not passed_gates({"parity": {"verdict": "pass"}, "quality": {"verdict": "reported"}})
    assert not passed_gates({"parity": {"verdict": "fail"}, "quality": {"verdict": "pass"}})
    assert not passed_gates({}) and not passed_gates(None)


def test_openvino_settings_read_as_they_run():
    from ghostexport.choose.trials import openvino_settings

    assert openvino_settings(2, "bf16").label() == "2 threads, latency hint, 1 stream, bf16, unpinned"
    assert openvino_settings(0, None).label() == "default threads, latency hint, default precision"
    assert openvino_settings(1, "f32").may_spin is False and openvino_settings(2, "f32").may_spin


# --- options and the extra ---------------------------------------------------------------------


def test_a_missing_openvino_is_one_line_naming_its_extra(small_build, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "nncf", None)
    result = run_cli("convert", str(small_build), "--to", "openvino")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "ghostexport[openvino]" in result.stderr
    piped = run_cli("pipeline", *SMALL, "--edge", "openvino", "--out", str(small_build.parent / "never"))
    assert piped.returncode == 2 and "ghostexport[openvino]" in piped.stderr
    assert not (small_build.parent / "never").exists()


def test_inference_precision_is_an_openvino_setting(small_build):
    from ghostexport.stages.convert import convert

    with pytest.raises(UsageError, match="--inference-precision applies to --to openvino"):
        convert(small_build, to="litert", inference_precision="f32")
    result = run_cli("convert", str(small_build), "--to", "openvino", "--inference-precision", "fp64")
    assert result.returncode == 2 and "fp64" in result.stderr


def test_openvino_joins_a_pipeline_only_for_x86_targets_where_installed(monkeypatch):
    from ghostexport.runtime import edge
    from ghostexport.stages.specs import BuildSpec, PipelineSpec, default_runtimes

    monkeypatch.setattr(edge, "runtime_installed", lambda runtime, part="runtime": True)
    assert default_runtimes("x86-vnni") == ("openvino",) and default_runtimes("x86-avx2") == ("openvino",)
    assert default_runtimes("arm64") == () and default_runtimes("mobile") == () and default_runtimes("cuda") == ()
    monkeypatch.setattr(edge, "runtime_installed", lambda runtime, part="runtime": False)
    assert default_runtimes("x86-vnni") == ()
    spec = PipelineSpec(BuildSpec(width=0.5, resolution=64, target="arm64"), edge=()).validated()
    assert spec.edge == ()


# --- conversions (slow: the [openvino] extra) ------------------------------------------------------


@pytest.mark.slow
def test_the_ir_is_gated_at_the_precision_the_cpu_runs(digits_folder, tmp_path):
    """auto: OpenVINO's own choice here, recorded with why; fp32 parity in f32, and bf16 judged as bf16."""
    pytest.importorskip("openvino")
    from ghostexport.evidence.quality import REDUCED_PRECISION_GATES
    from ghostexport.runtime.openvino import default_precision

    folder, _, test = digits_folder
    folder = Path(shutil.copytree(folder, tmp_path / folder.name))
    result = run_cli("convert", str(folder), "--to", "openvino", "--eval", str(test), "--json", "-")
    assert result.returncode == 0, result.stderr
    record = load_json(folder / "manifest.json")["artifacts"]["model.xml"]
    here, why = default_precision()
    assert record["inference"]["setting"] == "auto" and record["inference"]["precision"] == here
    assert record["inference"]["how"] == why and record["inference"]["compiled"]["inference_precision"] == here
    assert record["parity"]["verdict"] == "pass" and record["parity"]["max_abs"] < 1e-4  # the conversion, in f32
    assert (
        record["weights"]["file"] == "model.bin" and (folder / "model.bin").stat().st_size == record["weights"]["bytes"]
    )
    assert record["conversion"]["compress_to_fp16"] is False and record["conversion"]["ops"]["Convolution"] > 0
    if here != "f32":  # run in bf16/f16 here: judged on the held-out digits as that precision
        quality = record["quality"]
        assert quality["enforced"] and quality["verdict"] == "pass" and f"OpenVINO in {here}" in quality["reference"]
        assert quality["gate"] == asdict(REDUCED_PRECISION_GATES[here])
    else:
        assert "quality" not in record
    assert json.loads(result.stdout)["verdict"] == "pass"


@pytest.mark.slow
@pytest.mark.parametrize("forced", ["f32", "bf16"])
def test_each_forced_precision_takes_its_own_gate(forced, digits_folder, tmp_path):
    """Both branches on any CPU: f32 is gated on parity alone; bf16 on the bf16 quality gate too."""
    pytest.importorskip("openvino")
    folder, _, test = digits_folder
    folder = Path(shutil.copytree(folder, tmp_path / folder.name))
    result = run_cli(
        "convert", str(folder), "--to", "openvino", "--inference-precision", forced, "--eval", str(test), "--json", "-"
    )
    assert result.returncode == 0, result.stderr
    record = load_json(folder / "manifest.json")["artifacts"]["model.xml"]
    inference = record["inference"]
    assert inference["setting"] == forced and f"forced with --inference-precision {forced}" in inference["how"]
    # what runs is what the compiled model reports: a CPU without bf16 runs f32 whatever is asked, and says so
    ran = inference["precision"]
    assert ran == inference["compiled"]["inference_precision"] and ran in (forced, "f32")
    assert (ran != forced) == ("does not compute" in inference["how"])
    assert record["parity"]["verdict"] == "pass"
    if ran == "f32":
        assert "quality" not in record
    else:
        assert record["quality"]["verdict"] == "pass" and record["quality"]["gate"]["min_agreement"] == 0.98
    # check runs the IR at that precision and judges it as such
    checked = run_cli("check", str(folder), "--data", str(test), "--json", "-")
    assert checked.returncode == 0, checked.stderr
    entry = next(e for e in json.loads(checked.stdout)["results"] if e["artifact"] == "model.xml")
    assert entry["precision"] == ("fp32" if ran == "f32" else ran) and entry["verdict"] == "pass"
    assert entry["providers_used"] == ["OpenVINO (CPU)"]


@pytest.mark.slow
def test_int8_on_the_same_calibration_benched_selected_and_guarded(digits_folder, tmp_path):
    pytest.importorskip("nncf")
    from ghostexport.runtime.ort import physical_cores

    folder, calib, test = digits_folder
    folder = Path(shutil.copytree(folder, tmp_path / folder.name))
    assert run_cli("quantize", str(folder), "--calib", str(calib), "--eval", str(test)).returncode == 0
    for precision in ("fp32", "int8"):
        made = run_cli(
            "convert", str(folder), "--to", "openvino", "--precision", precision, "--calib", str(calib),
            "--eval", str(test), "--json", "-",
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        assert "Statistics collection" not in made.stderr + made.stdout and "INFO:nncf" not in made.stderr
    manifest = load_json(folder / "manifest.json")
    int8 = manifest["artifacts"]["model.int8.xml"]
    assert int8["quality"]["enforced"] and int8["quality"]["verdict"] == "pass"
    assert int8["quality"]["accuracy_drop_points"] <= 1.0
    assert int8["conversion"]["quantized_ops"] > 0 and len(int8["conversion"]["kept_float"]) == 1  # the stem
    # one calibration for every runtime: the ONNX int8 and the IR's were calibrated on the same images
    assert int8["calibration"]["source"] == manifest["artifacts"]["model.int8.onnx"]["calibration"]["source"]
    # bench times both IRs on OpenVINO at their gated precision, batch 1 only
    timed = run_cli("bench", str(folder), "--iters", "5", "--batches", "1,2", "--json", "-")
    assert timed.returncode == 0, timed.stderr
    rows = {(row["model"], row["batch"]): row for row in json.loads(timed.stdout)["results"]}
    precision = manifest["artifacts"]["model.xml"]["inference"]["precision"]
    assert rows[("model.xml", 1)]["provider"] == f"OpenVINO (CPU), {precision}" and ("model.xml", 2) not in rows
    # the selection: every gate passed on real digits, so both IRs compete, beside the naive export on OpenVINO
    selected = run_cli("bench", str(folder), "--select", "--select-seconds", "4", "--iters", "2", "--json", "-")
    assert selected.returncode == 0, selected.stderr
    selection = load_json(folder / "manifest.json")["recommended"]
    assert selection["left_out"] == {}
    openvino_rows = [row for row in selection["rows"] if row["runtime"] == "openvino"]
    cores = physical_cores()
    assert {(row["artifact"], row["threads"]) for row in openvino_rows} == {
        ("model.xml", threads) for threads in {1, cores}
    } | {("model.int8.xml", threads) for threads in {1, cores}} | {("naive export on OpenVINO defaults", 0)}
    assert all(row["hint"] == "latency" for row in openvino_rows)
    assert_chosen_by_the_rule(selection)
    assert "× the latency of naive export on OpenVINO defaults" in selected.stderr
    # a rerun that chooses otherwise says why; one that does not, says nothing
    again = run_cli("bench", str(folder), "--select", "--select-seconds", "4", "--iters", "2")
    assert again.returncode == 0, again.stderr
    second = load_json(folder / "manifest.json")["recommended"]
    same = (second["recommended"]["artifact"], second["recommended"]["threads"]) == (
        selection["recommended"]["artifact"],
        selection["recommended"]["threads"],
    )
    assert (second["changed_from"] is None) == same
    # the weights are verified with the IR: a changed model.bin is refused, nothing run
    (folder / "model.bin").write_bytes((folder / "model.bin").read_bytes()[:-4] + b"\0\0\0\0")
    stale = run_cli("check", str(folder))
    assert stale.returncode == 2 and "model.bin changed since it was recorded" in stale.stderr


@pytest.mark.slow
def test_a_users_model_on_real_digits_earns_its_openvino_gates(tmp_path):
    """A torchvision-style ResNet trained on digits, through the pipeline with OpenVINO: every gate on real images."""
    pytest.importorskip("nncf")
    import torch
    from safetensors.torch import save_file

    import tests.torchvision_like as zoo
    from ghostexport.evidence.data import load_dataset
    from ghostexport.folder.records import preprocess_config

    calib, test = digits.write_folder("calib", tmp_path / "calib"), digits.write_folder("test", tmp_path / "test")
    train = digits.write_folder("train", tmp_path / "train")
    data = load_dataset(str(train), preprocess_config(32), (3, 32, 32))
    model = digits.train(zoo.tiny_resnet(num_classes=10), data.inputs, data.labels, epochs=4)
    checkpoint = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(checkpoint))
    with torch.no_grad():
        held = load_dataset(str(test), preprocess_config(32), (3, 32, 32))
        assert (model(torch.from_numpy(held.inputs)).argmax(1).numpy() == held.labels).mean() > 0.8
    result = run_cli(
        "pipeline", "--model", "tests.torchvision_like:tiny_resnet", "--checkpoint", str(checkpoint),
        "--num-classes", "10", "--resolution", "32", "--calib", str(calib), "--eval", str(test),
        "--edge", "openvino", "--select-seconds", "4", "--bench-iters", "3", "--out", str(tmp_path / "models"),
        "--json", "-",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    payload = json.loads(result.stdout)
    assert payload["verdict"] == "pass"
    verdicts = {stage["stage"]: stage["verdict"] for stage in payload["stages"]}
    assert verdicts["convert to openvino fp32"] == "pass" and verdicts["convert to openvino int8"] == "pass"
    manifest = load_json(tmp_path / "models" / "tiny_resnet-c10-r32" / "manifest.json")
    int8 = manifest["artifacts"]["model.int8.xml"]
    assert int8["quality"]["accuracy_drop_points"] <= 2.0
    # NNCF's fast bias correction can cost this model 10-15 dB: both ways are measured, the better one kept
    chosen = int8["conversion"]["bias_correction"]
    figures = chosen["calibration_sqnr_db"]
    assert figures[chosen["kept"]] == max(figures.values())
    assert manifest["recommended"]["left_out"] == {}
    assert {"model.xml", "model.int8.xml"} <= set(manifest["recommended"]["best_per_artifact"])

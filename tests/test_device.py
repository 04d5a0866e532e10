"""``check --on CMD``: the artifacts run on another interpreter fed through a pipe, the gates applied here.

The "device" in these tests is this machine's Python started by a command, with ghostexport and
torch made unimportable in it, so the worker is shown to need only numpy and onnxruntime. The
failure cases are commands that lack onnxruntime, cannot load the model, die or print
something else; each must be one line, exit 2, and leave the manifest as it was.
"""

from __future__ import annotations

import json
import platform
import shlex
import shutil
import sys
from pathlib import Path

import pytest

from ghostexport.runtime import device_worker

from .conftest import load_json, run_cli


def interpreter(preamble: str = "") -> str:
    """A command that starts this Python with ghostexport and torch blocked, running ``preamble`` first."""
    code = f"import sys; sys.modules.update(ghostexport=None, torch=None); {preamble}exec(sys.stdin.read())"
    return f"{shlex.quote(sys.executable)} -I -c {shlex.quote(code)}"


@pytest.fixture
def folder(quantized_build, tmp_path) -> Path:
    return Path(shutil.copytree(quantized_build, tmp_path / quantized_build.name))


def test_check_on_a_device_gives_the_local_figures_and_records_where(folder, tmp_path):
    result = run_cli("check", str(folder), "--on", interpreter(), "--json", str(tmp_path / "r.json"))
    assert result.returncode == 0, result.stderr
    results = load_json(tmp_path / "r.json")["results"]
    local = {r["artifact"]: r for r in results if "device" not in r}
    remote = {r["artifact"]: r for r in results if "device" in r}
    assert set(remote) == {"model.onnx", "model.int8.onnx", "model.fp16.onnx"} == set(local)
    for name, entry in remote.items():
        # the same ONNX Runtime build on the same CPU: the same outputs, so the same figures
        assert entry["max_abs"] == pytest.approx(local[name]["max_abs"], rel=1e-6, abs=1e-9), name
        assert entry["verdict"] == local[name]["verdict"]
        assert entry["device"]["emulated"] is False and entry["device"]["onnxruntime"]
    recorded = load_json(folder / "manifest.json")["checks"][-1]["results"]
    assert [r.get("device", {}).get("command") for r in recorded].count(interpreter()) == 3
    assert "via" in result.stdout
    assert f"ghostexport check: {folder}, on {platform.machine()}" in " ".join(result.stdout.split())  # its own table
    described = run_cli("info", str(folder), "--json", "-")
    assert described.returncode == 0 and "checked on" in described.stderr + described.stdout
    seen = json.loads(described.stdout)["manifest"]["devices"][interpreter()]
    assert seen["verdicts"] == {name: entry["verdict"] for name, entry in remote.items()}


@pytest.mark.parametrize(
    ("preamble", "expected"),
    [
        (
            "sys.modules['onnxruntime'] = None; ",
            "onnxruntime is not installed on the device: install numpy and onnxruntime",
        ),
        (
            "import onnxruntime; onnxruntime.InferenceSession = "
            "lambda *a, **k: (_ for _ in ()).throw(RuntimeError('Opset 17 is under development')); ",
            "cannot load it: Opset 17 is under development: upgrade onnxruntime on the device",
        ),
        ("import os; sys.stdin.read(); os._exit(137); ", "stopped (exit 137) before answering"),
        ("sys.stdin.read(); print('Welcome to the board'); sys.exit(0); ", "not a ghostexport result"),
    ],
    ids=["no-onnxruntime", "old-onnxruntime", "dies", "garbage"],
)
def test_a_failing_device_is_one_line_and_changes_nothing(folder, preamble, expected):
    before = (folder / "manifest.json").read_bytes()
    result = run_cli("check", str(folder), "--on", interpreter(preamble))
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: device ") and expected in lines[0], result.stderr
    assert (folder / "manifest.json").read_bytes() == before


def test_an_unstartable_device_is_named(folder):
    result = run_cli("check", str(folder), "--on", "no-such-ssh pi@board python3")
    assert result.returncode == 2 and "no-such-ssh not found: check the --on command" in result.stderr


@pytest.mark.parametrize(
    ("machine", "flags", "implementer", "emulated"),
    [
        ("aarch64", ["sse2", "avx2", "fma"], None, True),  # older qemu-user: the host's /proc/cpuinfo
        ("aarch64", ["fp", "asimd", "asimddp", "sve"], "0x00", True),  # qemu-user 10: its synthetic "max" CPU
        ("aarch64", ["fp", "asimd", "asimddp"], "0x41", False),  # an Arm-designed core (Pi 5, Graviton)
        ("x86_64", ["avx2"], None, False),
    ],
)
def test_an_emulated_cpu_is_told_apart(monkeypatch, machine, flags, implementer, emulated):
    """qemu-user runs an aarch64 process on x86: what /proc/cpuinfo shows gives it away."""
    monkeypatch.setattr(device_worker.platform, "machine", lambda: machine)
    monkeypatch.setattr(device_worker, "cpu_info", lambda: ("some CPU", flags, implementer))
    described = device_worker.describe()
    assert described["emulated"] is emulated and described["machine"] == machine


def test_the_worker_needs_neither_ghostexport_nor_torch():
    source = Path(device_worker.__file__).read_text()
    imported = {
        line.split()[1].split(".")[0] for line in source.splitlines() if line.strip().startswith(("import ", "from "))
    }
    assert imported <= {"base64", "io", "json", "platform", "sys", "time", "numpy", "onnxruntime"}, imported


def test_bench_on_a_device_records_rows_that_name_it(folder, tmp_path):
    result = run_cli("bench", str(folder), "--iters", "5", "--warmup", "1", "--on", interpreter(), "--json", "-")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["results"]
    remote = [row for row in rows if row.get("device") == interpreter()]
    assert {row["model"].split(" on ")[0] for row in remote} == {"model.onnx", "model.int8.onnx", "model.fp16.onnx"}
    assert all(row["iterations"] == 5 and row["emulated"] is False and row["p50_ms"] > 0 for row in remote)
    assert "ghostexport bench on" in result.stderr + result.stdout  # the device's own table
    recorded = load_json(folder / "manifest.json")["benchmarks"][-1]["results"]
    assert [row.get("measured_by") for row in recorded].count("device") == 3


def test_bench_on_refuses_what_it_cannot_do_there(folder):
    result = run_cli("bench", str(folder), "--streams", "2", "--on", interpreter())
    assert result.returncode == 2 and "drop --provider, --streams and --seconds" in result.stderr


def test_the_pipeline_passes_its_devices_to_check_and_bench(tmp_path):
    args = ("--width", "0.5", "--resolution", "64", "--no-select", "--bench-iters", "5", "--out", str(tmp_path))
    result = run_cli("pipeline", *args, "--on", interpreter())
    assert result.returncode == 0, result.stderr
    manifest = load_json(tmp_path / "ghostnet_050-r64" / "manifest.json")
    assert sum("device" in entry for entry in manifest["checks"][-1]["results"]) == 3
    assert sum(row.get("device") == interpreter() for row in manifest["benchmarks"][-1]["results"]) == 3
    assert interpreter() in manifest["benchmarks"][-1]["environment"]["devices"]
    report = (tmp_path / "ghostnet_050-r64" / "report.md").read_text()
    assert report.count(f"{platform.machine()}: `{interpreter()}`") == 3  # the check table says where each ran


def test_select_on_a_device_records_its_choice_there(folder):
    """The folder's verified artifacts timed on the device; its choice kept per device beside this machine's."""
    manifest = load_json(folder / "manifest.json")
    verified = {name for name, record in manifest["artifacts"].items() if passed(record)}
    result = run_cli("bench", str(folder), "--select", "--select-seconds", "1", "--iters", "6", "--on", interpreter())
    assert result.returncode == 0, result.stderr
    chosen = load_json(folder / "manifest.json")["recommended_on"][interpreter()]
    assert {row["artifact"] for row in chosen["rows"]} == verified
    assert {row["threads"] for row in chosen["rows"]} == {1, "default"}
    assert chosen["recommended"] == min(chosen["rows"], key=lambda row: row["p50_ms"])
    assert chosen["device"]["emulated"] is False and chosen["note"] is None
    assert "recommended on" in run_cli("info", str(folder)).stdout


def test_an_emulated_device_is_never_recommended_from(folder):
    """A device that says it is emulated (forced here: its worker's cpuinfo reads like qemu's) gets rows, no choice."""
    fake = "import platform; platform.machine = lambda: 'aarch64'; "
    preamble = fake + "import builtins; real = builtins.open; "
    preamble += "builtins.open = lambda f, *a, **k: real(f, *a, **k) if f != '/proc/cpuinfo' else __import__('io').StringIO('CPU implementer : 0x00\\nFeatures : fp asimd\\n'); "
    result = run_cli(
        "bench", str(folder), "--select", "--select-seconds", "1", "--iters", "6", "--on", interpreter(preamble)
    )
    assert result.returncode == 0, result.stderr
    chosen = load_json(folder / "manifest.json")["recommended_on"][interpreter(preamble)]
    assert chosen["device"]["emulated"] is True and chosen["recommended"] is None and "emulated" in chosen["note"]
    assert chosen["rows"]  # measured and kept, just not used to choose


def passed(record: dict) -> bool:
    return (record.get("quality") or record.get("parity") or {}).get("verdict") == "pass"


def test_bench_on_skips_a_static_batch_model_at_other_batches_as_here(tmp_path):
    """A batch-1 build (--target mobile) is timed on the device at batch 1 and skipped at 4, with bench's warning."""
    assert (
        run_cli(
            "build", "--width", "0.5", "--resolution", "64", "--target", "mobile", "--out", str(tmp_path)
        ).returncode
        == 0
    )
    folder = tmp_path / "ghostnet_050-r64-b1"
    result = run_cli("bench", str(folder), "--batches", "1,4", "--iters", "3", "--on", interpreter(), "--json", "-")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    remote = [(row["batch"], row["device"]) for row in payload["results"] if row.get("device")]
    assert remote == [(1, interpreter())]
    assert "model.onnx: static batch 1, skipped at batch 4" in payload["warnings"]

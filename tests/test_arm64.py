"""ARM64 evidence without ARM hardware: ``check --on`` an emulated aarch64 Python (slow suite).

``scripts/arm64_python.sh`` builds it from the package registries (qemu-user-static from
bookworm-backports, Debian's arm64 CPython, the aarch64 wheels of numpy and onnxruntime) and
caches it. The trained digits GhostNet is built for ``--target arm64`` (s8/s8 int8) and for
``--target mobile`` (batch 1, the mobile op forms); every artifact's outputs are computed by
ONNX Runtime's ARM kernels and must pass the same gates, enforced on real held-out images.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import SMALL_SIZE, load_json, run_cli

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import digits  # noqa: E402

pytestmark = pytest.mark.slow
CHECKPOINT = ROOT / "tests" / "data" / "ghostnet_050-digits-r64.safetensors"


@pytest.fixture(scope="module")
def arm64() -> str:
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "arm64_python.sh")], capture_output=True, text=True, env=_with_python()
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


def _with_python() -> dict:
    return {**os.environ, "PYTHON": sys.executable}


@pytest.mark.parametrize("target", ["arm64", "mobile"])
def test_the_arm64_artifacts_pass_their_gates_on_arm_kernels(arm64, target, tmp_path):
    calib, held_out = tmp_path / "calib", tmp_path / "test"
    digits.write_folder("calib", calib)
    digits.write_folder("test", held_out, limit=48)
    build = run_cli(
        "build", *SMALL_SIZE, "--num-classes", "10", "--checkpoint", str(CHECKPOINT), "--target", target,
        "--out", str(tmp_path / "m"), "--json", str(tmp_path / "b.json"),
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    folder = Path(load_json(tmp_path / "b.json")["folder"])
    if target == "arm64":
        quantized = run_cli("quantize", str(folder), "--calib", str(calib), "--eval", str(held_out), "--no-baseline")
        assert quantized.returncode == 0, quantized.stderr
    result = run_cli("check", str(folder), "--data", str(held_out), "--batches", "8", "--on", arm64, "--json", "-")
    assert result.returncode == 0, result.stderr
    entries = json.loads(result.stdout)["results"]
    remote = {entry["artifact"]: entry for entry in entries if entry.get("device")}
    local = {entry["artifact"]: entry for entry in entries if not entry.get("device")}
    expected = {"model.onnx", "model.int8.onnx"} if target == "arm64" else {"model.onnx"}
    assert set(remote) == expected
    for name, entry in remote.items():
        device = entry["device"]
        assert device["machine"] == "aarch64" and device["emulated"] is True, device
        assert entry["verdict"] == "pass" and entry["enforced"], (name, entry["reasons"])
        if name == "model.int8.onnx":
            # ARM's s8/s8 kernels give the quality measured on x86, within a fraction of a dB
            assert entry["sqnr_db"] >= 20 and abs(entry["sqnr_db"] - local[name]["sqnr_db"]) < 1.0
        else:
            assert entry["max_abs"] < 1e-4

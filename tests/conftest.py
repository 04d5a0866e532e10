"""Shared helpers: run the real CLI in a subprocess, and small fast build settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

#: Copies of shared/reference (state-dict layouts, parameter and MAC counts) kept with the tests.
REFERENCE = Path(__file__).resolve().parent / "reference"
#: Small enough for the default suite: a 0.5× GhostNet at 64² exports and gates in ~1 s.
SMALL = ["--width", "0.5", "--resolution", "64"]


def run_cli(
    *args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """``python -m ghostexport ARGS`` as a user would run it; returns the completed process."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "ghostexport", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def load_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def visible_entries(folder: Path) -> list[str]:
    """Everything a failed build could have left in ``folder`` (hidden staging included)."""
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.fixture(scope="session")
def small_build(tmp_path_factory) -> Path:
    """One small dynamic-batch build through the CLI, shared by read-only tests."""
    out = tmp_path_factory.mktemp("models")
    result = run_cli("build", *SMALL, "--out", str(out), "--json", str(out / "result.json"))
    assert result.returncode == 0, result.stderr + result.stdout
    return out / "ghostnet_050-r64"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    if not REFERENCE.is_dir():
        pytest.skip(f"reference data not found at {REFERENCE}")
    return REFERENCE

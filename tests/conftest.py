"""Shared helpers: run the real CLI in a subprocess, and small fast build settings."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import hypothesis
import pytest
import torch

# Property tests explore new examples on every local run; in CI (CI=true) they replay a fixed
# derandomized set, so a submission's verdict does not depend on the draw.
hypothesis.settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis.settings.load_profile("ci")

#: Reference state-dict layouts, parameter and MAC counts of the published models, kept with the tests.
REFERENCE = Path(__file__).resolve().parent / "reference"
#: Small enough for the default suite: a 0.5× GhostNet at 64² exports and gates in ~1 s.
SMALL_SIZE = ["--width", "0.5", "--resolution", "64"]
#: ... with the graph as built (no alignment, no split) whatever the host's own layout, so node counts are exact.
SMALL = [*SMALL_SIZE, "--align-channels", "0", "--no-split-concat-convs"]


def default_runtime_stages(target: str = "host") -> list[str]:
    """The pipeline's convert stages where no --edge is given: OpenVINO for an x86 target where it is installed."""
    from ghostexport.stages.specs import default_runtimes

    return [
        f"convert to {runtime} {precision}" for runtime in default_runtimes(target) for precision in ("fp32", "int8")
    ]


def run_cli(
    *args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 300, process: bool = False
) -> subprocess.CompletedProcess:
    """The real CLI on ARGS; returns its exit code, stdout and stderr.

    By default it runs in this process (``click``'s runner, with argv, environment, working
    folder, umask, signal handler and thread count restored afterwards), which spares each
    call the ~3 s import of torch and ONNX Runtime. ``process=True`` runs ``python -m
    ghostexport`` instead, as a user would: for what only a process shows (being killed, a
    SIGKILL fault point, the interpreter's start-up).
    """
    extra = env or {}
    fault = extra.get("GHOSTEXPORT_FAULT_AT", "")
    if process or (fault and not fault.endswith(":enospc")):
        return subprocess.run(
            [sys.executable, "-m", "ghostexport", *args],
            cwd=cwd,
            env={**os.environ, **extra},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    return _in_process(list(args), cwd, extra)


def _in_process(args: list[str], cwd: Path | None, env: dict) -> subprocess.CompletedProcess:
    from click.testing import CliRunner

    from ghostexport.base import files
    from ghostexport.cli import main

    saved_cwd, saved_argv, saved_threads = os.getcwd(), sys.argv, torch.get_num_threads()
    saved_umask, saved_term = os.umask(0o022), signal.getsignal(signal.SIGTERM)
    os.umask(saved_umask)
    files._FAULT_STEPS = 0
    try:
        if cwd is not None:
            os.chdir(cwd)
        sys.argv = ["ghostexport", *args]
        result = CliRunner().invoke(main, args, env=env, catch_exceptions=True)
    finally:
        os.chdir(saved_cwd)
        sys.argv = saved_argv
        os.umask(saved_umask)
        signal.signal(signal.SIGTERM, saved_term)
        torch.set_num_threads(saved_threads)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # escaped the CLI's own handling: a test should see the traceback
    return subprocess.CompletedProcess(["ghostexport", *args], result.exit_code, result.stdout, result.stderr)


def load_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def visible_entries(folder: Path) -> list[str]:
    """Everything a failed build could have left in ``folder`` (hidden staging included).

    A folder's lock file (``.<name>.lock``) stays by design: deleting a lock file that another
    process may be waiting on would let two commands hold "the" lock at once.
    """
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock")) if folder.exists() else []


@pytest.fixture(scope="session")
def small_build(tmp_path_factory) -> Path:
    """One small dynamic-batch build through the CLI, shared by read-only tests."""
    out = tmp_path_factory.mktemp("models")
    result = run_cli("build", *SMALL, "--out", str(out), "--json", str(out / "result.json"))
    assert result.returncode == 0, result.stderr + result.stdout
    return out / "ghostnet_050-r64"


@pytest.fixture(scope="session")
def quantized_build(small_build, tmp_path_factory) -> Path:
    """A copy of ``small_build`` with int8 and fp16 artifacts (synthetic calibration: figures reported only)."""
    folder = Path(shutil.copytree(small_build, tmp_path_factory.mktemp("quantized") / small_build.name))
    assert run_cli("quantize", str(folder), "--no-baseline").returncode == 0
    assert run_cli("quantize", str(folder), "--mode", "fp16").returncode == 0
    return folder


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    return REFERENCE


def reference_state(variant_file: str, seed: int = 11) -> dict[str, torch.Tensor]:
    """A checkpoint built from a reference TSV alone (keys and shapes), no model code involved."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for row in (REFERENCE / variant_file).read_text().splitlines()[1:]:
        key, shape = row.split("\t")
        dims = json.loads(shape)
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(100)
        elif key.endswith("running_var"):
            state[key] = torch.rand(dims, generator=generator) + 0.5
        else:
            state[key] = torch.randn(dims, generator=generator) * 0.1
    return state


@pytest.fixture(autouse=True)
def manifests_follow_the_schema(request):
    """After every test with a tmp_path: each manifest.json written there follows the published schema.

    The published JSON Schema is checked by jsonschema, apart from the pydantic model it was
    generated from; manifests a test broke on purpose (the hostile-input tests) are those
    ghostexport itself refuses, and are left out.
    """
    folder = request.getfixturevalue("tmp_path") if "tmp_path" in request.fixturenames else None
    yield
    if folder is None:
        return
    import jsonschema

    from ghostexport.folder.manifest import manifest_problem, manifest_schema

    validator = jsonschema.Draft202012Validator(manifest_schema())
    for path in folder.rglob("manifest.json"):
        try:
            manifest = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if manifest_problem(manifest) is None:
            errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(manifest)]
            assert errors == [], f"{path}: {errors[:3]}"


def assert_chosen_by_the_rule(selection: dict) -> None:
    """The recommendation is a row of the table: the fastest eligible one, or one the tie rule preferred within its margin."""
    from ghostexport.choose.trials import TIE_MARGIN

    chosen = {key: value for key, value in selection["recommended"].items() if key != "ratios"}
    assert chosen in selection["rows"]
    eligible = [
        r for r in selection["rows"] if r["artifact"] not in selection["left_out"] and "naive" not in r["artifact"]
    ]
    fastest = eligible[0]
    if chosen != fastest:
        tie = selection["tie"]
        assert tie is not None and chosen["p50_ms"] <= fastest["p50_ms"] * (1 + TIE_MARGIN)
        assert chosen["p50_interval_ms"][0] <= fastest["p50_interval_ms"][1]
        assert tie["chosen"].startswith(chosen["artifact"]) and tie["fastest"].startswith(fastest["artifact"])


#: GhostNet 0.5× at 64² trained on scikit-learn's digits (tests/data), for the conversions that need real accuracy
DIGITS = Path(__file__).parent / "data" / "ghostnet_050-digits-r64.safetensors"


@pytest.fixture(scope="session")
def digits_folder(tmp_path_factory) -> tuple[Path, Path, Path]:
    """The trained digits GhostNet (as built), with calibration and test images; tests copy it before changing it."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import digits

    root = tmp_path_factory.mktemp("digits")
    assert run_cli("build", *SMALL, "--checkpoint", str(DIGITS), "--out", str(root / "models")).returncode == 0
    calib, test = digits.write_folder("calib", root / "calib"), digits.write_folder("test", root / "test", limit=160)
    return root / "models" / "ghostnet_050-c10-r64", calib, test

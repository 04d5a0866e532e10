"""A kill at any commit step, or two commands at once, never damages a good folder.

``GHOSTEXPORT_FAULT_AT=N`` SIGKILLs the command at its N-th commit step (each file written
into staging, each rename, the folder exchange). For every N until the command completes,
the folder must afterwards be complete and consistent — the old state or the new one,
passing ``check`` — with ``LATEST`` naming a real folder; the next run removes what the
killed one left.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ghostexport.folder.artifacts import resolve_model, select_artifacts
from ghostexport.stages.check import check

from .conftest import SMALL, load_json, run_cli

FAULT_LIMIT = 12  # far more steps than any of these commands takes


def leftovers(root: Path) -> list[str]:
    """Hidden staging, scratch or temporary entries beside or inside the build folders."""
    found = [p.name for p in root.iterdir() if p.name.startswith(".") and not p.name.endswith(".lock")]
    for folder in (p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        found += [f"{folder.name}/{p.name}" for p in folder.iterdir() if p.name.startswith(".")]
    return found


def assert_consistent(folder: Path, allowed_artifact_sets: list[set[str]]) -> None:
    """Every recorded artifact is there with its recorded bytes, the set is an allowed one, check passes."""
    ref = resolve_model(folder)
    selected = select_artifacts(ref)  # verifies each sha256 against the manifest
    assert {name for name, _path, _record in selected} in allowed_artifact_sets
    visible = {p.name for p in folder.iterdir() if p.suffix == ".onnx"}
    assert visible == {name for name, _p, _r in selected}  # no unrecorded artifact either
    check(folder)  # fp32 parity enforced; the others reported on random inputs


def killed_runs(args: list[str], after_each) -> int:
    """Run ``ghostexport ARGS`` killed at step 1, 2, … until it completes; returns the completing N."""
    for step in range(1, FAULT_LIMIT + 1):
        result = run_cli(*args, env={"GHOSTEXPORT_FAULT_AT": str(step)})
        if result.returncode == 0:
            return step
        assert result.returncode == -signal.SIGKILL, result.stderr
        after_each(step)
    raise AssertionError(f"{args} was still being killed after {FAULT_LIMIT} steps")


@pytest.mark.slow  # a process killed at each of ~15 steps; CI runs the slow suite too
def test_a_rebuild_killed_at_every_step_leaves_the_old_or_the_new_folder(tmp_path):
    out = tmp_path / "models"
    assert run_cli("build", *SMALL, "--out", str(out)).returncode == 0
    folder = out / "ghostnet_050-r64"
    first = load_json(folder / "manifest.json")["artifacts"]["model.onnx"]["sha256"]
    seen = set()

    def after(step: int) -> None:
        assert_consistent(folder, [{"model.onnx"}])
        seen.add(load_json(folder / "manifest.json")["created"])
        assert (out / (out / "LATEST").read_text().strip()).is_dir()

    steps = killed_runs(["build", *SMALL, "--seed", "1", "--out", str(out)], after)
    assert steps >= 4  # staged model, staged manifest, exchange, LATEST
    assert load_json(folder / "manifest.json")["artifacts"]["model.onnx"]["sha256"] != first
    assert leftovers(out) == []  # the completing run removed what the killed ones left


@pytest.mark.slow  # a process killed at each step; CI runs the slow suite too
def test_a_quantize_killed_at_every_step_records_the_artifact_with_it_or_not_at_all(small_build, tmp_path):
    out = tmp_path / "models"
    folder = Path(shutil.copytree(small_build, out / small_build.name))

    steps = killed_runs(
        ["quantize", str(folder), "--mode", "fp16"],
        lambda step: assert_consistent(folder, [{"model.onnx"}, {"model.onnx", "model.fp16.onnx"}]),
    )
    assert steps >= 3
    assert_consistent(folder, [{"model.onnx", "model.fp16.onnx"}])
    assert leftovers(out) == []


@pytest.mark.slow  # four real processes racing; CI runs the slow suite too
def test_two_builds_and_two_quantizes_on_one_folder_at_once(tmp_path):
    out = tmp_path / "models"
    command = [sys.executable, "-m", "ghostexport"]
    builds = [
        subprocess.Popen(
            [*command, "build", *SMALL, "--seed", str(seed), "--out", str(out)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for seed in (1, 2)
    ]
    for process in builds:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr.decode()
    folder = out / "ghostnet_050-r64"
    assert_consistent(folder, [{"model.onnx"}])
    quantizes = [
        subprocess.Popen([*command, "quantize", str(folder), *mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for mode in (["--no-baseline"], ["--mode", "fp16"])
    ]
    for process in quantizes:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr.decode()
    # both records kept: the second commit re-read the manifest the first had written
    assert_consistent(folder, [{"model.onnx", "model.int8.onnx", "model.fp16.onnx"}])
    assert leftovers(out) == []


def test_sigterm_unwinds_and_leaves_nothing(tmp_path):
    out = tmp_path / "models"
    process = subprocess.Popen(
        [sys.executable, "-m", "ghostexport", "build", "--width", "1.0", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # wait until the work has started (the model line is printed), then terminate it
    for line in process.stdout:
        if " model " in line:
            break
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143 and "terminated" in stderr
    assert not out.exists() or (leftovers(out) == [] and not any(p.is_dir() for p in out.iterdir()))


@pytest.mark.parametrize("umask", [0o022, pytest.param(0o077, marks=pytest.mark.slow)])
def test_files_and_folders_follow_the_umask(tmp_path, umask):
    out = tmp_path / "models"
    script = (
        "import os, sys; os.umask(int(sys.argv[1], 8)); "
        "from ghostexport.cli import main; sys.argv = ['ghostexport', *sys.argv[2:]]; main()"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, oct(umask), "build", *SMALL, "--out", str(out)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    folder = out / "ghostnet_050-r64"
    assert folder.stat().st_mode & 0o777 == 0o777 & ~umask
    for name in ("model.onnx", "manifest.json"):
        assert (folder / name).stat().st_mode & 0o777 == 0o666 & ~umask, name
    assert (out / "LATEST").stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.slow
@pytest.mark.parametrize("step", [2, 6, 10, 14])
def test_a_pipeline_killed_mid_way_leaves_a_folder_that_passes_check(tmp_path, step):
    """A sample of the pipeline's commit steps (build, int8, fp16, check, bench, reports)."""
    out = tmp_path / "models"
    assert run_cli("build", *SMALL, "--out", str(out)).returncode == 0
    folder = out / "ghostnet_050-r64"
    result = run_cli(
        "pipeline", *SMALL, "--bench-iters", "2", "--out", str(out), env={"GHOSTEXPORT_FAULT_AT": str(step)}
    )
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    assert_consistent(
        folder,
        [{"model.onnx"}, {"model.onnx", "model.int8.onnx"}, {"model.onnx", "model.int8.onnx", "model.fp16.onnx"}],
    )
    assert run_cli("pipeline", *SMALL, "--bench-iters", "2", "--out", str(out)).returncode == 0
    assert leftovers(out) == []


@pytest.mark.parametrize("command", [pytest.param("build", marks=pytest.mark.slow), "quantize"])
def test_a_full_disk_at_any_step_is_exit_2_and_changes_nothing(small_build, tmp_path, command):
    """ENOSPC injected at each commit step: a one-line usage error, the folder as it was, nothing left."""
    out = tmp_path / "models"
    folder = Path(shutil.copytree(small_build, out / small_build.name))
    (out / "LATEST").write_text(folder.name + "\n")
    args = (
        ["build", *SMALL, "--seed", "3", "--out", str(out)]
        if command == "build"
        else ["quantize", str(folder), "--mode", "fp16"]
    )
    for step in range(1, FAULT_LIMIT + 1):
        before = {p.name: p.read_bytes() for p in folder.iterdir()}
        result = run_cli(*args, env={"GHOSTEXPORT_FAULT_AT": f"{step}:enospc"})
        if result.returncode == 0:
            break
        assert result.returncode == 2 and "No space left on device" in result.stderr, result.stderr
        assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
        assert leftovers(out) == []
    else:
        raise AssertionError("the command never completed")
    assert step >= 3
    if command == "build":  # the last step, LATEST, fails only as a warning: the folder is committed
        assert "LATEST" in result.stdout and "was not updated" in result.stdout


@pytest.mark.slow  # two real processes racing; CI runs the slow suite too
def test_two_quantizes_of_one_artifact_at_once_the_second_says_it_replaced_the_first(tmp_path):
    out = tmp_path / "models"
    built = subprocess.run(
        [sys.executable, "-m", "ghostexport", "build", *SMALL, "--out", str(out)], capture_output=True, text=True
    )
    assert built.returncode == 0, built.stderr
    folder = out / "ghostnet_050-r64"
    command = [sys.executable, "-m", "ghostexport", "quantize", str(folder), "--no-baseline"]
    racing = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [process.communicate(timeout=300) for process in racing]
    assert [process.returncode for process in racing] == [0, 0], outputs
    said = [stdout + stderr for stdout, stderr in outputs]
    assert sum("was written by another run while this one ran" in text for text in said) == 1, said
    assert_consistent(folder, [{"model.onnx", "model.int8.onnx"}])

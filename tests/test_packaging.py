"""Docker images, their install steps, and the users' CI workflow — checked offline."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILES = [ROOT / "docker" / "Dockerfile", ROOT / "docker" / "Dockerfile.cuda"]


def tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if not found:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    return found


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfiles_are_lint_clean(dockerfile):
    result = subprocess.run(
        [tool("hadolint"), "--config", str(ROOT / ".hadolint.yaml"), str(dockerfile)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfiles_copy_what_exists_and_run_as_non_root(dockerfile):
    text = dockerfile.read_text()
    for source in re.findall(r"^COPY\s+(.+?)\s+\S+$", text, flags=re.M):
        for part in source.split():
            assert (ROOT / part).exists(), part
    assert re.search(r"^USER\s+10001$", text, flags=re.M)
    assert 'ENTRYPOINT ["ghostexport"]' in text
    assert "torch==2.13.0" in text and "download.pytorch.org/whl/cpu" in text


def test_cuda_image_never_installs_the_cpu_onnxruntime():
    gpu = (ROOT / "docker" / "requirements-gpu.txt").read_text().split()
    assert "onnxruntime-gpu==1.32.0" in gpu
    assert not any(line.startswith("onnxruntime==") for line in gpu)
    assert "requirements-gpu.txt" in (ROOT / "docker" / "Dockerfile.cuda").read_text()


def test_image_requirements_match_the_package_and_are_pinned():
    for name in ("requirements-cpu.txt", "requirements-gpu.txt"):
        lines = [row for row in (ROOT / "docker" / name).read_text().splitlines() if row and not row.startswith("#")]
        assert all("==" in line for line in lines), name


def test_workflow_is_valid():
    workflow = ROOT / ".github" / "workflows" / "parity.yml"
    result = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(workflow)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = workflow.read_text()
    # a template for the users' repositories: their checkpoint and data, not this repository's code
    assert "pip install -e" not in text and "precision: [fp32, int8, fp16]" in text
    for needed in (
        '--checkpoint "$CHECKPOINT"',
        '--calib "$CALIB_DIR" --eval "$EVAL_DIR"',
        'ghostexport check --data "$EVAL_DIR"',
        "workflow_dispatch",
        "upload-artifact",
        "--json",
    ):
        assert needed in text, needed


@pytest.mark.slow
def test_cpu_image_install_steps_in_a_fresh_venv(tmp_path):
    """The CPU Dockerfile's pip steps, in a fresh venv (torch from this machine's disk instead
    of PyTorch's CPU index, which is not reachable here)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--no-cache-dir", "-q"]
    subprocess.run([*pip, "torch==2.13.0"], check=True)
    subprocess.run([*pip, "-r", str(ROOT / "docker" / "requirements-cpu.txt")], check=True)
    subprocess.run([*pip, "--no-deps", str(ROOT)], check=True)
    env = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    version = subprocess.run([str(venv / "bin" / "ghostexport"), "--version"], capture_output=True, text=True, env=env)
    assert version.returncode == 0 and "0.1.0" in version.stdout
    out = tmp_path / "models"
    built = subprocess.run(
        [str(venv / "bin" / "ghostexport"), "build", "--width", "0.35", "--resolution", "32", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert built.returncode == 0, built.stderr
    freeze = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "freeze"], capture_output=True, text=True
    ).stdout
    assert "onnxruntime==1.32.0" in freeze and "onnxruntime-gpu" not in freeze


@pytest.mark.slow
def test_cuda_requirements_resolve_without_the_cpu_onnxruntime(tmp_path):
    report = tmp_path / "report.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "-q",
            "--report",
            str(report),
            "-r",
            str(ROOT / "docker" / "requirements-gpu.txt"),
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0 and "No matching distribution" in result.stderr:
        pytest.skip("onnxruntime-gpu is not served for this platform here")
    assert result.returncode == 0, result.stderr
    names = {item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"]}
    assert "onnxruntime-gpu" in names and "onnxruntime" not in names


def _anchor(heading: str) -> str:
    """GitHub's anchor for a markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def test_docs_links_resolve_and_speak_of_the_project_alone():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md"]
    assert len(pages) >= 6 and (ROOT / "LICENSE").read_text().lstrip().startswith("Apache License")
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250
    for page in pages:
        text = page.read_text()
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if target.startswith(("http://", "https://")):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            assert linked.exists(), f"{page.name}: {target}"
            if anchor and linked.suffix == ".md":
                headings = re.findall(r"^#+ (.+)$", linked.read_text(), flags=re.M)
                assert anchor in {_anchor(h) for h in headings}, f"{page.name}: {target}"


#: references a reader of this repository does not have: a design file that lives elsewhere,
#: a workspace folder, numbered tracker items (written so that they do not match themselves)
UNSHARED = (re.compile(r"\bDESIGN\.md\b"), re.compile(r"\bshared/"), re.compile(r"\b[Ii]ssue\s#?\d"))


def test_code_and_docs_cite_nothing_a_reader_lacks():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    texts = [ROOT / name for name in tracked if name.endswith((".py", ".md", ".toml", ".yml", ".yaml", ".txt"))]
    assert len(texts) > 40, "git ls-files found the repository's files"
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in texts
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if any(pattern.search(line) for pattern in UNSHARED)
    ]
    assert found == []

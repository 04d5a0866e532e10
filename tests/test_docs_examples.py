"""Every command the README and ``--help`` show, run as written against real files (slow suite).

A sandbox folder holds what the examples name: a GhostNet 1.0× checkpoint (``ghostnet_1x.pth``,
random weights), real images in class sub-folders (``images/``, ``holdout/``: scikit-learn's
digits), their preprocessed ``calib.npy``, photographs (``cat.jpg``, ``dog.png``), copies of a
built model (``a.onnx``, ``other.onnx``, …) and the small digits-sized folder the predict example
names. Each example then runs in that folder through the real CLI. It must exit 0, except where
the documented outcome is another: ``--provider cuda``/``tensorrt`` exits 2 naming the missing
package on a machine without a GPU, and a quality gate enforced on real data may exit 1 (the
sandbox checkpoint is not trained). Exit 2 for any other reason (an option that does not exist,
a node name that is not in the graph) or 3 is a documentation bug.
"""

from __future__ import annotations

import re
import shlex
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ghostexport.folder.naming import write_latest

from .conftest import run_cli
from .test_deploy import sample_photographs

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import digits  # noqa: E402

pytestmark = pytest.mark.slow


def readme_examples() -> list[str]:
    """``ghostexport …`` in the README's code blocks and inline code."""
    text = (ROOT / "README.md").read_text()
    blocks = "\n".join(re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL))
    found = re.findall(r"`(ghostexport [^`]+)`", text)
    found += re.findall(r"^(ghostexport [^\n]+)$", blocks, flags=re.MULTILINE)
    found += re.findall(r"&& \.venv/bin/(ghostexport[^\n]*)", blocks)
    return [command.strip() for command in dict.fromkeys(found)]


def help_examples() -> list[str]:
    """The ``Examples:`` lines of every command's ``--help`` (and the group's)."""
    from ghostexport.cli import main

    texts = [main.help, *(command.help for command in main.commands.values())]
    return [
        line.strip().split("  #")[0].strip()
        for text in texts
        for line in (text or "").splitlines()
        if line.strip().startswith("ghostexport ")
    ]


EXAMPLES = list(dict.fromkeys([*readme_examples(), *help_examples()]))


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Path:
    from ghostexport.evidence.preprocess import preprocess_image
    from ghostexport.folder.records import preprocess_config
    from ghostexport.folder.reference import prepare_model

    root = tmp_path_factory.mktemp("examples")
    torch.save(prepare_model("ghostnet", 1.0, 1000, seed=5).state_dict(), root / "ghostnet_1x.pth")
    digits.write_folder("calib", root / "images")
    digits.write_folder("test", root / "holdout", limit=64)
    images = sorted((root / "images").rglob("*.png"))[:32]
    with_config = [Image.open(path) for path in images]
    np.save(root / "calib.npy", np.stack([preprocess_image(i, preprocess_config(224), 224) for i in with_config]))
    photos = sample_photographs()
    shutil.copy(photos[0], root / "cat.jpg")
    Image.open(photos[1]).save(root / "dog.png")
    shutil.copy(next((root / "holdout").rglob("*.png")), root / "digit.png")
    (root / "digits.txt").write_text("".join(f"digit {i}\n" for i in range(10)))
    for args in (["--width", "0.5", "--num-classes", "10", "--resolution", "64"], []):
        assert run_cli("build", *args, cwd=root).returncode == 0
    (root / "mynets.py").write_text(SMALL_CNN)  # the user's own model module that the --model examples name
    sys.path.insert(0, str(root))
    import mynets

    torch.save(mynets.small_cnn(num_classes=10).state_dict(), root / "small_cnn.pt")
    for name in ("a.onnx", "b.onnx", "other.onnx", "some/other/model.onnx"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / "models/ghostnet_100/model.onnx", root / name)
    return root


SMALL_CNN = """
from torch import nn


def small_cnn(num_classes=1000):
    def block(inp, out, stride):
        return [nn.Conv2d(inp, out, 3, stride, 1, bias=False), nn.BatchNorm2d(out), nn.ReLU()]

    return nn.Sequential(
        *block(3, 16, 1), *block(16, 32, 2), *block(32, 64, 2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes),
    )
"""


def expected_exits(command: str) -> set[int]:
    if re.search(r"--provider (cuda|tensorrt)", command):
        return {0, 2}  # 2 names the missing package here; 0 on a machine with a GPU
    if re.search(r"ghostify (resnet|vgg|mobilenet)", command):
        return {0, 2}  # a torchvision name: 2 names torchvision where it cannot be imported
    gated = re.search(r"\b(quantize|pipeline|convert)\b.*--(calib|eval)|\bcheck\b.*--data", command)
    return {0, 1} if gated else {0}


@pytest.mark.parametrize("command", EXAMPLES)
def test_documented_example_runs_as_written(command, sandbox):
    words = shlex.split(command)
    redirect = words.index(">") if ">" in words else None
    args = words[1:redirect]
    args = [arg.replace("/tmp/", f"{sandbox}/tmp/") for arg in args]
    # every example reads as if models/LATEST were the 1.0x build: an earlier example (ghostify, a build
    # with --out elsewhere) may have moved it
    write_latest(sandbox / "models", "ghostnet_100")
    result = run_cli(*args, cwd=sandbox, timeout=900)
    assert result.returncode in expected_exits(command), f"{command}\n{result.stdout[-1500:]}\n{result.stderr[-1500:]}"
    if result.returncode == 2:
        assert "ghostexport[gpu]" in result.stderr or "GPU" in result.stderr or "torchvision" in result.stderr, (
            result.stderr
        )
    if result.returncode == 1:
        assert "gate failed" in result.stdout + result.stderr or "failed" in result.stdout, result.stdout[-800:]
    if redirect is not None:  # e.g. info --schema > manifest.schema.json: the output is what would be written
        assert result.stdout.lstrip().startswith("{")


def test_the_examples_were_found():
    """The collectors see the README's table and every command's help (so a format change cannot empty them)."""
    assert len(readme_examples()) >= 8 and any(c.startswith("ghostexport pipeline") for c in readme_examples())
    assert {c.split()[1] for c in help_examples()} >= {"build", "quantize", "check", "bench", "pipeline", "predict"}


def test_the_guides_library_example_runs_as_written(sandbox, monkeypatch, capsys):
    """The guide's Python example, executed in the sandbox (its images/ and holdout/ are real)."""
    guide = (ROOT / "docs" / "guide.md").read_text()
    section = guide[guide.index("## Library API") :]
    code = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL).group(1)
    monkeypatch.chdir(sandbox)
    exec(compile(code, "docs/guide.md", "exec"), {"__name__": "guide_example"})
    printed = capsys.readouterr().out
    assert "models/ghostnet_050-r96 pass" in printed
    assert printed.count("\n") >= 5 and "model.onnx" in printed  # both modes, the check verdict, the bench rows


def test_the_guides_transcripts_are_what_the_commands_print_today():
    """docs/guide.md's printed outputs come from scripts/guide_transcripts.py; a change of their shape fails here.

    The script re-runs every transcript's commands in a sandbox and compares their stages,
    table rows and commands with the guide's (figures move from run to run; the shape does
    not). Re-running it without --check rewrites the guide.
    """
    import subprocess

    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "guide_transcripts.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]

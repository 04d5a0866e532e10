"""Re-run the commands whose output docs/guide.md shows, and write that output into the guide.

Each transcript in the guide sits between ``<!-- transcript NAME -->`` and
``<!-- /transcript -->``; this script runs NAME's commands in a sandbox folder (scikit-learn's
digits and sample photographs, the digits checkpoint in ``tests/data``, a ResNet-18 it
trains on digits for ``ghostify``) through the real CLI, and replaces the block with what
they printed. So the guide shows what the tool prints today, never a retyped figure.

    python scripts/guide_transcripts.py            # re-run and rewrite docs/guide.md
    python scripts/guide_transcripts.py --check    # re-run; exit 1 if an output changed shape

The shape of an output is what a reader relies on and what does not move from run to run or
CPU to CPU: the stages of the progress log in order, the final line's first word, and the
row labels of its tables. Figures (times, latencies, node counts) are not part of it; they
are simply re-written.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "guide.md"
sys.path[:0] = [str(ROOT), str(ROOT / "scripts"), str(ROOT / "benchmarks")]

#: transcript name -> the commands it shows, run in order in one sandbox (earlier ones make later ones' inputs)
TRANSCRIPTS: dict[str, list[str]] = {
    "pipeline": ["ghostexport pipeline"],
    "ghostify": [
        "ghostexport ghostify mynets:resnet18 --checkpoint r18-digits.safetensors --num-classes 10 --resolution 32 "
        "--train digits/train --eval digits/test --epochs 5"
    ],
    "quantize": [
        "ghostexport build --width 0.5 --resolution 64 --checkpoint ghostnet_050-digits-r64.safetensors",
        "ghostexport quantize --calib digits/calib --eval digits/test",
    ],
}
BLOCK = re.compile(r"(<!-- transcript (?P<name>[\w-]+) -->\n```\n)(?P<body>.*?)(```\n<!-- /transcript -->)", re.DOTALL)
STAGE = re.compile(r"^\s*\d+\.\d+s (\S+)")
TABLE_ROW = re.compile(r"^[│┃] (\S[^│┃]*?)\s*[│┃]")


def sandbox(root: Path) -> None:
    """What the commands name: digits folders, a photograph, the digits GhostNet, a trained ResNet-18 and its module."""
    import digits
    from ghostify_digits import train_original

    from tests.test_deploy import sample_photographs

    for split in ("train", "calib", "test"):
        digits.write_folder(split, root / "digits" / split)
    shutil.copy(sample_photographs()[0], root / "china.jpg")
    shutil.copy(ROOT / "tests" / "data" / "ghostnet_050-digits-r64.safetensors", root)
    shutil.copy(ROOT / "tests" / "torchvision_like.py", root / "mynets.py")  # a user's own model module
    train_original(root / "digits" / "train", root / "digits" / "test", 10, root / "r18-digits.safetensors")


def run(command: str, cwd: Path) -> str:
    """The command's output as a terminal 120 columns wide shows it (stderr and stdout interleaved)."""
    env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1", "TERM": "dumb", "PYTHONPATH": str(cwd)}
    executable = str(Path(sys.executable).with_name("ghostexport"))
    argv = [executable, *command.split()[1:]]
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{command} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return done.stderr + done.stdout


def transcripts() -> dict[str, str]:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        sandbox(root)
        return {
            name: "".join(f"$ {command}\n{run(command, root)}" for command in commands)
            for name, commands in TRANSCRIPTS.items()
        }


def shape(text: str) -> dict:
    """What must not change between runs: stage order, table row labels, the first word of the last line."""
    lines = [line for line in text.splitlines() if line.strip()]
    stages = list(dict.fromkeys(m.group(1) for line in lines if (m := STAGE.match(line))))
    rows = sorted({m.group(1) for line in lines if (m := TABLE_ROW.match(line))})
    commands = [line for line in lines if line.startswith("$ ")]
    return {"commands": commands, "stages": stages, "table rows": rows}


def blocks(text: str) -> dict[str, str]:
    return {m.group("name"): m.group("body") for m in BLOCK.finditer(text)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare shapes instead of rewriting the guide")
    args = parser.parse_args()
    guide = GUIDE.read_text(encoding="utf-8")
    shown = blocks(guide)
    missing = set(TRANSCRIPTS) - set(shown)
    if missing:
        print(f"docs/guide.md lacks transcript blocks: {', '.join(sorted(missing))}", file=sys.stderr)
        return 1
    fresh = transcripts()
    if args.check:
        changed = [name for name in TRANSCRIPTS if shape(fresh[name]) != shape(shown[name])]
        for name in changed:
            print(f"{name}: guide {shape(shown[name])}\n{' ' * len(name)}  now   {shape(fresh[name])}", file=sys.stderr)
        return 1 if changed else 0
    GUIDE.write_text(
        BLOCK.sub(lambda m: m.group(1) + fresh[m.group("name")] + m.group(4), guide),
        encoding="utf-8",
    )
    print(f"rewrote {len(fresh)} transcripts in {GUIDE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

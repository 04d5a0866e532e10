"""The docs' measured tables are rendered from the benchmarks' saved output, never typed in."""

from __future__ import annotations

import copy
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import docs_tables  # noqa: E402


def test_every_measured_table_is_what_its_saved_result_renders():
    assert docs_tables.main(["--check"]) == 0


def test_every_block_has_a_renderer_and_a_saved_result():
    names = {m.group("name") for doc in docs_tables.DOCUMENTS for m in docs_tables.BLOCK.finditer(doc.read_text())}
    assert names == set(docs_tables.RENDERERS)
    for name in names:
        source = docs_tables.SOURCES.get(name, name)
        assert (docs_tables.RESULTS / f"{source}.json").is_file(), f"run the {source} benchmark with --save"
        assert "Not measured yet" not in docs_tables.rendered(name)


def test_a_changed_figure_changes_the_table():
    """The check can fail: a saved figure moved by 10% no longer renders the table in the docs."""
    for name, render in docs_tables.RENDERERS.items():
        result = json.loads((docs_tables.RESULTS / f"{docs_tables.SOURCES.get(name, name)}.json").read_text())
        moved = copy.deepcopy(result)
        assert _move_first_figure(moved, FIGURES.get(name, ("p50_ms", "sqnr_db"))), name
        assert render(moved) != render(result), name


#: the figure each table shows, where it is not a latency or an SQNR
FIGURES = {"x86_runtimes": ("to_naive",), "x86_precision": ("sqnr_db",), "x86_summary": ("to_openvino_defaults",)}


def _move_first_figure(node, keys: tuple[str, ...]) -> bool:
    """Multiply the first figure under one of ``keys`` (or a ghostify latency) by 1.1, in place."""
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, float) and (key in keys or re.match(r"(original|ghosted) ", key)):
                node[key] = value * 1.1
                return True
            if _move_first_figure(value, keys):
                return True
    elif isinstance(node, list):
        return any(_move_first_figure(value, keys) for value in node)
    return False


def test_the_core_docs_read_in_twenty_minutes():
    """README, guide and design together stay near 6,000 words (about 20 minutes' reading)."""
    words = sum(len((ROOT / name).read_text().split()) for name in ("README.md", "docs/guide.md", "docs/design.md"))
    assert words <= 6500, words

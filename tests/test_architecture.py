"""The package is a one-way house: no import cycles, and no stage reaching into another stage.

Read from the source with ``ast`` (lazy imports inside functions included), so a cycle hidden
behind a function-level import is caught too. Stages are the commands' modules; everything
else is a shared floor below them. Only the pipeline and ghostify (which run stages in order),
the CLI and the package's top-level API may import stages.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ghostexport"
STAGES = {"builder", "quantize", "check", "bench", "convert", "predict", "info", "pipeline", "ghostify"}
#: the pipeline and ghostify run other stages in order (ghostify builds the original and the ghosted model)
MAY_IMPORT_STAGES = {"pipeline", "ghostify", "cli", "__init__", "__main__"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts) or "__init__"


def imports(path: Path) -> set[str]:
    """Modules of this package that ``path`` imports, as dotted names below ``ghostexport``."""
    here = module_name(path).split(".") if module_name(path) != "__init__" else []
    package = here if path.name == "__init__.py" else here[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = [*base, *(node.module.split(".") if node.module else [])]
                names = [".".join(target)] if node.module else [".".join([*base, a.name]) for a in node.names]
            elif node.module and node.module.startswith("ghostexport"):
                names = [node.module.removeprefix("ghostexport").lstrip(".")]
            else:
                continue
            found.update(name for name in names if name)
        elif isinstance(node, ast.Import):
            found.update(a.name.removeprefix("ghostexport.") for a in node.names if a.name.startswith("ghostexport."))
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges = {}
    for name, path in modules.items():
        # an import of a package means its __init__; of a module inside, that module
        edges[name] = {target for target in imports(path) if target in modules and target != name}
    return edges


def top(name: str) -> str:
    return name.split(".")[0]


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as the path that closes it, or None."""
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*trail, node, nxt]
            if not state.get(nxt):
                found = visit(nxt, [*trail, node])
                if found:
                    return found
        state[node] = 2
        return None

    for node in sorted(edges):
        if not state.get(node):
            found = visit(node, [])
            if found:
                return found
    return None


def stage_offences(edges: dict[str, set[str]]) -> list[str]:
    """Every import of a stage by a module that is neither that stage nor allowed to run stages."""
    return [
        f"{name} imports {target}"
        for name, targets in edges.items()
        if top(name) not in MAY_IMPORT_STAGES
        for target in targets
        if top(target) in STAGES and top(target) != top(name)
    ]


def test_no_import_cycles():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_stage_imports_another_stage():
    assert stage_offences(graph()) == []


def test_the_rules_can_fail():
    """The checkers find a cycle and a stage-to-stage import when they are planted in the real graph."""
    edges = graph()
    assert "commit" in edges["builder"] and "reference" in edges["check"]  # it reads real imports
    assert any(top(t) in STAGES for t in edges["pipeline"])  # the one sanctioned stage user
    planted = {name: set(targets) for name, targets in edges.items()}
    planted["commit"] = {*planted["commit"], "builder"}  # builder -> commit -> builder
    cycle = find_cycle(planted)
    assert cycle is not None and cycle[-1] in cycle[:-1]
    assert {"builder", "commit"} <= set(cycle)
    planted = {name: set(targets) for name, targets in edges.items()}
    planted["check"] = {*planted["check"], "bench"}
    assert stage_offences(planted) == ["check imports bench"]


#: a stage reads as spec -> run -> record, in functions short enough to read at once
STAGE_FUNCTION_LINES = 50
#: everywhere else (tables, graph passes, argument lists) a ceiling, not a target
FUNCTION_LINES = 100


def long_functions(limit_for) -> list[str]:
    found = []
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > limit_for(name):
                    found.append(f"{name}.{node.name}: {lines} lines")
    return found


def test_stage_functions_are_short():
    def limit(name: str) -> int:
        return STAGE_FUNCTION_LINES if top(name) in STAGES | {"specs", "records"} else FUNCTION_LINES

    assert long_functions(limit) == []
    assert long_functions(lambda _name: 20)  # the measure sees real functions

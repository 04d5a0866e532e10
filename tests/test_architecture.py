"""The package is a one-way house: layered subpackages, imports pointing only down, no cycles.

Read from the source with ``ast`` (lazy imports inside functions included), so an upward
import or a cycle hidden behind a function-level import is caught too. Each subpackage sits
on one floor of ``LAYERS`` and may import only its own floor and the floors below; within
``stages`` no command reaches into another, except the two that run commands in order.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ghostexport"
#: the floors, lowest first; a module may import from its own floor and those below it
LAYERS = (
    "resources",
    "base",
    "targets",
    "model",
    "graph",
    "runtime",
    "evidence",
    "folder",
    "quantization",
    "render",
    "edge",
    "choose",
    "stages",
    "cli",
    "__main__",
    "__init__",
)
#: the commands' modules; stages.specs is their shared contract, not a command
STAGES = {
    f"stages.{name}"
    for name in ("build", "quantize", "check", "bench", "convert", "predict", "info", "pipeline", "ghostify")
}
#: the pipeline and ghostify run other stages in order (ghostify builds the original and the ghosted model)
MAY_IMPORT_STAGES = {"stages.pipeline", "stages.ghostify"}


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
                module = node.module.removeprefix("ghostexport").lstrip(".")
                # ``from ghostexport import x`` runs the package root: an import of ``__init__``
                names = [module or "__init__", *(f"{module}.{a.name}".lstrip(".") for a in node.names)]
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


def floor(name: str) -> int:
    return LAYERS.index(top(name))


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


def upward_imports(edges: dict[str, set[str]]) -> list[str]:
    """Every import of a module on a higher floor than the importer's."""
    return sorted(
        f"{name} imports {target}"
        for name, targets in edges.items()
        for target in targets
        if floor(target) > floor(name)
    )


def stage_offences(edges: dict[str, set[str]]) -> list[str]:
    """Every import of a command by another command that does not run commands."""
    return sorted(
        f"{name} imports {target}"
        for name, targets in edges.items()
        if name in STAGES and name not in MAY_IMPORT_STAGES
        for target in targets
        if target in STAGES
    )


def test_every_module_is_on_a_floor():
    assert [name for name in graph() if top(name) not in LAYERS] == []


def test_no_import_cycles():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_imports_point_only_down():
    assert upward_imports(graph()) == []


def test_no_stage_imports_another_stage():
    assert stage_offences(graph()) == []


def test_the_rules_can_fail():
    """Each checker finds what it names when it is planted in the real graph."""
    edges = graph()
    assert "folder.commit" in edges["stages.build"] and "folder.reference" in edges["stages.check"]
    assert any(t in STAGES for t in edges["stages.pipeline"])  # the one sanctioned stage user
    planted = {name: set(targets) for name, targets in edges.items()}
    planted["base.files"] = {*planted["base.files"], "folder.commit"}  # commit -> files -> commit
    cycle = find_cycle(planted)
    assert cycle is not None and cycle[-1] in cycle[:-1]
    assert {"base.files", "folder.commit"} <= set(cycle)
    assert "base.files imports folder.commit" in upward_imports(planted)
    planted = {name: set(targets) for name, targets in edges.items()}
    planted["stages.check"] = {*planted["stages.check"], "stages.bench"}
    assert stage_offences(planted) == ["stages.check imports stages.bench"]
    planted = {name: set(targets) for name, targets in edges.items()}
    planted["model.fold"] = {*planted["model.fold"], "render.console"}
    assert upward_imports(planted) == ["model.fold imports render.console"]


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
                # from the first decorator: a 48-line stack of options is part of what a reader reads
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                lines = node.end_lineno - start + 1
                if lines > limit_for(name):
                    found.append(f"{name}.{node.name}: {lines} lines")
    return found


def test_stage_functions_are_short():
    def limit(name: str) -> int:
        return STAGE_FUNCTION_LINES if name in STAGES | {"stages.specs", "folder.records"} else FUNCTION_LINES

    assert long_functions(limit) == []
    assert long_functions(lambda _name: 20)  # the measure sees real functions
    # and it counts decorators: the CLI's commands are their option stacks plus their bodies
    assert any(entry.startswith("cli.") for entry in long_functions(lambda _name: 30))


def test_each_floor_says_what_it_owns_and_what_it_may_import():
    """Every subpackage's docstring ends with the floors below it, as LAYERS orders them."""
    import importlib

    for name in LAYERS[LAYERS.index("base") : LAYERS.index("stages") + 1]:
        doc = importlib.import_module(f"ghostexport.{name}").__doc__ or ""
        below = LAYERS[1 : LAYERS.index(name)]
        expected = f"May import: {', '.join(below)}." if below else "May import: nothing of this package."
        assert expected in doc, f"ghostexport.{name}: {doc[-200:]!r}"
        assert len(doc.split()) > 15, f"ghostexport.{name} does not say what it owns"

"""The code's shape, checked: no import cycle inside Tunesmith, and no function longer than a screen.

Both read the source with `ast`; nothing is imported. Imports under `if TYPE_CHECKING:` are left out of the
cycle check: they never run, so they cannot hold a cycle together.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"tunesmith": "tunesmith", "flows": "tunesmith.flows", "tasks": "tunesmith.tasks"}
MAX_FUNCTION_LINES = 60


def modules() -> dict[str, Path]:
    """Importable name -> source file, for the library and its Prefect layer (installed as tunesmith.flows/tasks)."""
    found = {}
    for folder, package in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = [p for p in path.relative_to(ROOT / folder).with_suffix("").parts if p != "__init__"]
            found[".".join([package, *parts])] = path
    return found


def _runtime_nodes(tree: ast.AST):
    """Every node except those under `if TYPE_CHECKING:`."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in [child, *_runtime_nodes(child)])
            continue
        yield node
        yield from _runtime_nodes(node)


def imported(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The Tunesmith modules `name` imports anywhere in its body (top level or inside functions)."""

    def resolve(dotted: str) -> str | None:
        while dotted and dotted not in known:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    found = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = ".".join(here[: len(here) - node.level + 1] + ([node.module] if node.module else []))
            # `from package import module` imports that module; `from module import name` the module
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        found |= {resolve(t) for t in targets if t.startswith("tunesmith")}
    return found - {None, name}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in graph:
        if node not in index:
            visit(node)
    return cycles


def test_no_import_cycle_inside_tunesmith():
    known = modules()
    graph = {name: imported(name, path, known) for name, path in known.items()}
    assert import_cycles(graph) == []


def test_the_cycle_check_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert import_cycles(graph) == [["a", "b", "c"]]


def function_lengths() -> list[tuple[int, str]]:
    """(lines, where) of every function and method, decorators included."""
    lengths = []
    for folder in PACKAGES:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                    where = f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"
                    lengths.append((node.end_lineno - start + 1, where))
    return lengths


def test_no_function_is_longer_than_a_screen():
    long = sorted(f"{where} ({n} lines)" for n, where in function_lengths() if n > MAX_FUNCTION_LINES)
    assert long == []


def _stage_arguments(node: ast.Call) -> list[ast.expr]:
    """The stage names a call passes: stage_run(parent, NAME, ...), progress.stage(NAME, ...), progress.plan([...])."""
    name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
    if name == "stage_run" and len(node.args) > 1:
        return [node.args[1]]
    owner = getattr(node.func, "value", None)
    if isinstance(owner, ast.Name) and owner.id == "progress" and node.args:
        if name == "stage":
            return [node.args[0]]
        if name == "plan" and isinstance(node.args[0], ast.List):
            return list(node.args[0].elts)
    return []


def test_stages_are_named_by_their_one_declaration():
    """A stage spelt as a string beside its declaration (tunesmith/stages.py) could drift from it, and the console's
    [i/n] would silently leave that stage out."""
    spelt = []
    for folder in PACKAGES:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call):
                    spelt += [f"{path.relative_to(ROOT)}:{node.lineno} {a.value!r}" for a in _stage_arguments(node)
                              if isinstance(a, ast.Constant) and isinstance(a.value, str)]  # fmt: skip
    assert spelt == []

"""The house rules on imports (docs/contributing.md): stack/ never imports graders, bench or tests, and no module
imports one of the project's own modules inside a function to dodge an import circle (a leaf module holds the
shared model instead). A function-level import of a heavy optional dependency is fine; one of our own modules needs
a `# deferred:` comment saying why."""

from __future__ import annotations

import ast
from pathlib import Path

from stack.paths import REPO_ROOT

OWN_PACKAGES = ("stack", "graders", "bench", "tests")


def _modules(*folders: str) -> list[Path]:
    return [p for folder in folders for p in sorted((REPO_ROOT / folder).rglob("*.py"))]


def _imported(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.ImportFrom):
        return [node.module or ""] if node.level == 0 else ["(relative)"]
    return [alias.name for alias in node.names]


def test_stack_imports_nothing_from_graders_bench_or_tests() -> None:
    offenders = []
    for path in _modules("stack"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                offenders += [f"{path.relative_to(REPO_ROOT)}:{node.lineno} imports {name}"
                              for name in _imported(node) if name.split(".")[0] in ("graders", "bench", "tests")]
    assert not offenders, offenders


def test_no_own_module_is_imported_inside_a_function_without_saying_why() -> None:
    offenders = []
    for path in _modules("stack", "graders", "bench"):
        lines = path.read_text().splitlines()
        for function in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                if not isinstance(node, (ast.Import, ast.ImportFrom)):
                    continue
                own = [n for n in _imported(node) if n.split(".")[0] in OWN_PACKAGES or n == "(relative)"]
                said = any("# deferred:" in line for line in lines[max(0, node.lineno - 4):node.lineno])
                if own and not said:
                    offenders.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno} imports {own} inside "
                                     f"{function.name}()")
    assert not offenders, "move these imports to the top (or say why with `# deferred:`): " + "; ".join(offenders)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top_level_imports(path: Path, known: set[str]) -> set[str]:
    """Own modules `path` imports when it is imported (statements at module level, TYPE_CHECKING blocks left out)."""
    found: set[str] = set()
    body = ast.parse(path.read_text()).body
    for node in body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for inner in ast.walk(node) if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                              ast.ClassDef)) else ():
            if isinstance(inner, ast.ImportFrom) and inner.level == 0 and inner.module:
                found.add(inner.module)  # `from pkg import sub` runs pkg/__init__.py first
                found.update(f"{inner.module}.{alias.name}" for alias in inner.names)
            elif isinstance(inner, ast.Import):
                found.update(alias.name for alias in inner.names)
    own = _module_name(path)
    parents = {".".join(name.split(".")[:i]) for name in found for i in range(1, name.count(".") + 1)}
    parents = {name for name in parents if not own.startswith(name + ".")}  # its own packages are already running
    return {name for name in found | parents if name in known and name != own}


def test_no_import_circle_between_our_modules() -> None:
    paths = _modules("stack", "graders", "bench")
    known = {_module_name(p) for p in paths}
    graph = {_module_name(p): _top_level_imports(p, known) for p in paths}
    cycles, state = [], {}

    def visit(module: str, stack: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                cycles.append(" -> ".join(stack[stack.index(target):] + [target]))
            elif target not in state:
                visit(target, stack + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import circles (put the shared model in a leaf module both import):\n" + "\n".join(cycles)

"""The house rules of the layout, checked on the source itself (issues 13 and 27): no module over 600 lines, no
import cycle between project modules nor between its packages, no module importing another module's private
names, no project module loaded by a string through importlib, few loose modules at the top (each a process or
a core type), and a README whose layout section names every module. Imports inside functions count too: a
cycle hidden in a function body is still a cycle a newcomer has to untangle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = SRC / "tweetdesk"
MAX_LINES = 600


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    is_package = MODULES[module].name == "__init__.py"
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str) -> list[tuple[str, str | None]]:
    """(imported module, imported name or None) for every import in the module, at any depth."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    out: list[tuple[str, str | None]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node)
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                out.append((sub, None) if sub in MODULES else (target, alias.name))
    return [(m, n) for m, n in out if m == "tweetdesk" or m.startswith("tweetdesk.")]


def test_no_module_is_over_600_lines():
    long = {name: n for name, path in MODULES.items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    seen: dict[str, int] = {}  # 1 on the current path, 2 done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        seen[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if seen.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in seen:
                visit(nxt, path + [nxt])
        seen[node] = 2

    for start in sorted(graph):
        if start not in seen:
            visit(start, [start])
    return cycles


def test_no_import_cycle_between_project_modules():
    graph = {m: {t for t, _ in _imports(m) if t in MODULES and t != m} for m in MODULES}
    # A package's __init__ re-exporting its own modules is not a cycle of design; drop package -> child edges.
    graph = {m: {t for t in ts if not t.startswith(m + ".")} for m, ts in graph.items()}
    cycles = _cycles(graph)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_no_module_imports_another_modules_private_names():
    """A leading underscore means "this module's own": another module, even in the same package, that needs
    it should get a public name in a shared module instead."""
    bad = []
    for module in MODULES:
        for target, name in _imports(module):
            private_module = any(part.startswith("_") and not part.startswith("__") for part in target.split("."))
            private_name = name is not None and name.startswith("_") and not name.startswith("__")
            if (private_module or private_name) and target != module:
                bad.append(f"{module} imports {target}{'.' + name if name else ''}")
    assert not bad, bad


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_project_module_is_loaded_through_importlib(module):
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in {"import_module", "find_spec"}:
            args = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            dynamic = not args
            assert not dynamic and not any(a.startswith("tweetdesk") for a in args), \
                f"{module} line {node.lineno} loads a module by name"


def _room(module: str) -> str:
    """A module's room: its package under tweetdesk (``tweetdesk.x.rules`` -> ``x``), or itself when loose."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_no_import_cycle_between_packages():
    """Rooms stand on floors: if tickets imports x, nothing in x imports tickets (a loop between packages is a
    loop a newcomer meets, even when no two modules import each other)."""
    graph: dict[str, set[str]] = {}
    why: dict[tuple[str, str], str] = {}
    for m in MODULES:
        for t, _ in _imports(m):
            a, b = _room(m), _room(t)
            if t in MODULES and a != b and b != "tweetdesk":
                graph.setdefault(a, set()).add(b)
                why.setdefault((a, b), f"{m} imports {t}")
    cycles = _cycles(graph)
    assert not cycles, "package loops: " + "; ".join(
        " -> ".join(c) + " (" + ", ".join(why[(x, y)] for x, y in zip(c, c[1:])) + ")" for c in cycles)


# The modules loose at the top of the package: each a process (cli, serve, demo, compliance), the app factory or
# a core type. A new
# one belongs in a package; if it really is neither, add it here and to the README's layout.
LOOSE = {"app", "cli", "compliance", "config", "demo", "errors", "records", "redact", "secret_key", "serve"}


def test_few_loose_modules_each_a_process_or_a_core_type():
    loose = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert loose == LOOSE, f"loose modules changed: added {sorted(loose - LOOSE)}, gone {sorted(LOOSE - loose)}"
    assert len(loose) <= 10


def test_the_readme_layout_names_every_module():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    layout = readme[readme.index("## Layout"):]
    layout = layout[: layout.index("\n## ", 1)]
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__init__.py":
            continue
        rel = path.relative_to(PACKAGE)
        folder = f"{rel.parts[0]}/" if len(rel.parts) > 1 else None
        if path.name not in layout or (folder and folder not in layout):
            missing.append(str(rel))
    assert not missing, f"README's layout section does not name: {missing}"

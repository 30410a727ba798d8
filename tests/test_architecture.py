"""The layers stay apart: the core imports nothing concrete (no plugin, no application module); plugins/ holds
only packages that register through the hooks, and a plugin reaches medzoo only through ``from medzoo import``
(or its own ``medzoo.plugins`` package), never the application; no two modules import each other, even through
imports inside functions."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
import tomllib
from support.hang_guard import SUBPROCESS_HANG_S

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
CORE = PACKAGE_ROOT / "core"
PLUGINS = PACKAGE_ROOT / "plugins"
FORBIDDEN_IN_CORE = ("medzoo.plugins", "medzoo.app")
#: the package's own layers, as folders of the repository root (which is the ``medzoo`` package)
LAYERS = ("core", "plugins", "app", "testing")
#: import circles known and not yet untied (module -> module -> ... -> module); none today
KNOWN_CYCLES: set[tuple[str, ...]] = set()


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import statement of a Python file, including those inside functions."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            if node.module == "medzoo":  # from medzoo import plugins
                found += [(node.lineno, f"medzoo.{alias.name}") for alias in node.names]
    return found


def core_files() -> list[Path]:
    return sorted(CORE.rglob("*.py"))


def test_core_has_modules_to_check():
    assert len(core_files()) > 20


@pytest.mark.parametrize("path", core_files(), ids=lambda p: str(p.relative_to(PACKAGE_ROOT)))
def test_core_module_imports_nothing_concrete(path):
    offending = [
        f"line {line}: {module}"
        for line, module in imported_modules(path)
        if module.startswith(FORBIDDEN_IN_CORE)
    ]
    assert not offending, f"{path.relative_to(PACKAGE_ROOT)} imports outside the core: {offending}"


def test_import_scan_sees_imports_inside_functions(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from medzoo.plugins.tuning.lora import has_lora\n    import medzoo.app.cli\n")
    assert [module for _, module in imported_modules(sample)] == ["medzoo.plugins.tuning.lora", "medzoo.app.cli"]


def test_core_top_level_is_small():
    """The core's top level holds packages and a few cross-cutting modules, not every concept side by side."""
    modules = [p.name for p in CORE.glob("*.py") if p.name != "__init__.py"]
    assert len(modules) <= 6, modules


EXAMPLE_PLUGIN = PACKAGE_ROOT / "docs" / "examples" / "medzoo-example-plugin" / "medzoo_example"


@pytest.mark.parametrize("path", sorted(EXAMPLE_PLUGIN.rglob("*.py")), ids=lambda p: p.name)
def test_example_plugin_needs_only_the_public_api(path):
    import medzoo

    public = {f"medzoo.{name}" for name in medzoo.PUBLIC_API}
    internal = [
        f"line {line}: {module}"
        for line, module in imported_modules(path)
        if module.startswith("medzoo.") and module not in public
    ]
    assert not internal, f"{path.name} reaches past `from medzoo import ...`: {internal}"


def test_every_public_name_resolves_and_import_medzoo_is_cheap():
    import subprocess
    import sys

    probe = (
        "import sys, medzoo\n"
        "assert 'torch' not in sys.modules, 'import medzoo pulled in torch'\n"
        "missing = [n for n in medzoo.__all__ if getattr(medzoo, n, None) is None]\n"
        "assert not missing, missing\n"
        "print(len(medzoo.__all__))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=SUBPROCESS_HANG_S)
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.strip()) >= 30


def test_unknown_public_name_is_an_attribute_error():
    import medzoo

    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        medzoo.NoSuchThing  # noqa: B018


# ---------------------------------------------------------------- plugins: only what registers, only the public API


def plugin_files() -> list[Path]:
    return sorted(PLUGINS.rglob("*.py"))


def plugin_id(path: Path) -> str:
    return str(path.relative_to(PACKAGE_ROOT))


def test_every_plugin_package_registers_through_an_entry_point():
    """plugins/ holds only packages that register through the hooks: each is named by a ``medzoo`` entry point."""
    pyproject = tomllib.loads((PACKAGE_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    targets = pyproject["project"]["entry-points"]["medzoo"].values()
    registering = {target.split(".")[2] for target in targets if target.startswith("medzoo.plugins.")}
    packages = {path.parent.name for path in PLUGINS.glob("*/__init__.py")}
    assert packages == registering, f"registering nothing: {sorted(packages - registering)}"
    assert not [p.name for p in PLUGINS.iterdir() if p.is_dir() and p.name != "__pycache__" and p.name not in packages]


@pytest.mark.parametrize("path", plugin_files(), ids=plugin_id)
def test_plugin_module_imports_medzoo_only_through_the_public_api(path):
    import medzoo

    public = {f"medzoo.{name}" for name in medzoo.PUBLIC_API}
    internal = [
        f"line {line}: {module}"
        for line, module in imported_modules(path)
        if module.startswith("medzoo.") and module not in public and not module.startswith("medzoo.plugins.")
    ]
    assert not internal, f"{plugin_id(path)} reaches past `from medzoo import ...`: {internal}"


@pytest.mark.parametrize("path", plugin_files(), ids=plugin_id)
def test_plugin_module_imports_no_application_module(path):
    offending = [f"line {line}: {module}" for line, module in imported_modules(path) if module.startswith("medzoo.app")]
    assert not offending, f"{plugin_id(path)} imports the application: {offending}"


def test_every_public_name_is_documented_for_plugin_authors():
    import medzoo

    text = (PACKAGE_ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    section = text.split("## The public API", 1)[1].split("\n## ", 1)[0]
    missing = [name for name in medzoo.PUBLIC_API if f"`{name}`" not in section]
    assert not missing, f"docs/plugins.md's public API section lacks {missing}"


# ---------------------------------------------------------------- no import circles


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(["medzoo", *(parts[:-1] if parts[-1] == "__init__" else parts)])


def runtime_imports(path: Path) -> list[tuple[str, str | None]]:
    """(module, imported name or None) of every import that runs (inside functions too); a block under
    ``if TYPE_CHECKING:`` never runs and names types only, so it makes no circle."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for statement in node.body
        for inner in ast.walk(statement)
    }
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.module, alias.name) for alias in node.names]
    return found


def module_graph(root: Path = PACKAGE_ROOT, layers: tuple[str, ...] = LAYERS) -> dict[str, set[str]]:
    """Module -> the package's modules it imports. ``from medzoo import NAME`` is an edge to the module the
    public API takes NAME from; ``from package import module`` to that module."""
    import medzoo

    exported = {**medzoo.PUBLIC_API, **medzoo.USER_API}
    files = [path for layer in layers for path in sorted((root / layer).rglob("*.py"))]
    modules = {module_name(path, root): path for path in files}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = set()
        for module, imported in runtime_imports(path):
            if module == "medzoo" and imported is not None:
                target = exported.get(imported, f"medzoo.{imported}")
            elif imported is not None and f"{module}.{imported}" in modules:
                target = f"{module}.{imported}"
            else:
                target = module
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                edges.add(target)
        graph[name] = edges
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[tuple[str, ...]]:
    """One cycle (a -> b -> ... -> a, starting at its smallest module) per strongly connected group of modules."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph)))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [cycle_through(graph, group) for group in groups]


def cycle_through(graph: dict[str, set[str]], group: set[str]) -> tuple[str, ...]:
    """The shortest way from the group's smallest module back to itself, inside the group."""
    start = min(group)
    paths = {start: (start,)}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for other in sorted(graph[node] & group):
                if other == start:
                    return (*paths[node], start)
                if other not in paths:
                    paths[other] = (*paths[node], other)
                    following.append(other)
        frontier = following
    raise AssertionError(f"no cycle through {start}")


def test_the_module_graph_covers_the_package():
    graph = module_graph()
    assert "medzoo.core.model.persistence" in graph and "medzoo.app.api.model" in graph
    assert "medzoo.core.model.components" in graph["medzoo.core.model.persistence"]
    assert "medzoo.core.plugin_system.hookspecs" in graph["medzoo.plugins.tuning.registration"]  # via the public API


def test_no_import_circles():
    cycles = set(find_cycles(module_graph()))
    new = sorted(cycles - KNOWN_CYCLES)
    assert not new, "import circles: " + "; ".join(" -> ".join(cycle) for cycle in new)
    assert not KNOWN_CYCLES - cycles, f"untied, remove from KNOWN_CYCLES: {sorted(KNOWN_CYCLES - cycles)}"


def test_a_circle_through_an_import_inside_a_function_is_found(tmp_path):
    package = tmp_path / "core"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "low.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from medzoo.core.high import H\n")
    (package / "high.py").write_text("from medzoo.core.low import helper\n")
    assert find_cycles(module_graph(tmp_path, ("core",))) == []  # an annotation-only import makes no circle
    (package / "low.py").write_text("def helper():\n    from medzoo.core import high\n")
    assert find_cycles(module_graph(tmp_path, ("core",))) == [("medzoo.core.high", "medzoo.core.low", "medzoo.core.high")]

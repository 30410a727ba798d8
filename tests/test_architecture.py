"""The layers stay apart: the core imports nothing concrete (no plugin, no application module)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from support.hang_guard import SUBPROCESS_HANG_S

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
CORE = PACKAGE_ROOT / "core"
FORBIDDEN_IN_CORE = ("medzoo.plugins", "medzoo.app")


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

"""A non-editable install: everything lives under the ``medzoo`` namespace (no bare ``core``/``plugins`` in
site-packages) and the catalogue, the recipes and the shipped assets are found from the installed copy."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from support.hang_guard import SUBPROCESS_HANG_S

REPO = Path(__file__).resolve().parents[1]


def source_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                            text=True, timeout=SUBPROCESS_HANG_S)
    if listed.returncode != 0:
        pytest.skip("not a git checkout: cannot tell the project's files from build leftovers")
    return [name for name in listed.stdout.splitlines() if (REPO / name).is_file()]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a clean copy of the project's files (the checkout itself stays untouched)."""
    base = tmp_path_factory.mktemp("packaging")
    source = base / "src"
    for name in source_files():
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(base / "dist"),
         str(source)],
        capture_output=True, text=True, timeout=SUBPROCESS_HANG_S,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (path,) = (base / "dist").glob("medzoo-*.whl")
    return path


def test_wheel_holds_one_namespace_and_ships_data(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {"medzoo"}
    for required in ("medzoo/registry.yaml", "medzoo/recipes/tiny.yaml", "medzoo/recipes/llava-med-v1.5.yaml",
                     "medzoo/core/plugin_system/hookspecs.py", "medzoo/plugins/vision/registration.py", "medzoo/app/cli/main.py",
                     "medzoo/plugins/language/assets/tiny-tokenizer/tokenizer.json",
                     "medzoo/app/leaderboard/published_results.csv"):
        assert required in names, required
    assert not any(name.startswith(("medzoo/tests/", "medzoo/docs/", "medzoo/.venv")) for name in names)
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "medzoo = medzoo.app.cli.main:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_installed_copy_finds_registry_and_recipes_outside_the_checkout(wheel, tmp_path):
    target = tmp_path / "site"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        capture_output=True, text=True, timeout=SUBPROCESS_HANG_S,
    )
    assert installed.returncode == 0, installed.stderr[-2000:]
    probe = (
        "import medzoo, pathlib\n"
        "from medzoo.core.resources import registry_path, recipes_dir\n"
        "from medzoo.core.recipes.loading import load_recipe\n"
        "print(pathlib.Path(medzoo.__file__).parent)\n"
        "print(registry_path().is_file(), len(list(recipes_dir().glob('*.yaml'))))\n"
        "print(load_recipe('llava-med-v1.5').config.model.language.name)\n"
    )
    site = [p for p in sys.path if p.endswith("site-packages")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), *site])}
    result = subprocess.run([sys.executable, "-S", "-c", probe], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=SUBPROCESS_HANG_S)
    assert result.returncode == 0, result.stderr[-2000:]
    package_dir, found, language = result.stdout.split("\n")[:3]
    assert Path(package_dir) == target / "medzoo"
    registry_found, recipe_count = found.split()
    assert registry_found == "True" and int(recipe_count) >= 5
    assert language == "mistral"

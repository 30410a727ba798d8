"""``medzoo eval`` finds the benchmark's data before any model loads.

A benchmark that reads its own default files (the ``synth-*`` ones under the option ``root``, ColonINST under
``root``) is asked where they are first. When an option it needs is missing and MODEL is a run's model folder
(``RUN/final`` or ``RUN/NN-stage/model``), the run's ``recipe.yaml`` supplies it: the options of the recipe's
entry for that benchmark, else ``root`` = the recipe's ``data.root``. What is still missing is one line naming
the option, said before the model is loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from medzoo.core.errors import DataError

RECIPE_FILE = "recipe.yaml"


def run_recipe_file(model: str) -> Path | None:
    """The ``recipe.yaml`` of the run MODEL (a model folder) was trained in, if it is a run's model folder."""
    folder = Path(model)
    if not folder.is_dir():
        return None
    for run_dir in (folder.parent, folder.parent.parent):
        if (run_dir / RECIPE_FILE).is_file():
            return run_dir / RECIPE_FILE
    return None


def recipe_options(recipe_file: Path, benchmark: str) -> dict[str, Any]:
    """The options a run's recipe evaluates ``benchmark`` with (its ``benchmarks:`` entry), else
    ``{"root": data.root}``; ``{}`` when the file says neither (or cannot be read)."""
    import yaml

    try:
        recipe = yaml.safe_load(recipe_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    if not isinstance(recipe, dict):
        return {}
    for entry in recipe.get("benchmarks") or []:
        if isinstance(entry, dict) and entry.get("name") == benchmark and isinstance(entry.get("options"), dict):
            return dict(entry["options"])
    root = (recipe.get("data") or {}).get("root") if isinstance(recipe.get("data"), dict) else None
    return {"root": str(root)} if root else {}


def default_file_problem(benchmark: str, options: dict[str, Any]) -> str | None:
    """Why ``benchmark`` with ``options`` cannot find its own test file (None: it can, or it has no default)."""
    from medzoo.core.plugin_system.manager import components

    instance = components().get("benchmark", benchmark).factory(**options)
    default_paths = getattr(instance, "default_paths", None)
    if default_paths is None:
        return None
    try:
        test_file, _ = default_paths()
    except DataError as error:
        return str(error)
    if not Path(test_file).exists():
        return f"benchmark {benchmark}: {test_file} not found (from the option root={options.get('root')!r})"
    return None


def benchmark_options(
    benchmark: str, model: str, data: str | None, options: dict[str, str], echo: Callable[[str], None]
) -> dict[str, Any]:
    """``options`` completed from MODEL's run recipe where the benchmark needs them to find its own data;
    a DataError naming the missing option when it still cannot (nothing is checked when ``--data`` or the
    option ``path`` names the file)."""
    if data is not None or options.get("path"):
        return dict(options)
    problem = default_file_problem(benchmark, options)
    if problem is None:
        return dict(options)
    recipe_file = run_recipe_file(model)
    defaults = recipe_options(recipe_file, benchmark) if recipe_file else {}
    missing = {key: value for key, value in defaults.items() if key not in options}
    if not missing:
        raise DataError(f"{problem} (medzoo eval takes benchmark options as --option KEY=VALUE)")
    listed = " ".join(f"{key}={value}" for key, value in missing.items())
    completed = {**options, **missing}
    problem = default_file_problem(benchmark, completed)
    if problem is not None:
        raise DataError(f"{problem} (--option {listed} came from {recipe_file}; give another with --option)")
    echo(f"{benchmark}: --option {listed} (from {recipe_file})")
    return completed

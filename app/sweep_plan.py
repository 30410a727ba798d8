"""What ``medzoo sweep`` trains: the combinations of a grid of recipe overrides, over one recipe or several.

A sweep is either a recipe with ``-g key=v1,v2`` grids, or a **sweep file** (``recipes/sweeps/<name>.yaml``, or a
path) that names the recipes to compare, for ablations whose variants are different recipes (SFT / +DPO / +GRPO):

    name: objectives                       # the sweep's name
    description: one line                  # what it compares
    recipes: [tiny, tiny-dpo, tiny-grpo]   # one run per recipe (names in recipes/ or paths)
    grid: {key: [v1, v2]}                  # optional: crossed with the recipes
    overrides: [key=value]                 # optional: applied to every combination

Each combination runs in ``<output>/<label>``: the recipe's name for a sweep file's recipes, ``key=value`` parts
joined by ``__`` for grid values. Variants that begin with the same stages (the same model, data and stage
settings; ``tiny-dpo`` is ``tiny`` plus a stage) train those stages once: a later variant starts from a copy of
the finished stage folders of an earlier one, which training would reproduce bit for bit anyway (medzoo's stages
are deterministic; resume relies on it).
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from medzoo.core.errors import RecipeError
from medzoo.core.resources import recipes_dir

SWEEP_FOLDER = "sweeps"
SWEEP_KEYS = ("name", "description", "recipes", "grid", "overrides")
RUN_MARKER = "medzoo_run.json"  # core/training/run_folder.py
DONE = "DONE.json"


@dataclass(frozen=True)
class Sweep:
    """The recipes and grid axes a sweep crosses, and the overrides every combination gets."""

    recipes: tuple[str, ...]
    axes: tuple[tuple[tuple[str, str], ...], ...] = ()
    overrides: tuple[str, ...] = ()
    name: str = ""
    description: str = ""
    source: str = ""


@dataclass(frozen=True)
class Combination:
    """One run of a sweep: its folder label, recipe and overrides."""

    label: str
    recipe: str
    overrides: tuple[str, ...] = field(default_factory=tuple)
    #: the grid part of the label (empty for a sweep over recipes only): the run's name gets it in brackets
    grid_label: str = ""


def sweep_file(name: str) -> Path | None:
    """The sweep file ``name`` stands for (a path to one, or ``recipes/sweeps/<name>.yaml`` when no recipe has that
    name), else None."""
    path = Path(name).expanduser()
    if path.suffix in (".yaml", ".yml") and path.is_file():
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            return None  # not a readable sweep: loading it as a recipe gives the error
        return path if isinstance(data, dict) and "recipes" in data else None
    shipped = recipes_dir() / SWEEP_FOLDER / f"{name}.yaml"
    return shipped if shipped.is_file() and not (recipes_dir() / f"{name}.yaml").is_file() else None


def grid_axes(grids: Sequence[str]) -> tuple[tuple[tuple[str, str], ...], ...]:
    """``-g key=v1,v2`` options as axes of ``(key, value)``."""
    axes = []
    for grid in grids:
        if "=" not in grid:
            raise RecipeError(f"--grid {grid!r}: expected key=v1,v2,...")
        key, values = grid.split("=", 1)
        axes.append(tuple((key, value) for value in values.split(",")))
    return tuple(axes)


def load_sweep(path: Path) -> Sweep:
    """A sweep file; a bad key is one line naming the file and the key."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise RecipeError(f"{path}: not a readable sweep file ({type(error).__name__})") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: expected a mapping with recipes: [...]")
    unknown = sorted(set(data) - set(SWEEP_KEYS))
    if unknown:
        raise RecipeError(f"{path}: {unknown[0]}: not a sweep key; expected one of {', '.join(SWEEP_KEYS)}")
    recipes = data.get("recipes")
    if not isinstance(recipes, list) or not recipes or not all(isinstance(r, str) and r for r in recipes):
        raise RecipeError(f"{path}: recipes: {recipes!r}; expected a non-empty list of recipe names or paths")
    if len(set(recipes)) != len(recipes):
        raise RecipeError(f"{path}: recipes: {recipes!r} names a recipe twice; expected each once")
    grid = data.get("grid") or {}
    if not isinstance(grid, Mapping) or not all(isinstance(v, list) and v for v in grid.values()):
        raise RecipeError(f"{path}: grid: {grid!r}; expected a mapping of keys to non-empty lists of values")
    overrides = data.get("overrides") or []
    if not isinstance(overrides, list) or not all(isinstance(o, str) and "=" in o for o in overrides):
        raise RecipeError(f"{path}: overrides: {overrides!r}; expected a list of key=value strings")
    axes = tuple(tuple((str(key), _value(value)) for value in values) for key, values in grid.items())
    return Sweep(tuple(recipes), axes, tuple(overrides), str(data.get("name") or path.stem),
                 str(data.get("description") or ""), str(path))


def _value(value: Any) -> str:
    """A grid value as an override's right-hand side (YAML, as ``-o`` takes it)."""
    if isinstance(value, str):
        return value
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def combinations(sweep: Sweep) -> list[Combination]:
    """Every recipe crossed with every grid combination, in order."""
    several = len(sweep.recipes) > 1
    runs = []
    for recipe in sweep.recipes:
        for combination in itertools.product(*sweep.axes):
            grid_label = "__".join(f"{key.split('.')[-1]}={value}" for key, value in combination).replace("/", "_")
            recipe_label = Path(recipe).stem if several else ""
            label = "__".join(part for part in (recipe_label, grid_label) if part) or Path(recipe).stem
            settings = (*sweep.overrides, *(f"{key}={value}" for key, value in combination))
            runs.append(Combination(label, recipe, settings, grid_label))
    labels = [run.label for run in runs]
    if len(set(labels)) != len(labels):
        raise RecipeError(f"sweep {sweep.name or sweep.source}: two combinations share the folder "
                          f"{next(label for label in labels if labels.count(label) > 1)!r}")
    return runs


# -- shared stages ------------------------------------------------------------------------------------------------

def training_prefix(config: Any) -> list[dict[str, Any]]:
    """What decides each planned stage's weights, stage by stage: the model, data and shrink settings with the
    stage's own settings (and every earlier stage's, since each stage starts from the one before)."""
    from omegaconf import OmegaConf

    from medzoo.core.training.run import planned_stages

    common = {"model": OmegaConf.to_container(config.model, resolve=True),
              "data": OmegaConf.to_container(config.data, resolve=True), "shrink": bool(config.shrink)}
    return [{**common, "stage": OmegaConf.to_container(stage, resolve=True)} for stage in planned_stages(config)]


def shared_stages(earlier: Sequence[dict[str, Any]], later: Sequence[dict[str, Any]]) -> int:
    """How many leading stages two runs share (same settings in the same order)."""
    count = 0
    for a, b in zip(earlier, later, strict=False):
        if a != b:
            break
        count += 1
    return count


def seed_from_earlier(run_dir: Path, prefix: list[dict[str, Any]], finished: Sequence[tuple[Path, list[dict[str, Any]]]]
                      ) -> list[str]:
    """Copy into a fresh ``run_dir`` the finished stage folders an earlier run of the sweep shares with it (the
    longest shared prefix); returns the copied folders' names (none when ``run_dir`` already holds a stage)."""
    if run_dir.exists() and any(child.name[:2].isdigit() for child in run_dir.iterdir()):
        return []
    best, source = 0, None
    for earlier_dir, earlier_prefix in finished:
        shared = shared_stages(earlier_prefix, prefix)
        if shared > best:
            best, source = shared, earlier_dir
    if source is None:
        return []
    folders = sorted(child for child in source.iterdir() if child.is_dir() and child.name[:2].isdigit())[:best]
    if len(folders) != best or not all((folder / DONE).is_file() for folder in folders):
        return []  # an earlier run stopped before finishing them: train them here
    run_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source / RUN_MARKER, run_dir / RUN_MARKER)
    for folder in folders:  # each copy complete or absent: a copy cut short is never taken for a finished stage
        partial = run_dir / f".{folder.name}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(folder, partial)
        partial.rename(run_dir / folder.name)
    return [folder.name for folder in folders]

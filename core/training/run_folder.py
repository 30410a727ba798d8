"""Run folders medzoo owns: the ``medzoo_run.json`` marker, what a run may write over, and what it refuses.

A run folder holds ``medzoo_run.json`` (written at the start of every run), ``run.lock``, ``recipe.yaml``,
one ``NN-<stage>/`` folder per stage, ``final/``, ``run.json``, ``plots/`` and ``logs/`` (the experiment trackers;
``medzoo run`` adds ``eval/`` and ``leaderboard.md``). A folder without the marker that holds any entry of those names was written by someone
else: medzoo neither trains into it nor removes anything from it.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf

from medzoo.core.atomic_writes import NotOursError, write_json_atomically
from medzoo.core.errors import RecipeError, TrainingError
from medzoo.core.training.run_lock import LOCK_FILE, run_lock

RUN_MARKER = "medzoo_run.json"
RUN_FORMAT = "medzoo-run"
RECIPE_FILE = "recipe.yaml"
#: entries of a run folder besides the stage folders (``NN-<stage>``)
RUN_ENTRIES = (RUN_MARKER, LOCK_FILE, RECIPE_FILE, "final", "run.json", "eval", "leaderboard.md", "plots", "logs")
#: what ``--fresh`` removes: every entry medzoo writes except the marker and the lock (held while removing)
FRESH_ENTRIES = ("final", "run.json", "eval", "leaderboard.md", RECIPE_FILE, "plots", "logs")
STAGE_FOLDER = re.compile(r"\d{2}-.+")
#: recipe keys that do not change what is trained: names and notes, the benchmarks (evaluation only), how a
#: missing synthetic set would be made, what to do with a bad record (the stages' dataset paths are compared) and
#: the experiment trackers
UNTRAINED_KEYS = ("name", "description", "citation", "defaults", "benchmarks",
                  "data.synthesize", "data.synth_options", "data.on_bad_record", "logging")
#: stage keys that do not change what is trained (how often a checkpoint is written)
UNTRAINED_STAGE_KEYS = ("save_every_steps",)


class RecipeChangedError(RecipeError):
    """``--resume`` with a recipe that trains differently from the one the run started with."""


def is_run_folder(output_dir: Path) -> bool:
    """Whether ``output_dir`` holds a marker medzoo wrote."""
    try:
        marker = json.loads((output_dir / RUN_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and marker.get("format") == RUN_FORMAT


def run_entries(output_dir: Path, stage_names: Iterable[str] = ()) -> list[Path]:
    """The entries of ``output_dir`` a run writes: fixed names, stage folders (``NN-*``) and ``stage_names``."""
    if not output_dir.is_dir():
        return []
    wanted = {*RUN_ENTRIES, *stage_names}
    return sorted(p for p in output_dir.iterdir() if p.name in wanted or (p.is_dir() and STAGE_FOLDER.fullmatch(p.name)))


def refuse_foreign_run_folder(output_dir: Path, stage_names: Iterable[str] = (), purpose: str = "train into it") -> None:
    """Raise :class:`NotOursError` when ``output_dir`` is a file, or lacks the marker and holds a run's entry."""
    if output_dir.exists() and not output_dir.is_dir():
        raise NotOursError(f"{output_dir}: is a file, expected a run folder; choose another --output-dir")
    if is_run_folder(output_dir):
        return
    clashes = run_entries(output_dir, stage_names)
    if clashes:
        raise NotOursError(
            f"{output_dir}: holds {clashes[0].name} but no {RUN_MARKER}, so medzoo did not write it; refusing to "
            f"{purpose}: choose another --output-dir or move it away yourself"
        )


def existing_run(output_dir: Path, stage_folders: Iterable[str]) -> list[str]:
    """What of a run is already in ``output_dir``: its stage folders, ``final/`` and ``run.json``."""
    names = [*stage_folders, "final", "run.json"]
    return [f"{name}/" if (output_dir / name).is_dir() else name for name in names if (output_dir / name).exists()]


def refuse_existing_run(output_dir: Path, stage_folders: Iterable[str]) -> None:
    """A run started without ``--resume`` never replaces the stages or the final model of an earlier one."""
    found = existing_run(output_dir, stage_folders)
    if not found:
        return
    try:
        recipe = json.loads((output_dir / RUN_MARKER).read_text(encoding="utf-8")).get("recipe", "?")
    except (OSError, ValueError, AttributeError):
        recipe = "?"
    raise TrainingError(
        f"{output_dir} already holds a run of recipe {recipe!r} ({', '.join(found)} exist); "
        "pass --resume to continue it or choose another --output-dir"
    )


def write_run_marker(output_dir: Path, recipe_name: str) -> None:
    """Mark ``output_dir`` as a medzoo run (kept when it is already marked)."""
    if not is_run_folder(output_dir):
        write_json_atomically(output_dir / RUN_MARKER, {
            "format": RUN_FORMAT, "version": 1, "recipe": recipe_name, "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        }, indent=2)


def recipe_yaml(recipe: Any) -> str:
    """The resolved recipe as written to ``recipe.yaml``."""
    return OmegaConf.to_yaml(recipe, resolve=True)


def recipe_changes(saved: Any, current: Any) -> list[tuple[str, Any, Any]]:
    """``(key, saved value, current value)`` for every trained key that differs, in the recipe's order."""
    changes: list[tuple[str, Any, Any]] = []
    _compare("", saved, current, changes)
    return [change for change in changes if not _untrained(change[0])]


def _compare(key: str, saved: Any, current: Any, changes: list[tuple[str, Any, Any]]) -> None:
    if isinstance(saved, dict) and isinstance(current, dict):
        for name in [*saved, *(k for k in current if k not in saved)]:
            _compare(f"{key}.{name}" if key else str(name), saved.get(name, _ABSENT), current.get(name, _ABSENT), changes)
    elif isinstance(saved, list) and isinstance(current, list) and len(saved) == len(current):
        for index, (old, new) in enumerate(zip(saved, current, strict=True)):
            _compare(f"{key}.{index}", old, new, changes)
    elif saved != current:
        changes.append((key, saved, current))


class _Absent:
    def __repr__(self) -> str:
        return "<absent>"


_ABSENT = _Absent()


def _untrained(key: str) -> bool:
    parts = key.split(".")
    if any(key == name or key.startswith(f"{name}.") for name in UNTRAINED_KEYS):
        return True
    return len(parts) >= 3 and parts[0] == "stages" and parts[2] in UNTRAINED_STAGE_KEYS


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value) if isinstance(value, _Absent) else json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_recipe_unchanged(output_dir: Path, recipe: Any, allow_change: bool, echo) -> None:
    """On resume: the recipe must train what the saved ``recipe.yaml`` trained, unless ``allow_change``."""
    saved_path = output_dir / RECIPE_FILE
    if not saved_path.is_file():
        return
    try:
        saved = yaml.safe_load(saved_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise RecipeError(f"{saved_path}: unreadable ({type(error).__name__}); cannot tell whether the recipe "
                          "changed: pass --allow-recipe-change to continue with the new recipe") from None
    changes = recipe_changes(saved, yaml.safe_load(recipe_yaml(recipe)))
    if not changes:
        return
    key, old, new = changes[0]
    described = f"{key} {_shown(old)} -> {_shown(new)}" + (f" (and {len(changes) - 1} more)" if len(changes) > 1 else "")
    if allow_change:
        echo(f"recipe changed since the run started: {described}; continuing with the new recipe")
        return
    raise RecipeChangedError(
        f"{saved_path}: recipe changed since the run started: {described}; "
        "pass --allow-recipe-change to continue with the new recipe"
    )


def clear_run(output_dir: Path) -> list[str]:
    """``--fresh``: remove what medzoo wrote into the run folder (the names it removed), never anything else.

    An empty or missing folder is fine; a folder without the marker is refused, and so is one another training
    is writing.
    """
    if not output_dir.exists() or (output_dir.is_dir() and not any(output_dir.iterdir())):
        return []
    if not is_run_folder(output_dir):
        refuse_foreign_run_folder(output_dir, purpose="remove it for --fresh")
        raise NotOursError(
            f"{output_dir}: no {RUN_MARKER}, so it is not a medzoo run folder; refusing to remove it for --fresh: "
            "choose another --output-dir or remove it yourself"
        )
    removed = []
    with run_lock(output_dir):
        for path in run_entries(output_dir):
            if path.name not in FRESH_ENTRIES and not STAGE_FOLDER.fullmatch(path.name):
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path.name)
    return removed

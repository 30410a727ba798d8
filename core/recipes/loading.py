"""Loading recipes: the file by path or built-in name, its ``defaults`` chain merged, ``-o key=value`` overrides
applied, then the one validation path (validation.py).

Every problem becomes a one-line ``RecipeError`` naming the file, the key path and what was expected.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from medzoo.core.errors import RecipeError, did_you_mean
from medzoo.core.recipes.validation import validate
from medzoo.core.recipes.yaml_file import read_yaml_file
from medzoo.core.resources import recipes_dir


@dataclass
class LoadedRecipe:
    config: DictConfig
    source: Path
    chain: list[Path] = field(default_factory=list)


def resolve_source(source: str | Path, relative_to: Path | None = None) -> Path:
    path = Path(source)
    candidates = [path]
    if relative_to is not None:
        candidates.append(relative_to / path)
        candidates.append(relative_to / f"{source}.yaml")
    candidates.append(recipes_dir() / f"{source}.yaml")
    candidates.append(recipes_dir() / path.name)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    known = sorted(p.stem for p in recipes_dir().glob("*.yaml"))
    raise RecipeError(f"{source}: no such recipe file or built-in recipe{did_you_mean(str(source), known)}; known: {', '.join(known)}")


def read_yaml(path: Path) -> dict[str, Any]:
    data = read_yaml_file(path, "recipe", RecipeError)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: expected a mapping of recipe keys at the top level, got {type(data).__name__}")
    return data


def _merge_stage_lists(base: list[Any], child: list[Any]) -> list[Any]:
    """A child's stages merge into the base's by name; new names append."""
    merged = [dict(stage) for stage in base]
    names = [stage.get("name") for stage in merged]
    for stage in child:
        name = stage.get("name") if isinstance(stage, dict) else None
        if name in names:
            merged[names.index(name)] = _deep_merge(merged[names.index(name)], stage)
        else:
            merged.append(stage)
            names.append(name)
    return merged


def _deep_merge(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    result = dict(base)
    for key, value in child.items():
        if key == "stages" and isinstance(value, list) and isinstance(result.get(key), list):
            result[key] = _merge_stage_lists(result[key], value)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _deep_merge(result[key], value)
        else:
            result[key] = value
    return result


def _resolved_data(path: Path, seen: tuple[Path, ...] = ()) -> tuple[dict[str, Any], list[Path]]:
    if path.resolve() in seen:
        cycle = " -> ".join(str(p) for p in (*seen, path.resolve()))
        raise RecipeError(f"{path}: defaults: inheritance cycle {cycle}")
    data = read_yaml(path)
    defaults = data.pop("defaults", []) or []
    if isinstance(defaults, str):
        defaults = [defaults]
    if not isinstance(defaults, list):
        raise RecipeError(f"{path}: defaults: expected a list of base recipe names, got {type(defaults).__name__}")
    merged: dict[str, Any] = {}
    chain: list[Path] = []
    for base in defaults:
        try:
            base_path = resolve_source(base, path.parent)
        except RecipeError as error:
            raise RecipeError(f"{path}: defaults: {error}") from None
        base_data, base_chain = _resolved_data(base_path, (*seen, path.resolve()))
        merged = _deep_merge(merged, base_data)
        chain.extend(base_chain)
    return _deep_merge(merged, data), [*chain, path]


def _apply_override(data: dict[str, Any], override: str, path: Path) -> None:
    if "=" not in override:
        raise RecipeError(f"{path}: override {override!r}: expected key=value (e.g. stages.instruct.optimizer.lr=1e-4)")
    key, raw = override.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        value = raw
    parts = key.strip().split(".")
    node: Any = data
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if isinstance(node, list):
            position = _list_position(node, part, key, path)
            if last:
                node[position] = value
            else:
                node = node[position]
            continue
        if not isinstance(node, dict):
            done = ".".join(parts[:index])
            raise RecipeError(f"{path}: override {key}: {done} is {node!r}, not a mapping; cannot set {part!r} in it")
        if last:
            node[part] = value
        else:
            node = node.setdefault(part, {})


def _list_position(items: list[Any], part: str, key: str, path: Path) -> int:
    if part.isdigit():
        if int(part) >= len(items):
            raise RecipeError(f"{path}: override {key}: index {part} is out of range ({len(items)} entries)")
        return int(part)
    names = [item.get("name") for item in items if isinstance(item, dict)]
    if part not in names:
        raise RecipeError(f"{path}: override {key}: no stage named {part!r}{did_you_mean(part, names)}; stages: {names}")
    return names.index(part)


def load_recipe(source: str | Path, overrides: Sequence[str] = ()) -> LoadedRecipe:
    """Load a recipe by path or built-in name, apply inheritance and overrides, and validate it; the config is
    read-only in structure (struct mode)."""
    path = resolve_source(source)
    data, chain = _resolved_data(path)
    for override in overrides:
        _apply_override(data, override, path)
    config = validate(data, path)
    OmegaConf.set_struct(config, True)
    return LoadedRecipe(config, path, chain)


def recipe_summary(source: str | Path) -> tuple[str, str]:
    """A recipe's ``description`` and ``citation`` (inherited through ``defaults``), read without validating or
    building anything: the one place these are written, which ``registry.yaml``'s variants read."""
    path = resolve_source(source)
    data, _ = _resolved_data(path)
    values = []
    for key in ("description", "citation"):
        value = data.get(key) or ""
        if not isinstance(value, str):
            raise RecipeError(f"{path}: {key}: expected a string, got {type(value).__name__} {value!r}")
        values.append(value)
    return values[0], values[1]


def recipe_to_yaml(config: DictConfig) -> str:
    return OmegaConf.to_yaml(config, resolve=True)

"""Checking a recipe's merged data against the schema's dataclasses before omegaconf sees it.

Errors name the full key path (stages by name, as overrides address them: ``stages.instruct.optimizer.lr``),
the unknown key's closest allowed name, or the type that was expected.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from pathlib import Path
from typing import Any, Union

from medzoo.core.errors import RecipeError, did_you_mean
from medzoo.core.recipes.schema import (
    BenchmarkConfig,
    ComponentConfig,
    DatasetConfig,
    LanguageConfig,
    Recipe,
    StageConfig,
)

MISSING = "???"
BOOL_WORDS = frozenset({"true", "false", "yes", "no", "on", "off"})
#: what a required field holds, for "missing" messages
REQUIRED_HINTS: dict[tuple[type, str], str] = {
    (Recipe, "name"): "the recipe's name",
    (ComponentConfig, "name"): "a plugin name (see `medzoo plugins`)",
    (LanguageConfig, "template"): "a template plugin name, e.g. mistral_instruct",
    (StageConfig, "name"): "the stage's name (overrides and init_from address stages by it)",
    (DatasetConfig, "name"): "a dataset plugin name, e.g. llava-json",
    (DatasetConfig, "path"): "the path of the data file",
    (BenchmarkConfig, "name"): "a benchmark plugin name, e.g. vqa-rad",
}


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def stage_key(index: int, stage: Any) -> str:
    """``stages.NAME`` for a stage with a usable name, else ``stages[INDEX]``."""
    name = stage.get("name") if isinstance(stage, dict) else getattr(stage, "name", None)
    if isinstance(name, str) and name and name != MISSING and "." not in name:
        return f"stages.{name}"
    return f"stages[{index}]"


def check_structure(data: dict[str, Any], path: Path) -> None:
    """Raise a one-line ``RecipeError`` for an unknown key, a value of the wrong type or a missing value."""
    _check_dataclass(Recipe, data, "", path)


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _check_dataclass(cls: type, value: Any, key: str, path: Path) -> None:
    if not isinstance(value, dict):
        raise RecipeError(f"{path}: {key}: expected a mapping of {_describe_fields(cls)}, got {_shown(value)}")
    hints = _hints(cls)
    allowed = sorted(hints)
    for name in value:
        if name not in hints:
            raise RecipeError(
                f"{path}: {_join(key, str(name))}: unknown key{did_you_mean(str(name), allowed)}; "
                f"expected one of {', '.join(allowed)}"
            )
    for field in dataclasses.fields(cls):
        child = _join(key, field.name)
        if field.name in value:
            _check_value(hints[field.name], value[field.name], child, path)
        elif field.default == MISSING:
            raise RecipeError(f"{path}: {child}: missing; expected {_required(cls, field.name, hints[field.name])}")


def _required(cls: type, name: str, annotation: Any) -> str:
    for owner in cls.__mro__:
        if (owner, name) in REQUIRED_HINTS:
            return f"{_expected(annotation)}: {REQUIRED_HINTS[owner, name]}"
    return _expected(annotation)


def _check_value(annotation: Any, value: Any, key: str, path: Path) -> None:
    if isinstance(value, str) and "${" in value:
        return  # an interpolation: resolved (and checked) by omegaconf
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in arguments:
            return
        annotation = next(argument for argument in arguments if argument is not type(None))
        origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if value == MISSING:
        raise RecipeError(f"{path}: {key}: missing; expected {_expected(annotation)}")
    if dataclasses.is_dataclass(annotation):
        _check_dataclass(annotation, value, key, path)
    elif origin is list:
        if not isinstance(value, list):
            raise RecipeError(f"{path}: {key}: expected {_expected(annotation)}, got {_shown(value)}")
        for index, item in enumerate(value):
            item_key = stage_key(index, item) if key == "stages" else f"{key}[{index}]"
            _check_value(arguments[0], item, item_key, path)
    elif origin is dict:
        if not isinstance(value, dict):
            raise RecipeError(f"{path}: {key}: expected {_expected(annotation)}, got {_shown(value)}")
    elif not _scalar_fits(annotation, value):
        raise RecipeError(f"{path}: {key}: expected {_expected(annotation)}, got {_shown(value)}")


def _scalar_fits(annotation: Any, value: Any) -> bool:
    if annotation is bool:
        return isinstance(value, bool) or (isinstance(value, str) and value.lower() in BOOL_WORDS)
    if isinstance(value, bool):
        return False
    if annotation is int:
        return isinstance(value, int) or (isinstance(value, str) and value.strip().lstrip("+-").isdigit())
    if annotation is float:
        return isinstance(value, (int, float)) or (isinstance(value, str) and _is_number(value))
    if annotation is str:
        return isinstance(value, str)
    return True


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _expected(annotation: Any) -> str:
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        inner = [argument for argument in arguments if argument is not type(None)]
        return f"{_expected(inner[0])} or null"
    if dataclasses.is_dataclass(annotation):
        return f"a mapping of {_describe_fields(annotation)}"
    if origin is list:
        return f"a list of {_plural(arguments[0])}"
    if origin is dict:
        return "a mapping"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(annotation, "a value")


def _plural(annotation: Any) -> str:
    if dataclasses.is_dataclass(annotation):
        return f"mappings of {_describe_fields(annotation)}"
    return {float: "numbers", int: "integers", str: "strings"}.get(annotation, "values")


def _describe_fields(cls: type) -> str:
    return "{" + ", ".join(sorted(_hints(cls))) + "}"


def _shown(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return f"a {type(value).__name__}"
    return f"{value!r} ({type(value).__name__})"

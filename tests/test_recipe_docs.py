"""docs/recipes.md describes every key of the recipe schema and lists every shipped recipe."""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path

import pytest

from medzoo.core.recipes.schema import BenchmarkConfig, Recipe, StageConfig
from medzoo.core.resources import recipes_dir

DOC = (Path(__file__).resolve().parents[1] / "docs" / "recipes.md").read_text()


def key_paths(cls: type, prefix: str = "") -> list[str]:
    """Dotted paths of every field, ``[]`` marking list items (``datasets[].name``)."""
    paths = []
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        path = f"{prefix}{field.name}"
        annotation = hints[field.name]
        item = typing.get_args(annotation)[0] if typing.get_origin(annotation) is list else None
        if dataclasses.is_dataclass(annotation):
            paths += key_paths(annotation, f"{path}.")
        elif item is not None and dataclasses.is_dataclass(item):
            paths += key_paths(item, f"{path}[].")
        else:
            paths.append(path)
    return paths


SECTIONS = {"model": Recipe, "data": Recipe, "curriculum": Recipe}
DOCUMENTED = (
    [f.name for f in dataclasses.fields(Recipe)]
    + [path for path in key_paths(Recipe) if path.split(".")[0] in SECTIONS]
    + key_paths(StageConfig)
    + key_paths(BenchmarkConfig)
)


@pytest.mark.parametrize("path", DOCUMENTED)
def test_every_schema_key_is_documented(path):
    assert re.search(r"`" + re.escape(path) + r"[`.\[ ]", DOC), f"docs/recipes.md does not describe `{path}`"


@pytest.mark.parametrize("name", sorted(p.stem for p in recipes_dir().glob("*.yaml")))
def test_every_shipped_recipe_is_in_the_table(name):
    assert f"| `{name}` |" in DOC

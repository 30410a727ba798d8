"""The zoo's variants (``registry.yaml``): each variant's recipe and published weights.

What a component is (description, hub ids, licence) is declared once, where its plugin registers it; the
catalogue holds only what the registry cannot know.

Every problem is a one-line ``CatalogError`` naming the file, the key path and what was expected.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medzoo.core.errors import MedzooError, did_you_mean
from medzoo.core.recipes.yaml_file import read_yaml_file
from medzoo.core.resources import registry_path

#: ``format`` of published weights added to a base model (``base`` + ``merged_format`` say how)
DELTA_FORMAT = "delta"
SCHEMA_VERSION = 1


class CatalogError(MedzooError):
    """``registry.yaml`` is unreadable or does not match its schema, or a name is not in it."""


@dataclass(frozen=True)
class PublishedWeights:
    """A checkpoint the authors published, and how medzoo imports it."""

    source: str
    format: str
    base: str | None = None
    merged_format: str | None = None
    tokenizer: str | None = None
    licence: str | None = None
    notes: str = ""

    @property
    def is_delta(self) -> bool:
        return self.format == DELTA_FORMAT


@dataclass(frozen=True)
class Variant:
    name: str
    recipe: str | None
    description: str
    citation: str
    weights: tuple[PublishedWeights, ...]


@dataclass(frozen=True)
class Catalog:
    path: Path
    variants: tuple[Variant, ...]

    def variant(self, name: str) -> Variant:
        for variant in self.variants:
            if variant.name == name:
                return variant
        names = [variant.name for variant in self.variants]
        raise CatalogError(f"{name!r} is not a variant of {self.path}{did_you_mean(name, names)}; known: {', '.join(names)}")

    def has_variant(self, name: str) -> bool:
        return any(variant.name == name for variant in self.variants)


class _Reader:
    """Typed access to one mapping of the file; errors name ``path: key.path``."""

    def __init__(self, path: Path, where: str, data: Any, allowed: tuple[str, ...]) -> None:
        self.path, self.where = path, where
        if not isinstance(data, dict):
            raise self.error(where, f"expected a mapping, got {type(data).__name__}")
        for key in data:
            if key not in allowed:
                raise self.error(f"{where}.{key}", f"unknown key{did_you_mean(str(key), allowed)}; expected one of "
                                                   f"{', '.join(allowed)}")
        self.data = data

    def error(self, key: str, message: str) -> CatalogError:
        return CatalogError(f"{self.path}: {key.lstrip('.')}: {message}")

    def text(self, key: str, default: str | None = None, required: bool = False) -> str:
        value = self.data.get(key, default)
        if value is None and required:
            raise self.error(f"{self.where}.{key}", "missing; expected a string")
        if value is not None and not isinstance(value, str):
            raise self.error(f"{self.where}.{key}", f"expected a string, got {type(value).__name__} {value!r}")
        return value  # type: ignore[return-value]

    def optional_text(self, key: str) -> str | None:
        return self.text(key, None)

    def items(self, key: str) -> list[Any]:
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.error(f"{self.where}.{key}", f"expected a list, got {type(value).__name__}")
        return value


WEIGHTS_KEYS = ("source", "format", "base", "merged_format", "tokenizer", "licence", "notes")
VARIANT_KEYS = ("name", "recipe", "description", "citation", "weights")
TOP_KEYS = ("version", "variants")


def _weights(path: Path, where: str, data: Any) -> PublishedWeights:
    from medzoo.app.interop.llava_import import FORMATS

    reader = _Reader(path, where, data, WEIGHTS_KEYS)
    formats = (*FORMATS, DELTA_FORMAT)
    weights = PublishedWeights(
        source=reader.text("source", required=True),
        format=reader.text("format", required=True),
        base=reader.optional_text("base"),
        merged_format=reader.optional_text("merged_format"),
        tokenizer=reader.optional_text("tokenizer"),
        licence=reader.optional_text("licence"),
        notes=reader.text("notes", ""),
    )
    if weights.format not in formats:
        raise reader.error(f"{where}.format", f"{weights.format!r} is not allowed{did_you_mean(weights.format, formats)};"
                                              f" expected one of {', '.join(formats)}")
    if weights.is_delta:
        if not weights.base:
            raise reader.error(f"{where}.base", "missing; delta weights need the base model they are added to")
        if weights.merged_format not in FORMATS:
            raise reader.error(f"{where}.merged_format",
                               f"{weights.merged_format!r}: expected the import format of base + delta, one of "
                               f"{', '.join(FORMATS)}")
    return weights


def _variant(path: Path, where: str, data: Any) -> Variant:
    """One variant; with a recipe, its description and citation are the recipe's (written there only)."""
    reader = _Reader(path, where, data, VARIANT_KEYS)
    weights = tuple(_weights(path, f"{where}.weights[{i}]", item) for i, item in enumerate(reader.items("weights")))
    recipe = reader.optional_text("recipe")
    if recipe is None:
        description, citation = reader.text("description", ""), reader.text("citation", "")
    else:
        for key in ("description", "citation"):
            if key in reader.data:
                raise reader.error(f"{where}.{key}", f"given by recipe {recipe!r}; expected it there only (a variant "
                                                     "without a recipe gives it here)")
        from medzoo.core.recipes.loading import recipe_summary

        description, citation = recipe_summary(recipe)
    return Variant(
        name=reader.text("name", required=True),
        recipe=recipe,
        description=description,
        citation=citation,
        weights=weights,
    )


def _unique(path: Path, section: str, keys: list[Any]) -> None:
    seen: set[Any] = set()
    for index, key in enumerate(keys):
        if key in seen:
            raise CatalogError(f"{path}: {section}[{index}]: duplicate entry {key!r}")
        seen.add(key)


def parse_catalog(path: Path, data: Any) -> Catalog:
    """Check ``data`` (the parsed YAML of ``path``) against the schema and return the typed catalogue."""
    reader = _Reader(path, "", data, TOP_KEYS)
    if reader.data.get("version", SCHEMA_VERSION) != SCHEMA_VERSION:
        raise reader.error("version", f"{reader.data['version']!r} is not supported; expected {SCHEMA_VERSION}")
    variants = tuple(_variant(path, f"variants[{i}]", item) for i, item in enumerate(reader.items("variants")))
    for index, variant in enumerate(variants):
        if variant.recipe is None and not variant.weights:
            raise CatalogError(f"{path}: variants[{index}]: {variant.name!r} has neither a recipe nor weights")
    _unique(path, "variants", [variant.name for variant in variants])
    return Catalog(path, variants)


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Read ``registry.yaml`` (default: the one shipped with the package)."""
    path = Path(path) if path is not None else registry_path()
    data = read_yaml_file(path, "catalogue", CatalogError)
    return parse_catalog(path, data if data is not None else {})

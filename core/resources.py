"""Files that ship inside the package: registry.yaml and recipes/ (found after a non-editable install too)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def package_root() -> Path:
    return Path(str(files("medzoo")))


def recipes_dir() -> Path:
    return package_root() / "recipes"


def registry_path() -> Path:
    return package_root() / "registry.yaml"

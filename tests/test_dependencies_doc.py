"""docs/dependencies.md names every runtime dependency of pyproject.toml (and what it is used for)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "dependencies.md").read_text()
DEPENDENCIES = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]


@pytest.mark.parametrize("requirement", DEPENDENCIES)
def test_every_dependency_has_a_row(requirement):
    name = re.match(r"[A-Za-z0-9_.-]+", requirement).group(0)
    assert re.search(rf"^\| [^|]*`{re.escape(name)}`", DOC, flags=re.MULTILINE), f"docs/dependencies.md lacks {name}"

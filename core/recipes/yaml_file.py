"""Reading a YAML file with one-line errors that name the file (and the line and column of a syntax error)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from medzoo.core.errors import MedzooError
from medzoo.core.file_io.text_files import read_text_file


def read_yaml_file(path: Path, what: str, error_type: type[MedzooError]) -> Any:
    """The parsed contents of ``path``; ``what`` names the file's role in messages ("recipe", "catalogue")."""
    text = read_text_file(path, f"a YAML {what}", error_type)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise error_type(f"{path}{where}: YAML syntax error: {problem}") from None
